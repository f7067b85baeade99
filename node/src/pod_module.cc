#include "pod_module.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <set>

namespace rdmesh::node {

using nlohmann::json;

PodModule::PodModule(PodRegistry& registry, capture::InterceptionMaps* maps, NetnsResolver resolve,
                     StatsStore& stats)
    : registry_(registry),
      maps_(maps),
      resolve_(std::move(resolve)),
      pods_active_(stats.gauge("node.pods", "active")),
      pod_add_total_(stats.counter("node.pods", "add_total")),
      pod_add_failed_(stats.counter("node.pods", "add_failed")),
      pod_del_total_(stats.counter("node.pods", "del_total")) {
  pods_active_.set(registry_.pods().size());
}

capture::PodCapture PodModule::captureOf(const PodRecord& record) {
  std::set<uint16_t> ports(record.spec.exclude_outbound_ports.begin(),
                           record.spec.exclude_outbound_ports.end());
  ports.insert(record.sidecar_excluded_ports.begin(), record.sidecar_excluded_ports.end());
  return {record.netns_cookie, std::vector<uint16_t>(ports.begin(), ports.end())};
}

Status PodModule::excludeSidecarPorts(const std::string& container_id,
                                      const std::vector<uint16_t>& ports) {
  const PodRecord* existing = registry_.find(container_id);
  if (existing == nullptr) {
    return invalidArgument(fmt::format("pod '{}' is not registered", container_id));
  }
  PodRecord record = *existing;
  std::set<uint16_t> merged(record.sidecar_excluded_ports.begin(),
                            record.sidecar_excluded_ports.end());
  merged.insert(ports.begin(), ports.end());
  if (merged.size() == record.sidecar_excluded_ports.size()) return {};  // nothing new
  record.sidecar_excluded_ports.assign(merged.begin(), merged.end());
  if (maps_ != nullptr) {
    if (Status s = maps_->addPod(captureOf(record)); !s) return s;
  }
  spdlog::info("pod '{}': its sidecar excludes outbound ports {}", container_id,
               fmt::join(record.sidecar_excluded_ports, ","));
  return registry_.put(std::move(record));
}

void PodModule::registerOps(OpTable& table) {
  table.add("pod_add", [this](const RequestEnvelope& r, RequestFds&) -> Result<json> {
    Result<PodAddRequest> request = parsePodAdd(r.body);
    if (!request) return request.status();
    Result<uint64_t> cookie = add(*request);
    if (!cookie) return cookie.status();
    return json{{"netns_cookie", *cookie}};
  });
  table.add("pod_del", [this](const RequestEnvelope& r, RequestFds&) -> Result<json> {
    Result<std::string> id = parseContainerIdOnly(r.body);
    if (!id) return id.status();
    if (Status s = remove(*id); !s) return s;
    return json::object();
  });
  table.add("pod_check", [this](const RequestEnvelope& r, RequestFds&) -> Result<json> {
    Result<std::string> id = parseContainerIdOnly(r.body);
    if (!id) return id.status();
    if (Status s = check(*id); !s) return s;
    return json::object();
  });
  table.add("pod_list", [this](const RequestEnvelope&, RequestFds&) -> Result<json> {
    return json{{"pods", list()}};
  });
}

Result<uint64_t> PodModule::add(const PodAddRequest& request) {
  pod_add_total_.inc();
  auto fail = [this](Status s) -> Result<uint64_t> {
    pod_add_failed_.inc();
    return s;
  };
  if (const PodRecord* existing = registry_.find(request.container_id)) {
    if (existing->spec == request) {
      // Same pod again (a retried CNI ADD): make sure its entries are there, answer the same.
      if (maps_ != nullptr) {
        if (Status s = maps_->addPod(captureOf(*existing)); !s) return fail(s);
      }
      return existing->netns_cookie;
    }
    return fail(invalidArgument(fmt::format(
        "field 'container_id': '{}' is already registered with different data (pod_del it first)",
        request.container_id)));
  }
  Result<uint64_t> cookie = resolve_(request.netns);
  if (!cookie)
    return fail(invalidArgument(fmt::format("field 'netns': {}", cookie.status().message())));
  if (const PodRecord* other = registry_.findByCookie(*cookie, request.container_id)) {
    return fail(invalidArgument(
        fmt::format("field 'netns': network namespace {} is already registered by container '{}'",
                    request.netns, other->spec.container_id)));
  }
  PodRecord record{request, *cookie};
  if (maps_ != nullptr) {
    if (Status s = maps_->addPod(captureOf(record)); !s) return fail(s);
  }
  if (Status s = registry_.put(record); !s) {
    if (maps_ != nullptr) maps_->removePod(captureOf(record));  // all or nothing
    return fail(s);
  }
  pods_active_.set(registry_.pods().size());
  spdlog::info("pod_add {} ({}/{}) netns {} cookie {} ips [{}]", request.container_id,
               request.pod_namespace, request.pod_name, request.netns, *cookie,
               fmt::join(request.ips, ", "));
  return *cookie;
}

Status PodModule::remove(const std::string& container_id) {
  const PodRecord* record = registry_.find(container_id);
  if (record == nullptr) return {};  // idempotent
  pod_del_total_.inc();
  if (maps_ != nullptr) {
    if (Status s = maps_->removePod(captureOf(*record)); !s) return s;
  }
  if (Status s = registry_.erase(container_id); !s) return s;
  pods_active_.set(registry_.pods().size());
  spdlog::info("pod_del {}", container_id);
  return {};
}

Status PodModule::check(const std::string& container_id) {
  const PodRecord* record = registry_.find(container_id);
  if (record == nullptr) {
    return {StatusCode::kNotFound, fmt::format("container '{}' is not registered", container_id)};
  }
  if (maps_ == nullptr) return {};
  if (Status s = maps_->checkPod(captureOf(*record)); !s) {
    return {s.code(), fmt::format("container '{}': {}", container_id, s.message())};
  }
  return {};
}

json PodModule::list() const {
  json pods = json::array();
  for (const auto& [id, r] : registry_.pods()) {
    pods.push_back({{"container_id", id},
                    {"netns_cookie", r.netns_cookie},
                    {"ips", r.spec.ips},
                    {"pod_name", r.spec.pod_name},
                    {"pod_namespace", r.spec.pod_namespace}});
  }
  return pods;
}

void PodModule::restoreMaps() {
  if (maps_ == nullptr) return;
  for (const auto& [id, r] : registry_.pods()) {
    if (Status s = maps_->addPod(captureOf(r)); !s) {
      spdlog::error("pod {}: cannot restore its interception entries: {}", id, s.message());
    }
  }
}

}  // namespace rdmesh::node
