#include "workload_registrar.h"

#include <event2/event.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

#include "rdmesh/common/timeval.h"

namespace rdmesh::node {

using nlohmann::json;

std::optional<xds::Workload> workloadOf(const PodAddRequest& pod, const std::string& node_name,
                                        const std::string& trust_domain) {
  if (pod.pod_name.empty() || pod.pod_namespace.empty()) return std::nullopt;
  xds::Workload w;
  w.namespace_name = pod.pod_namespace;
  w.pod = pod.pod_name;
  w.name = w.namespace_name + "/" + w.pod;
  if (!pod.pod_uid.empty()) w.uid = pod.pod_uid;
  w.ips = pod.ips;
  w.node = node_name;
  w.service_account = pod.service_account.empty() ? "default" : pod.service_account;
  w.identity = "spiffe://" + trust_domain + "/ns/" + w.namespace_name + "/sa/" + w.service_account;
  w.ports = pod.ports;
  w.labels = pod.labels;
  w.labels[kRegisteredByLabel] = kRegisteredByValue;
  w.labels[kContainerIdLabel] = pod.container_id;
  return w;
}

bool isRegisteredByNode(const xds::Workload& workload) {
  auto it = workload.labels.find(kRegisteredByLabel);
  return it != workload.labels.end() && it->second == kRegisteredByValue;
}

RegistrationPlan planRegistrations(const std::map<std::string, xds::Workload>& desired,
                                   const std::map<std::string, xds::Workload>& at_server,
                                   const std::set<std::string>& busy,
                                   const std::map<std::string, xds::Workload>& refused) {
  RegistrationPlan plan;
  for (const auto& [name, workload] : desired) {
    if (busy.contains(name)) continue;
    if (auto it = refused.find(name); it != refused.end() && it->second == workload) continue;
    if (auto it = at_server.find(name); it != at_server.end() && it->second == workload) continue;
    plan.put.push_back(workload);
  }
  for (const auto& [name, workload] : at_server) {
    if (!desired.contains(name) && !busy.contains(name)) plan.remove.push_back(name);
  }
  return plan;
}

WorkloadRegistrar::WorkloadRegistrar(event_base* base, Options options,
                                     std::unique_ptr<xds::RegistrationClient> client,
                                     StatsStore& stats)
    : base_(base),
      options_(std::move(options)),
      client_(std::move(client)),
      backoff_timer_(event_new(base, -1, 0, &WorkloadRegistrar::onBackoffTimer, this)),
      backoff_(options_.initial_backoff),
      put_total_(stats.counter("node.registrar", "put_total")),
      delete_total_(stats.counter("node.registrar", "delete_total")),
      failures_total_(stats.counter("node.registrar", "failures_total")),
      refused_total_(stats.counter("node.registrar", "refused_total")),
      pending_(stats.gauge("node.registrar", "pending")),
      registered_(stats.gauge("node.registrar", "registered")),
      unnamed_pods_(stats.gauge("node.registrar", "unnamed_pods")) {}

WorkloadRegistrar::~WorkloadRegistrar() {
  client_.reset();  // drops calls in flight; their callbacks never run
  event_free(backoff_timer_);
}

void WorkloadRegistrar::onPodsChanged(const std::map<std::string, PodRecord>& pods) {
  std::map<std::string, xds::Workload> desired;
  uint64_t unnamed = 0;
  for (const auto& [id, record] : pods) {
    std::optional<xds::Workload> w =
        workloadOf(record.spec, options_.node_name, options_.trust_domain);
    if (!w) {
      ++unnamed;
      continue;
    }
    // Two sandboxes of one pod (a restart racing the old DEL): the first by container id wins
    // until the other is deleted.
    desired.try_emplace(w->name, std::move(*w));
  }
  unnamed_pods_.set(unnamed);
  desired_ = std::move(desired);
  reconcile();
}

void WorkloadRegistrar::onServerWorkloads(const std::vector<xds::Workload>& workloads) {
  at_server_.clear();
  for (const xds::Workload& w : workloads) {
    if (w.node == options_.node_name && isRegisteredByNode(w)) at_server_[w.name] = w;
  }
  registered_.set(at_server_.size());
  // The server answered: whatever failed before may work now.
  if (backing_off_) {
    event_del(backoff_timer_);
    backing_off_ = false;
  }
  backoff_ = options_.initial_backoff;
  reconcile();
}

void WorkloadRegistrar::reconcile() {
  RegistrationPlan plan = planRegistrations(desired_, at_server_, busy_, refused_);
  updateGauges(plan);
  if (backing_off_) return;
  for (xds::Workload& workload : plan.put) {
    std::string name = workload.name;
    busy_.insert(name);
    put_total_.inc();
    spdlog::debug("registrar: PUT workload {}", name);
    client_->putWorkload(workload, [this, name, workload](const Status& result) {
      onCallDone(name, workload, result);
    });
  }
  for (const std::string& name : plan.remove) {
    busy_.insert(name);
    delete_total_.inc();
    spdlog::debug("registrar: DELETE workload {}", name);
    client_->deleteWorkload(
        name, [this, name](const Status& result) { onCallDone(name, std::nullopt, result); });
  }
}

void WorkloadRegistrar::onCallDone(const std::string& name, std::optional<xds::Workload> put,
                                   const Status& result) {
  busy_.erase(name);
  if (result.isOk()) {
    if (put) {
      at_server_[name] = std::move(*put);
      refused_.erase(name);
      spdlog::info("registrar: workload {} registered at rdmesh-xds", name);
    } else {
      at_server_.erase(name);
      spdlog::info("registrar: workload {} deleted at rdmesh-xds", name);
    }
    registered_.set(at_server_.size());
    backoff_ = options_.initial_backoff;
    last_error_.clear();
  } else if (result.code() == StatusCode::kInvalidArgument && put) {
    // Retrying the same body cannot help; a changed pod (pod_del + pod_add) is tried again.
    refused_total_.inc();
    refused_[name] = std::move(*put);
    last_error_ = result.message();
    spdlog::error("registrar: rdmesh-xds refused workload {}: {}", name, result.message());
  } else {
    failures_total_.inc();
    last_error_ = result.message();
    spdlog::warn("registrar: {} (retrying in {} ms)", result.message(), backoff_.count());
    startBackoff();
  }
  reconcile();
}

void WorkloadRegistrar::startBackoff() {
  if (backing_off_) return;
  backing_off_ = true;
  // Full jitter on the upper half, so agents restarted together do not retry in step.
  static thread_local std::minstd_rand random{std::random_device{}()};
  auto half = backoff_ / 2;
  std::uniform_int_distribution<int64_t> jitter(0, std::max<int64_t>(half.count(), 0));
  timeval tv = toTimeval(half + std::chrono::milliseconds(jitter(random)));
  event_add(backoff_timer_, &tv);
  backoff_ = std::min(backoff_ * 2, options_.max_backoff);
}

void WorkloadRegistrar::onBackoffTimer(int, short, void* arg) {
  auto* self = static_cast<WorkloadRegistrar*>(arg);
  self->backing_off_ = false;
  self->reconcile();
}

void WorkloadRegistrar::updateGauges(const RegistrationPlan& plan) {
  pending_.set(plan.put.size() + plan.remove.size() + busy_.size());
}

json WorkloadRegistrar::statusJson() const {
  json desired = json::array();
  for (const auto& [name, w] : desired_) desired.push_back(name);
  json registered = json::array();
  for (const auto& [name, w] : at_server_) registered.push_back(name);
  json refused = json::array();
  for (const auto& [name, w] : refused_) refused.push_back(name);
  return json{{"desired", desired},          {"registered", registered},
              {"refused", refused},          {"in_flight", busy_.size()},
              {"backing_off", backing_off_}, {"last_error", last_error_}};
}

}  // namespace rdmesh::node
