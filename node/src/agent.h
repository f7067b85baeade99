// The node agent process: one libevent loop serving node.sock, the pod registry and the eBPF
// capture. Modules (pods now; RDMA fabrics and sidecar attach later) register their ops.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "fabric_module.h"
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

// Makes the agent's LinkDomain (transport::makeLinkDomain in production; tests inject doubles).
using LinkDomainFactory = std::function<Result<std::unique_ptr<transport::LinkDomain>>(
    const transport::LinkDomainOptions& options)>;

class NodeAgent {
 public:
  explicit NodeAgent(NodeAgentConfig config, LinkDomainFactory link_domains = nullptr);
  ~NodeAgent();
  NodeAgent(const NodeAgent&) = delete;
  NodeAgent& operator=(const NodeAgent&) = delete;

  // Loads the registry, installs (or reuses) capture, listens on node.sock.
  Status start();
  // Until SIGTERM/SIGINT; then closes the socket and leaves the pinned capture in place. With
  // the fabric on, the loop is the adaptive poller (sidecar queues are shared memory).
  int run();

  // The session switch when the fabric is on (else null): the control plane's peer list goes to
  // its setPeers().
  FabricModule* fabric() { return fabric_; }
  // The peer nodes from rdmesh-xds (null without an xds: section); valid after start().
  PeerDirectory* peerDirectory() { return xds_; }

 private:
  static void onSignal(int sig, short what, void* arg);
  Result<nlohmann::json> statsOp();

  Status startFabric();

  NodeAgentConfig config_;
  LinkDomainFactory link_domains_;
  StatsStore stats_;
  event_base* base_;
  std::vector<event*> signal_events_;
  PodRegistry registry_;
  std::unique_ptr<capture::InterceptionMaps> maps_;
  std::vector<std::unique_ptr<NodeModule>> modules_;
  FabricModule* fabric_ = nullptr;   // in modules_ when on
  PodModule* pod_module_ = nullptr;  // in modules_
  std::unique_ptr<transport::AdaptivePoller> poller_;
  NodeXdsModule* xds_ = nullptr;  // one of modules_
  OpTable ops_;
  std::unique_ptr<NodeSocketServer> socket_;
};

}  // namespace rdmesh::node
