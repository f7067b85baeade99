// The peer nodes this node agent should hold sessions with, as the control plane (rdmesh-xds,
// Node resources) tells it. The fabric module (one RDMA/tcp session per peer node) consumes it;
// the xDS module feeds it. Pure interface: no dependency on either side.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace rdmesh::node {

enum class PeerFabric : uint8_t { kVerbs, kTcp, kShm };

// One peer node, validated: addresses are canonical IP text, session_address is "ip:port" with
// a non-zero port.
struct PeerNode {
  std::string name;
  std::vector<std::string> addresses;
  PeerFabric fabric = PeerFabric::kTcp;
  std::string session_address;  // where its node agent accepts sessions (port 15008)
  std::optional<std::string> rdma_gid;
  bool operator==(const PeerNode&) const = default;
};

class PeerDirectory {
 public:
  // The whole new peer list (sorted by name, never this node), on every accepted change.
  using PeersChanged = std::function<void(const std::vector<PeerNode>& peers)>;

  virtual ~PeerDirectory() = default;
  // The peers in force (the last accepted Node update); empty before the first one.
  virtual const std::vector<PeerNode>& peers() const = 0;
  // Called on the agent's event loop after each accepted change; also once at once if peers
  // are already known. Observers live as long as the agent.
  virtual void onPeersChanged(PeersChanged observer) = 0;
};

}  // namespace rdmesh::node
