// SessionManager: one Session per peer node. Dials the peers it is responsible for (the node
// with the lower name dials), accepts the others' bootstrap connections, reconnects with
// backoff, and replaces a session when a restarted peer dials in again. Bootstrap runs on
// short-lived threads with a deadline so the event loop never blocks on a slow peer.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "rdmesh/common/stats.h"
#include "rdmesh/common/status.h"
#include "rdmesh/transport/adaptive_poller.h"
#include "rdmesh/transport/fabric.h"
#include "rdmesh/transport/session.h"

struct event_base;

namespace rdmesh::transport {

struct PeerSpec {
  std::string name;
  std::string address;  // tcp: "ip:port"; shm: unix socket path
};

struct SessionManagerOptions {
  std::string node_name;
  std::string listen_address;
  std::vector<PeerSpec> peers;
  SessionGeometry geometry;
  std::chrono::milliseconds keepalive_interval{5000};
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds max_backoff{2000};
};

class SessionManager : public Pollable {
 public:
  ~SessionManager() override = default;
  virtual Status start() = 0;
  // The session to `peer` (known from config or from a peer that dialed in), or nullptr.
  virtual Session* session(std::string_view peer) = 0;
  // Replaces the configured peer list (live, from the control plane). New peers are dialed (if
  // this node is the one that dials), a changed address is used from the next dial on, and a
  // removed peer is no longer redialed; its session and the streams on it stay until they end.
  virtual void setPeers(std::vector<PeerSpec> peers) = 0;
  // Tell every peer we are draining and stop accepting bootstrap connections.
  virtual void drain() = 0;
  virtual size_t activeStreams() const = 0;
};

std::unique_ptr<SessionManager> makeSessionManager(event_base* base, std::unique_ptr<Fabric> fabric,
                                                   SessionManagerOptions options, StatsStore& stats,
                                                   AcceptHandler on_accept);

}  // namespace rdmesh::transport
