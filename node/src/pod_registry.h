// The pods this node captures, by container id, persisted to a JSON state file so that a
// restarted agent still knows them (the pinned maps keep capturing in between).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "node_request.h"
#include "rdmesh/common/status.h"

namespace rdmesh::node {

struct PodRecord {
  PodAddRequest spec;
  uint64_t netns_cookie = 0;
  // Ports the pod's sidecar asked to exclude (session_listen), beyond spec's (rdmesh-cni's).
  std::vector<uint16_t> sidecar_excluded_ports;
};

class PodRegistry {
 public:
  // `state_file` "" = in memory only.
  explicit PodRegistry(std::string state_file) : state_file_(std::move(state_file)) {}

  // Reads the state file; a missing file is an empty registry.
  Status load();

  const PodRecord* find(const std::string& container_id) const;
  // The pod (other than `except_id`) that owns this netns cookie, if any.
  const PodRecord* findByCookie(uint64_t cookie, const std::string& except_id = {}) const;
  // Inserts or replaces, then persists; on a write failure the registry is left as it was.
  Status put(PodRecord record);
  Status erase(const std::string& container_id);
  const std::map<std::string, PodRecord>& pods() const { return pods_; }
  // Called after every change that was persisted (put, erase); one observer (the xDS module).
  void setOnChange(std::function<void()> on_change) { on_change_ = std::move(on_change); }

  static nlohmann::json toJson(const PodRecord& record);
  static Result<PodRecord> fromJson(const nlohmann::json& j);

 private:
  Status save(const std::map<std::string, PodRecord>& pods) const;

  std::string state_file_;
  std::map<std::string, PodRecord> pods_;
  std::function<void()> on_change_;
};

}  // namespace rdmesh::node
