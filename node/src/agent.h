// The node agent process: one libevent loop serving node.sock, the pod registry and the eBPF
// capture. Modules (pods now; RDMA fabrics and sidecar attach later) register their ops.
#pragma once

#include <memory>
#include <vector>

#include "node_config.h"
#include "node_socket_server.h"
#include "op_table.h"
#include "pod_module.h"
#include "pod_registry.h"
#include "rdmesh/capture/interception_maps.h"
#include "rdmesh/common/stats.h"
#include "xds_module.h"

struct event;
struct event_base;

namespace rdmesh::node {

class NodeAgent {
 public:
  explicit NodeAgent(NodeAgentConfig config);
  ~NodeAgent();
  NodeAgent(const NodeAgent&) = delete;
  NodeAgent& operator=(const NodeAgent&) = delete;

  // Loads the registry, installs (or reuses) capture, listens on node.sock.
  Status start();
  // Until SIGTERM/SIGINT; then closes the socket and leaves the pinned capture in place.
  int run();

  // The peer nodes from rdmesh-xds (null without an xds: section); valid after start().
  PeerDirectory* peerDirectory() { return xds_; }

 private:
  static void onSignal(int sig, short what, void* arg);
  Result<nlohmann::json> statsOp();

  NodeAgentConfig config_;
  StatsStore stats_;
  event_base* base_;
  std::vector<event*> signal_events_;
  PodRegistry registry_;
  std::unique_ptr<capture::InterceptionMaps> maps_;
  std::vector<std::unique_ptr<NodeModule>> modules_;
  NodeXdsModule* xds_ = nullptr;  // one of modules_
  OpTable ops_;
  std::unique_ptr<NodeSocketServer> socket_;
};

}  // namespace rdmesh::node
