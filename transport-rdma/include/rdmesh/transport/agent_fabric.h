// Agent fabric (mesh mode): a sidecar's sessions ride its node agent (rdmesh-node) instead of a
// fabric of its own. The sidecar needs no RDMA device and no privileges: it creates one memfd
// region per session (agent_wire.h), hands it over node.sock with two doorbells, and the agent
// carries its writes to the remote sidecar. Same-node peers are brokered to the shm backend.
// docs/design/node-agent-datapath.md has the design, docs/node-agent.md the socket contract.
//
// Session addresses name the remote sidecar: "<pod ip>@<node>" ("10.1.2.3@node-b",
// "fd00::7@node-b"); the pod IP in canonical form, the node a Kubernetes node name.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "rdmesh/transport/agent_messages.h"
#include "rdmesh/transport/agent_region.h"
#include "rdmesh/transport/fabric.h"

namespace rdmesh::transport {

inline constexpr const char* kDefaultNodeSocket = "/var/run/rdmesh/node.sock";
inline constexpr const char* kNodeSocketEnv = "RDMESH_NODE_SOCKET";
// Largest datagram on node.sock (the contract's request limit; replies are far smaller).
inline constexpr size_t kMaxAgentMessageBytes = size_t{64} << 10;

// $RDMESH_NODE_SOCKET if set, else `configured` if not empty, else the default path.
std::string nodeSocketPath(std::string_view configured);

struct MeshAddress {
  std::string ip;  // canonical
  std::string node;
  std::string toString() const { return ip + "@" + node; }
};
Result<MeshAddress> parseMeshAddress(std::string_view address);

struct AgentFabricOptions {
  std::string socket_path = kDefaultNodeSocket;
  // Sent with session_listen: outbound ports the agent must stop capturing for this pod (the
  // pod's rdmesh.io/exclude-outbound-ports, which the injector hands the sidecar).
  std::vector<uint16_t> exclude_outbound_ports;
  // Per-session region: submission/completion queue depths and send staging.
  AgentRegionSizes region;
  // Bound for session_listen and session_refuse (session_open/accept take the caller's deadline).
  std::chrono::milliseconds control_timeout{2000};
};

class AgentFabric : public Fabric {
 public:
  // Fabric: listen(address) is listenFor() with the IPs of a comma-separated list; connect()
  // dials a session address (above); accept() is not used (sessions are accepted from offers).

  // A session_listen connection for our pod IPs: the agent sends offers on it. Non-blocking fd,
  // owned by the caller; readable when offers are queued, hang-up when the agent is gone.
  virtual Result<int> listenFor(const std::vector<std::string>& pod_ips, Deadline deadline) = 0;
  // Offers queued on a listener (non-blocking); a malformed message is logged and skipped. An
  // error: the listener is lost (the agent hung up); close it and listen again.
  virtual Result<std::vector<AgentOffer>> readOffers(int listen_fd) = 0;
  // Answers an offer with session_accept on a connection of its own.
  virtual Result<std::unique_ptr<FabricConnection>> acceptOffer(
      const AgentOffer& offer, const Hello& local, std::unique_ptr<MemoryRegion> region,
      Deadline deadline) = 0;
  virtual Status refuseOffer(int listen_fd, uint64_t offer_id, std::string_view reason) = 0;
};

std::unique_ptr<AgentFabric> makeAgentFabric(AgentFabricOptions options);

}  // namespace rdmesh::transport
