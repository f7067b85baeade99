#include "config_update.h"

#include <fmt/format.h>

#include <map>
#include <set>

namespace rdmesh::proxy {

std::vector<ListenerSocket> listenerSockets(const ListenerConfig& l) {
  switch (l.direction) {
    case ListenerDirection::kInbound:
      return {};
    case ListenerDirection::kOutbound:
      return {{l.name, l.address}};
    case ListenerDirection::kCapture: {
      std::vector<ListenerSocket> sockets{{l.name, l.address}};
      if (l.has_address_v6) {
        sockets.push_back(
            {l.name + "/v6", l.address_v6, l.address_v6.toString() == kDefaultCaptureAddressV6});
      }
      return sockets;
    }
  }
  return {};
}

Status checkSnapshot(const ProxyConfig& config) {
  std::set<std::string> listener_names;
  std::map<std::string, std::string> outbound_by_address;
  std::map<uint16_t, std::string> inbound_by_port;
  int capture_listeners = 0;
  for (const ListenerConfig& l : config.listeners) {
    if (!listener_names.insert(l.name).second) {
      return invalidArgument(fmt::format("duplicate listener '{}'", l.name));
    }
    if (l.direction == ListenerDirection::kInbound) {
      if (l.port == 0) return invalidArgument(fmt::format("listener {}: port 0", l.name));
      auto [it, added] = inbound_by_port.emplace(l.port, l.name);
      if (!added) {
        return invalidArgument(fmt::format("listener {}: port {} is already used by listener {}",
                                           l.name, l.port, it->second));
      }
      continue;
    }
    if (l.direction == ListenerDirection::kCapture && ++capture_listeners > 1) {
      return invalidArgument(
          fmt::format("listener {}: only one capture listener is allowed", l.name));
    }
    for (const ListenerSocket& socket : listenerSockets(l)) {
      if (socket.address.port() == 0) continue;  // each port-0 listener gets its own port
      auto [it, added] = outbound_by_address.emplace(socket.address.toString(), l.name);
      if (!added) {
        return invalidArgument(fmt::format("listener {}: {} is already used by listener {}", l.name,
                                           socket.address.toString(), it->second));
      }
    }
  }
  std::set<std::string> cluster_names;
  for (const ClusterConfig& c : config.clusters) {
    if (!cluster_names.insert(c.name).second) {
      return invalidArgument(fmt::format("duplicate cluster '{}'", c.name));
    }
  }
  // An endpoint on this node that is one of this proxy's own outbound listeners would send every
  // connection back into the proxy, forever.
  for (const ClusterConfig& c : config.clusters) {
    for (const EndpointConfig& e : c.endpoints) {
      if (e.node != config.node.name) continue;
      for (const ListenerConfig& l : config.listeners) {
        if (l.direction != ListenerDirection::kOutbound || l.address.port() != e.address.port() ||
            l.address.family() != e.address.family()) {
          continue;
        }
        bool wildcard = l.address.rawIp().find_first_not_of('\0') == std::string_view::npos;
        if (wildcard || l.address.rawIp() == e.address.rawIp()) {
          return invalidArgument(fmt::format(
              "cluster {}: endpoint {} on this node is listener {} of this proxy (a routing loop)",
              c.name, e.address.toString(), l.name));
        }
      }
    }
  }
  std::set<std::string> peer_names;
  for (const PeerConfig& p : config.transport.peers) {
    if (p.name == config.node.name) {
      return invalidArgument(fmt::format("peer '{}' is this node", p.name));
    }
    if (!peer_names.insert(p.name).second) {
      return invalidArgument(fmt::format("duplicate peer '{}'", p.name));
    }
  }
  return {};
}

}  // namespace rdmesh::proxy
