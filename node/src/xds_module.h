// rdmesh-node in the control plane: an xDS client (role "node", rdmesh_xds_client) subscribed
// to the Node resources (the peer nodes, handed to the PeerDirectory's observers) and to this
// node's Workloads (what rdmesh-xds has, for the WorkloadRegistrar to reconcile the pod registry
// against). A Node update the agent cannot use is NACKed with the reason and the last good peers
// stay. Ops: "peers" (the peer list in force) and "xds" (connection, per-type versions and NACKs,
// registrations).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "op_table.h"
#include "peer_directory.h"
#include "pod_registry.h"
#include "rdmesh/common/stats.h"
#include "rdmesh/xds/client.h"
#include "rdmesh/xds/resources.h"
#include "workload_registrar.h"
#include "xds_config.h"

struct event;
struct event_base;

namespace rdmesh::node {

// The peers a Node update describes (every node but `self`, sorted by name), or why it cannot be
// used: an address that is unspecified, multicast or broadcast, a session address with port 0,
// two peers on one session address, a verbs node with a malformed GID. Pure; unit-tested.
Result<std::vector<PeerNode>> peersFromNodes(const std::vector<xds::Resource>& nodes,
                                             const std::string& self);

std::string_view toString(PeerFabric fabric);
nlohmann::json toJson(const PeerNode& peer);

class NodeXdsModule final : public NodeModule, public PeerDirectory {
 public:
  // Reads the token file (when registration is on) and builds the clients; nothing connects
  // before start().
  // Watches `registry` (pod changes are registered from the loop, after the pod op replied).
  static Result<std::unique_ptr<NodeXdsModule>> create(event_base* base,
                                                       const std::string& node_name,
                                                       const NodeXdsConfig& config,
                                                       PodRegistry& registry, StatsStore& stats);
  ~NodeXdsModule() override;
  // Connects, and registers the pods the registry has.
  void start();

  void registerOps(OpTable& table) override;

  const std::vector<PeerNode>& peers() const override { return peers_; }
  void onPeersChanged(PeersChanged observer) override;

  // Judges one response as the client would (exposed for tests).
  Status onResources(xds::ResourceType type, const std::string& version,
                     const std::vector<xds::Resource>& resources);

  nlohmann::json statusJson() const;

 private:
  NodeXdsModule(event_base* base, std::string node_name, PodRegistry& registry, StatsStore& stats);
  static void onPodsChanged(int, short, void* arg);

  std::string node_name_;
  PodRegistry& registry_;
  event* pods_changed_;  // deferred: pod_add replies before any registration work
  std::unique_ptr<xds::Client> client_;
  std::unique_ptr<WorkloadRegistrar> registrar_;  // null: registration off
  std::vector<PeerNode> peers_;
  std::vector<PeersChanged> observers_;
  Gauge& peers_gauge_;
};

}  // namespace rdmesh::node
