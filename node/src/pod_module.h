// pod_add / pod_del / pod_check / pod_list: the pod registry and the interception maps, kept in
// step (all or nothing per request).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "op_table.h"
#include "pod_registry.h"
#include "rdmesh/capture/interception_maps.h"
#include "rdmesh/common/stats.h"

namespace rdmesh::node {

// netns path -> netns cookie (capture::netnsCookie; injectable for tests).
using NetnsResolver = std::function<Result<uint64_t>(const std::string& netns_path)>;

class PodModule final : public NodeModule {
 public:
  // `maps` may be null: interception off (LD_PRELOAD-only nodes); pods are still registered.
  PodModule(PodRegistry& registry, capture::InterceptionMaps* maps, NetnsResolver resolve,
            StatsStore& stats);

  void registerOps(OpTable& table) override;

  // Re-applies every registered pod to the maps (after a restart with fresh maps). Pods whose
  // entries cannot be restored are reported and kept.
  void restoreMaps();

  Result<uint64_t> add(const PodAddRequest& request);
  Status remove(const std::string& container_id);
  Status check(const std::string& container_id);
  nlohmann::json list() const;
  // Adds ports its sidecar asked to exclude to a registered pod (registry and maps).
  Status excludeSidecarPorts(const std::string& container_id, const std::vector<uint16_t>& ports);

 private:
  static capture::PodCapture captureOf(const PodRecord& record);

  PodRegistry& registry_;
  capture::InterceptionMaps* maps_;
  NetnsResolver resolve_;
  Gauge& pods_active_;
  Counter& pod_add_total_;
  Counter& pod_add_failed_;
  Counter& pod_del_total_;
};

}  // namespace rdmesh::node
