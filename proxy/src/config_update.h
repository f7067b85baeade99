// Live configuration updates: what a new snapshot must satisfy before any worker sees it, and the
// interface through which a dynamic source (xDS) proposes one.
#pragma once

#include <string>
#include <vector>

#include "config.h"
#include "rdmesh/common/status.h"

namespace rdmesh::proxy {

// Checks that hold for every snapshot, whatever its source: unique listener and cluster names,
// one outbound listener per address, one inbound listener per port, no cluster endpoint that is
// one of the proxy's own listeners (a loop), valid peers.
Status checkSnapshot(const ProxyConfig& config);

// The listening sockets a listener needs, each under a key unique in a snapshot: an outbound
// listener has one (its name), a capture listener one more for IPv6 ("<name>/v6"). Inbound
// listeners have none (their connections come from the tunnel).
struct ListenerSocket {
  std::string key;
  InetAddress address;
  bool optional = false;  // the default IPv6 capture address: skipped on a host without IPv6
};
std::vector<ListenerSocket> listenerSockets(const ListenerConfig& listener);

// Implemented by the server (main thread). A source builds the whole next configuration from the
// current one and proposes it; a non-OK status means it was rejected and nothing changed.
class ConfigUpdater {
 public:
  virtual ~ConfigUpdater() = default;
  virtual const ProxyConfig& currentConfig() const = 0;
  virtual Status updateConfig(ProxyConfig next) = 0;
};

}  // namespace rdmesh::proxy
