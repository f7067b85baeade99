// Mesh mode (sidecar behind rdmesh-node): one Session per REMOTE SIDECAR, not per node, all over
// the node agent (AgentFabric). Sessions are keyed by the remote sidecar's session address
// "<pod ip>@<node>" and dialed on demand: session(key) creates the session and dials it if
// there is none, so the first stream to a pod opens it. The manager also listens for our pod
// IPs (session_listen) and accepts the offers the agent relays.
//
// Simultaneous open (both sidecars dial each other at once): the session dialed by the LOWER
// pod IP is kept. The lower side refuses offers from a peer it is dialing (or whose session it
// dialed); the higher side accepts them, and drops its own dial if that comes back afterwards.
// Nothing else is reset.
//
// Losing the agent loses every agent-mode session (their streams reset); a session is redialed,
// with backoff, only when a stream needs it again. The listener is re-established with backoff.
//
// Each session pins a region in the agent, so one unused for idle_timeout is closed by
// agreement with the peer (IDLE_CLOSE: no stream is lost to the race with a new one); streams
// opened during the close are held and dialed on a new session.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "rdmesh/common/stats.h"
#include "rdmesh/transport/agent_fabric.h"
#include "rdmesh/transport/session_manager.h"

struct event_base;

namespace rdmesh::transport {

struct MeshSessionManagerOptions {
  std::string node_name;             // our node (the name in our Hellos)
  std::vector<std::string> pod_ips;  // ours: listened for, and the simultaneous-open tie-break
  SessionGeometry geometry;
  std::chrono::milliseconds keepalive_interval{5000};
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds max_backoff{2000};
  // A session without streams for this long is closed (IDLE_CLOSE) and its region released in
  // the agent; the next stream dials it again. 0 keeps sessions until they are lost.
  std::chrono::milliseconds idle_timeout{60000};
};

std::unique_ptr<SessionManager> makeMeshSessionManager(event_base* base,
                                                       std::unique_ptr<AgentFabric> fabric,
                                                       MeshSessionManagerOptions options,
                                                       StatsStore& stats, AcceptHandler on_accept);

}  // namespace rdmesh::transport
