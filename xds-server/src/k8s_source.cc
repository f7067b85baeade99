#include "k8s_source.h"

#include <event2/event.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "http_stream_client.h"
#include "k8s_reflector.h"
#include "k8s_translate.h"
#include "rdmesh/common/task_queue.h"
#include "rdmesh/xds/resources.h"

namespace rdmesh::xds_server {
namespace {

using Kind = KubernetesSource::Kind;

constexpr const char* kPaths[KubernetesSource::kKinds] = {
    "/api/v1/pods", "/api/v1/services", "/apis/discovery.k8s.io/v1/endpointslices",
    "/api/v1/nodes"};

size_t index(Kind kind) {
  return static_cast<size_t>(kind);
}

// Puts `fresh` (or deletes when absent) into `desired` and `change` if it differs.
template <typename T>
void reconcile(std::map<std::string, T>& desired, const std::string& name, std::optional<T> fresh,
               std::vector<T>& puts, std::vector<std::string>& deletes) {
  auto it = desired.find(name);
  if (fresh) {
    if (it != desired.end() && it->second == *fresh) return;
    puts.push_back(*fresh);
    desired[name] = std::move(*fresh);
  } else if (it != desired.end()) {
    desired.erase(it);
    deletes.push_back(name);
  }
}

// Translation output checked by the contract codec: what reaches the registry is valid.
template <typename T>
std::optional<T> checked(Result<std::optional<nlohmann::json>> translated, xds::ResourceType type,
                         const std::string& key, std::atomic<uint64_t>& errors) {
  if (!translated) {
    errors.fetch_add(1);
    spdlog::warn("kubernetes: {}; left out", translated.status().message());
    return std::nullopt;
  }
  if (!translated->has_value()) return std::nullopt;
  auto parsed = xds::parseResource(type, **translated, key);
  if (!parsed) {
    errors.fetch_add(1);
    spdlog::warn("kubernetes: {} does not make a valid resource: {}; left out", key,
                 parsed.status().message());
    return std::nullopt;
  }
  return std::get<T>(std::move(*parsed));
}

}  // namespace

KubernetesSource::KubernetesSource(KubernetesSourceOptions options)
    : options_(std::move(options)) {}

KubernetesSource::~KubernetesSource() {
  stop();
}

std::string KubernetesSource::describe() const {
  return "kubernetes " + options_.api.endpoint.url();
}

Status KubernetesSource::start(RegistrySink& sink, std::function<void()> on_synced) {
  sink_ = &sink;
  on_synced_ = std::move(on_synced);
  base_ = event_base_new();
  if (base_ == nullptr) return internalError("event_base_new failed");
  tasks_ = std::make_unique<TaskQueue>(base_);
  auto client = xds::HttpClient::create(base_, options_.api.endpoint);
  if (!client) return client.status();
  http_ = std::move(*client);
  for (size_t i = 0; i < kKinds; ++i) {
    auto kind = static_cast<Kind>(i);
    xds::k8s::Reflector::Options ro;
    ro.path = kPaths[i];
    ro.watch_timeout = options_.watch_timeout;
    ro.min_backoff = options_.min_backoff;
    ro.max_backoff = options_.max_backoff;
    xds::k8s::Reflector::Callbacks callbacks;
    callbacks.on_list = [this, kind](std::vector<Json> items) { onList(kind, std::move(items)); };
    callbacks.on_event = [this, kind](xds::k8s::WatchEventType type, const Json& object) {
      onEvent(kind, type, object);
    };
    reflectors_[i] = std::make_unique<xds::k8s::Reflector>(base_, *http_, options_.api,
                                                           std::move(ro), std::move(callbacks));
  }
  // Counters for status pages, refreshed a few times a second (they also move without events:
  // retries, 410s, malformed lines).
  counters_timer_ = event_new(
      base_, -1, EV_PERSIST,
      [](evutil_socket_t, short, void* arg) {
        static_cast<KubernetesSource*>(arg)->updateCounters();
      },
      this);
  timeval period{0, 100000};
  event_add(counters_timer_, &period);
  running_ = true;
  tasks_->post([this] {
    for (auto& reflector : reflectors_) reflector->start();
  });
  thread_ = std::thread([this] { event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY); });
  spdlog::info("{}: listing and watching pods, services, endpointslices, nodes", describe());
  return Status::ok();
}

void KubernetesSource::stop() {
  if (!running_.exchange(false)) return;
  tasks_->post([this] {
    event_free(counters_timer_);
    counters_timer_ = nullptr;
    for (auto& reflector : reflectors_) reflector.reset();
    http_.reset();
    event_base_loopbreak(base_);
  });
  if (thread_.joinable()) thread_.join();
  tasks_.reset();
  event_base_free(base_);
  base_ = nullptr;
}

RegistryChange KubernetesSource::fullState() const {
  std::lock_guard lock(mu_);
  RegistryChange change;
  for (const auto& [name, node] : desired_.nodes) change.put_nodes.push_back(node);
  for (const auto& [name, workload] : desired_.workloads) change.put_workloads.push_back(workload);
  for (const auto& [name, service] : desired_.services) change.put_services.push_back(service);
  return change;
}

KubernetesSource::Counters KubernetesSource::counters(Kind kind) const {
  std::lock_guard lock(mu_);
  return counters_[index(kind)];
}

void KubernetesSource::refreshWorkload(const std::string& key, RegistryChange& change) {
  std::optional<xds::Workload> fresh;
  auto& pods = objects_[index(Kind::kPods)];
  if (auto it = pods.find(key); it != pods.end()) {
    fresh = checked<xds::Workload>(xds::k8s::workloadFromPod(it->second, options_.trust_domain),
                                   xds::ResourceType::kWorkload, key, translation_errors_);
  }
  reconcile(desired_.workloads, key, std::move(fresh), change.put_workloads,
            change.delete_workloads);
}

void KubernetesSource::refreshNode(const std::string& key, RegistryChange& change) {
  std::optional<xds::Node> fresh;
  auto& nodes = objects_[index(Kind::kNodes)];
  if (auto it = nodes.find(key); it != nodes.end()) {
    fresh = checked<xds::Node>(xds::k8s::nodeFromNode(it->second), xds::ResourceType::kNode, key,
                               translation_errors_);
  }
  reconcile(desired_.nodes, key, std::move(fresh), change.put_nodes, change.delete_nodes);
}

void KubernetesSource::refreshService(const std::string& key, RegistryChange& change) {
  std::optional<xds::Service> fresh;
  auto& services = objects_[index(Kind::kServices)];
  if (auto it = services.find(key); it != services.end()) {
    std::vector<const Json*> slices;
    auto& all_slices = objects_[index(Kind::kEndpointSlices)];
    if (auto s = slices_of_service_.find(key); s != slices_of_service_.end()) {
      for (const auto& slice_key : s->second) {
        if (auto found = all_slices.find(slice_key); found != all_slices.end()) {
          slices.push_back(&found->second);
        }
      }
    }
    fresh = checked<xds::Service>(xds::k8s::serviceFromService(it->second, slices),
                                  xds::ResourceType::kService, key, translation_errors_);
  }
  reconcile(desired_.services, key, std::move(fresh), change.put_services, change.delete_services);
}

void KubernetesSource::onList(Kind kind, std::vector<Json> items) {
  auto& objects = objects_[index(kind)];
  std::set<std::string> touched;  // keys of the translated resources to recompute
  for (const auto& [key, object] : objects) touched.insert(key);
  objects.clear();
  if (kind == Kind::kEndpointSlices) {
    for (auto& [service, slices] : slices_of_service_) touched.insert(service);
    slices_of_service_.clear();
  }
  for (auto& item : items) {
    auto key = xds::k8s::objectKey(item);
    if (!key) continue;  // parseListPage checked every item
    if (kind == Kind::kEndpointSlices) {
      if (auto service = xds::k8s::serviceOfEndpointSlice(item)) {
        slices_of_service_[*service].insert(*key);
        touched.insert(*service);
      }
    } else {
      touched.insert(*key);
    }
    objects.emplace(std::move(*key), std::move(item));
  }
  RegistryChange change;
  {
    std::lock_guard lock(mu_);
    for (const auto& key : touched) {
      switch (kind) {
        case Kind::kPods:
          refreshWorkload(key, change);
          break;
        case Kind::kNodes:
          refreshNode(key, change);
          break;
        case Kind::kServices:
        case Kind::kEndpointSlices:
          refreshService(key, change);
          break;
      }
    }
  }
  applyChange(change);
  updateCounters();
  if (!synced_reported_) {
    bool all = true;
    for (const auto& reflector : reflectors_) all = all && reflector->synced();
    if (all) {
      synced_reported_ = true;
      spdlog::info("{}: initial state applied", describe());
      if (on_synced_) on_synced_();
    }
  }
}

void KubernetesSource::onEvent(Kind kind, xds::k8s::WatchEventType type, const Json& object) {
  auto key = xds::k8s::objectKey(object);
  if (!key) return;
  auto& objects = objects_[index(kind)];
  std::optional<std::string> service_before;
  if (kind == Kind::kEndpointSlices) {
    if (auto it = objects.find(*key); it != objects.end()) {
      service_before = xds::k8s::serviceOfEndpointSlice(it->second);
      if (service_before) slices_of_service_[*service_before].erase(*key);
    }
  }
  if (type == xds::k8s::WatchEventType::kDeleted) {
    objects.erase(*key);
  } else {
    objects[*key] = object;
  }
  RegistryChange change;
  {
    std::lock_guard lock(mu_);
    switch (kind) {
      case Kind::kPods:
        refreshWorkload(*key, change);
        break;
      case Kind::kNodes:
        refreshNode(*key, change);
        break;
      case Kind::kServices:
        refreshService(*key, change);
        break;
      case Kind::kEndpointSlices: {
        std::optional<std::string> service_after;
        if (type != xds::k8s::WatchEventType::kDeleted) {
          service_after = xds::k8s::serviceOfEndpointSlice(object);
          if (service_after) slices_of_service_[*service_after].insert(*key);
        }
        if (service_before) refreshService(*service_before, change);
        if (service_after && service_after != service_before)
          refreshService(*service_after, change);
        break;
      }
    }
  }
  applyChange(change);
  updateCounters();
}

void KubernetesSource::applyChange(const RegistryChange& change) {
  if (change.empty() || sink_ == nullptr) return;
  // Not under mu_: the sink may block on etcd, and the etcd store's leader reconciliation
  // reads fullState() from its own thread.
  auto applied = sink_->apply(change);
  if (!applied) {
    apply_errors_.fetch_add(1);
    spdlog::warn("{}: registry refused a change: {}", describe(), applied.status().message());
  }
}

void KubernetesSource::updateCounters() {
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < kKinds; ++i) {
    const auto& c = reflectors_[i]->counters();
    Counters& out = counters_[i];
    out.lists = c.lists;
    out.gone = c.gone;
    out.watches = c.watches;
    out.events = c.events;
    out.bookmarks = c.bookmarks;
    out.malformed = c.malformed;
    out.errors = c.errors;
    out.resource_version = reflectors_[i]->resourceVersion();
    out.last_error = reflectors_[i]->lastError().message();
  }
}

}  // namespace rdmesh::xds_server
