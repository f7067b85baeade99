#include "etcd_store.h"

#include <event2/event.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <future>
#include <set>

#include "etcd_client.h"
#include "etcd_election.h"
#include "etcd_registry_store.h"
#include "rdmesh/common/task_queue.h"
#include "rdmesh/common/timeval.h"
#include "rdmesh/xds/resources.h"

namespace rdmesh::xds_server {
namespace {

using xds::etcd::Collection;
using Write = xds::etcd::EtcdRegistryStore::Write;

constexpr auto kReconcileRetry = std::chrono::seconds(2);
constexpr std::string_view kElectionKeyFormat = "/rdmesh/election{}/kubernetes-writer";

template <typename Map, typename Item>
void addPut(std::vector<Write>& writes, Collection collection, const Map& current,
            const Item& item) {
  auto it = current.find(item.name);
  if (it != current.end() && it->second == item) return;  // already there: not a change
  writes.push_back(Write{collection, item.name, xds::toJson(item)});
}

template <typename Map>
void addDelete(std::vector<Write>& writes, Collection collection, const Map& current,
               const std::string& name) {
  if (current.count(name) != 0) writes.push_back(Write{collection, name, std::nullopt});
}

std::vector<Write> writesFor(const RegistryChange& change, const RegistrySnapshot& current) {
  std::vector<Write> writes;
  for (const auto& node : change.put_nodes) addPut(writes, Collection::kNodes, current.nodes, node);
  for (const auto& workload : change.put_workloads) {
    addPut(writes, Collection::kWorkloads, current.workloads, workload);
  }
  for (const auto& service : change.put_services) {
    addPut(writes, Collection::kServices, current.services, service);
  }
  for (const auto& name : change.delete_nodes) {
    addDelete(writes, Collection::kNodes, current.nodes, name);
  }
  for (const auto& name : change.delete_workloads) {
    addDelete(writes, Collection::kWorkloads, current.workloads, name);
  }
  for (const auto& name : change.delete_services) {
    addDelete(writes, Collection::kServices, current.services, name);
  }
  return writes;
}

std::vector<std::vector<Write>> chunks(std::vector<Write> writes) {
  std::vector<std::vector<Write>> out;
  for (size_t i = 0; i < writes.size(); i += xds::etcd::EtcdRegistryStore::kMaxTxnOps) {
    size_t end = std::min(writes.size(), i + xds::etcd::EtcdRegistryStore::kMaxTxnOps);
    out.emplace_back(std::make_move_iterator(writes.begin() + static_cast<ptrdiff_t>(i)),
                     std::make_move_iterator(writes.begin() + static_cast<ptrdiff_t>(end)));
  }
  return out;
}

}  // namespace

// The Kubernetes source's sink: writes only while this replica leads.
class EtcdStore::KubernetesSink : public RegistrySink {
 public:
  KubernetesSink(EtcdStore& store, std::function<RegistryChange()> full_state)
      : store_(store), full_state_(std::move(full_state)) {}

  Result<uint64_t> apply(const RegistryChange& change) override {
    if (!store_.leader_.load()) return store_.snapshot()->revision;  // the leader writes it
    auto written = store_.runWrite(change, std::string(xds::etcd::kOriginKubernetes), true);
    if (!written) {
      // Lost leadership or etcd trouble: the next reconciliation (new leadership, or the retry)
      // writes the complete view, so this change is not lost.
      store_.tasks_->post([this] { scheduleReconcile(); });
    }
    return written;
  }

  RegistryChange fullState() const { return full_state_(); }

  void scheduleReconcile() {
    if (timer_ == nullptr) timer_ = evtimer_new(store_.base_, &KubernetesSink::onTimer, this);
    timeval tv = toTimeval(kReconcileRetry);
    evtimer_add(timer_, &tv);
  }
  void cancel() {
    if (timer_ != nullptr) event_free(timer_);
    timer_ = nullptr;
  }

 private:
  static void onTimer(int, short, void* arg) {
    auto* self = static_cast<KubernetesSink*>(arg);
    if (self->store_.leader_.load()) self->store_.reconcileKubernetes();
  }

  EtcdStore& store_;
  std::function<RegistryChange()> full_state_;
  event* timer_ = nullptr;
};

EtcdStore::EtcdStore(EtcdStoreOptions options)
    : options_(std::move(options)), current_(std::make_shared<RegistrySnapshot>()) {}

EtcdStore::~EtcdStore() {
  stop();
}

std::string EtcdStore::describe() const {
  std::string endpoints;
  for (const auto& e : options_.endpoints) endpoints += (endpoints.empty() ? "" : ",") + e;
  return fmt::format("etcd {} prefix {}", endpoints, options_.prefix);
}

RegistrySink& EtcdStore::kubernetesSink(std::function<RegistryChange()> full_state) {
  kubernetes_sink_ = std::make_unique<KubernetesSink>(*this, std::move(full_state));
  return *kubernetes_sink_;
}

Status EtcdStore::start() {
  base_ = event_base_new();
  if (base_ == nullptr) return internalError("event_base_new failed");
  tasks_ = std::make_unique<TaskQueue>(base_);
  auto client = xds::etcd::EtcdClient::create(base_, options_.endpoints, options_.ca_file);
  if (!client) return client.status();
  client_ = std::move(*client);
  xds::etcd::EtcdRegistryStore::Callbacks callbacks;
  callbacks.on_upsert = [this](const xds::etcd::StoredResource& r) { onUpsert(r); };
  callbacks.on_remove = [this](Collection c, const std::string& name) {
    onRemove(static_cast<int>(c), name);
  };
  callbacks.on_applied = [this](int64_t revision) { onApplied(revision); };
  store_ = std::make_unique<xds::etcd::EtcdRegistryStore>(base_, *client_, options_.prefix,
                                                          std::move(callbacks));
  if (kubernetes_sink_) {
    std::string id =
        options_.replica_id.empty() ? fmt::format("pid-{}", getpid()) : options_.replica_id;
    xds::etcd::EtcdLeaderElection::Options election;
    election.lease_ttl = options_.election_ttl;
    std::string suffix =
        options_.prefix.starts_with("/rdmesh") ? options_.prefix.substr(7) : options_.prefix;
    election_ = std::make_unique<xds::etcd::EtcdLeaderElection>(
        base_, *client_, fmt::format(kElectionKeyFormat, suffix), id,
        [this](bool leader) {
          leader_.store(leader);
          if (leader) reconcileKubernetes();
        },
        election);
  }
  running_ = true;
  tasks_->post([this] {
    store_->start();
    if (election_) election_->start();
  });
  thread_ = std::thread([this] { event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY); });

  std::unique_lock lock(mu_);
  if (!applied_cv_.wait_for(lock, options_.start_timeout, [this] { return synced_; })) {
    lock.unlock();
    Status why = store_->mirror().lastError();
    stop();
    return unavailable(fmt::format("{}: no answer within {} s{}", describe(),
                                   options_.start_timeout.count(),
                                   why.isOk() ? "" : " (" + why.message() + ")"));
  }
  spdlog::info("registry store {}: loaded revision {}", describe(), applied_revision_);
  return Status::ok();
}

void EtcdStore::stop() {
  if (!running_) return;
  running_ = false;
  auto teardown = [this] {
    if (kubernetes_sink_) kubernetes_sink_->cancel();
    election_.reset();
    store_.reset();
    client_.reset();
    event_base_loopbreak(base_);
  };
  tasks_->post([this, teardown] {
    // Revoking the lease hands the Kubernetes writer role over at once, not after a TTL.
    if (election_) {
      election_->resign([this, teardown] { tasks_->post(teardown); });
    } else {
      teardown();
    }
  });
  if (thread_.joinable()) thread_.join();
  tasks_.reset();
  event_base_free(base_);
  base_ = nullptr;
}

SnapshotPtr EtcdStore::snapshot() const {
  std::lock_guard lock(mu_);
  return current_;
}

void EtcdStore::onUpsert(const xds::etcd::StoredResource& stored) {
  auto type = stored.collection == Collection::kNodes       ? xds::ResourceType::kNode
              : stored.collection == Collection::kWorkloads ? xds::ResourceType::kWorkload
                                                            : xds::ResourceType::kService;
  auto parsed = xds::parseResource(type, stored.resource, stored.name);
  if (!parsed) {
    bad_entries_.fetch_add(1);
    spdlog::warn("etcd registry: {} {}: {}; left out", xds::etcd::collectionName(stored.collection),
                 stored.name, parsed.status().message());
    onRemove(static_cast<int>(stored.collection), stored.name);
    return;
  }
  dirty_ = true;
  if (auto* node = std::get_if<xds::Node>(&*parsed)) {
    working_.nodes[stored.name] = std::move(*node);
  } else if (auto* workload = std::get_if<xds::Workload>(&*parsed)) {
    working_.workloads[stored.name] = std::move(*workload);
  } else if (auto* service = std::get_if<xds::Service>(&*parsed)) {
    working_.services[stored.name] = std::move(*service);
  }
}

void EtcdStore::onRemove(int collection, const std::string& name) {
  switch (static_cast<Collection>(collection)) {
    case Collection::kNodes:
      dirty_ |= working_.nodes.erase(name) > 0;
      break;
    case Collection::kWorkloads:
      dirty_ |= working_.workloads.erase(name) > 0;
      break;
    case Collection::kServices:
      dirty_ |= working_.services.erase(name) > 0;
      break;
  }
}

void EtcdStore::onApplied(int64_t revision) {
  SnapshotPtr published;
  {
    std::lock_guard lock(mu_);
    applied_revision_ = static_cast<uint64_t>(revision);
    if (dirty_ || !synced_) {
      auto next = std::make_shared<RegistrySnapshot>(working_);
      next->revision = applied_revision_;
      current_ = next;
      published = next;
    }
    synced_ = true;
    dirty_ = false;
    // Under the lock, as MemoryStore does, so listeners see revisions in order.
    if (published && on_change_) on_change_(published);
  }
  applied_cv_.notify_all();
}

bool EtcdStore::waitApplied(uint64_t revision) {
  std::unique_lock lock(mu_);
  return applied_cv_.wait_for(lock, options_.write_timeout,
                              [&] { return applied_revision_ >= revision || !running_; });
}

Result<uint64_t> EtcdStore::runWrite(const RegistryChange& change, const std::string& origin,
                                     bool fenced) {
  if (std::this_thread::get_id() == thread_.get_id()) {
    return internalError("EtcdStore::apply called from the store's own thread");
  }
  SnapshotPtr current = snapshot();
  std::vector<Write> writes = writesFor(change, *current);
  if (writes.empty()) return current->revision;
  if (!running_) return unavailable("etcd store stopped");
  uint64_t revision = 0;
  for (auto& chunk : chunks(std::move(writes))) {
    auto promise = std::make_shared<std::promise<Result<int64_t>>>();
    auto future = promise->get_future();
    tasks_->post([this, chunk = std::move(chunk), origin, fenced, promise] {
      if (!store_) {
        promise->set_value(unavailable("etcd store stopped"));
        return;
      }
      std::optional<xds::etcd::EtcdRegistryStore::Fence> fence;
      if (fenced) {
        if (!election_ || !election_->isLeader()) {
          promise->set_value(unavailable("not the Kubernetes writer (leader) any more"));
          return;
        }
        fence = election_->fence();
      }
      store_->write(chunk, origin, fence,
                    [promise](Result<int64_t> r) { promise->set_value(std::move(r)); });
    });
    if (future.wait_for(options_.write_timeout) != std::future_status::ready) {
      return Status(StatusCode::kTimeout, fmt::format("{}: write not confirmed within {} s",
                                                      describe(), options_.write_timeout.count()));
    }
    Result<int64_t> written = future.get();
    if (!written) return written.status();
    revision = static_cast<uint64_t>(*written);
  }
  // Read-your-writes: return once this replica's snapshot contains the change.
  if (!waitApplied(revision)) {
    spdlog::warn("{}: revision {} committed but not yet seen by the watch", describe(), revision);
  }
  return revision;
}

Result<uint64_t> EtcdStore::apply(const RegistryChange& change) {
  return runWrite(change, options_.origin, /*fenced=*/false);
}

void EtcdStore::reconcileKubernetes() {
  if (!kubernetes_sink_ || !store_ || !election_ || !election_->isLeader()) return;
  RegistryChange full = kubernetes_sink_->fullState();
  std::set<std::pair<Collection, std::string>> wanted;
  for (const auto& n : full.put_nodes) wanted.emplace(Collection::kNodes, n.name);
  for (const auto& w : full.put_workloads) wanted.emplace(Collection::kWorkloads, w.name);
  for (const auto& s : full.put_services) wanted.emplace(Collection::kServices, s.name);
  // What a former leader wrote that is no longer in the cluster.
  for (const auto& stored : store_->list(xds::etcd::kOriginKubernetes)) {
    if (wanted.count({stored.collection, stored.name}) != 0) continue;
    switch (stored.collection) {
      case Collection::kNodes:
        full.delete_nodes.push_back(stored.name);
        break;
      case Collection::kWorkloads:
        full.delete_workloads.push_back(stored.name);
        break;
      case Collection::kServices:
        full.delete_services.push_back(stored.name);
        break;
    }
  }
  std::vector<Write> writes = writesFor(full, working_);
  if (writes.empty()) return;
  spdlog::info("kubernetes writer {}: reconciling {} entries", election_->candidateId(),
               writes.size());
  auto fence = election_->fence();
  for (auto& chunk : chunks(std::move(writes))) {
    store_->write(chunk, xds::etcd::kOriginKubernetes, fence, [this](Result<int64_t> r) {
      if (!r && kubernetes_sink_) {
        spdlog::warn("kubernetes writer: {}", r.status().message());
        kubernetes_sink_->scheduleReconcile();
      }
    });
  }
}

}  // namespace rdmesh::xds_server
