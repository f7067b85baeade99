#include "xds_source.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "rdmesh/xds/bootstrap.h"
#include "rdmesh/xds/client_status.h"

namespace rdmesh::proxy {

namespace {

using xds::ResourceType;

Result<InetAddress> parseAddress(const std::string& text, const std::string& where) {
  Result<InetAddress> address = InetAddress::parse(text);
  if (!address) return invalidArgument(fmt::format("{}: {}", where, address.status().message()));
  return address;
}

Result<std::vector<PeerConfig>> translateNodes(const std::vector<xds::Resource>& resources,
                                               const ProxyConfig& boot) {
  std::vector<PeerConfig> peers;
  if (boot.node_agent) return peers;  // mesh mode: the node agent reaches the other nodes
  for (const xds::Resource& resource : resources) {
    const auto& node = std::get<xds::Node>(resource);
    if (node.name == boot.node.name) continue;  // ourselves
    std::string where = fmt::format("node {}", node.name);
    if (boot.transport.backend == FabricBackend::kShm) {
      // A Node's session_address is ip:port (tcp, or verbs bootstrapped over tcp).
      return invalidArgument(
          fmt::format("{}: peers from xDS need the tcp or verbs backend (this proxy runs {})",
                      where, toString(boot.transport.backend)));
    }
    Result<InetAddress> address = parseAddress(node.session_address, where + " session_address");
    if (!address) return address.status();
    if (address->port() == 0) {
      return invalidArgument(fmt::format("{}: session_address has port 0", where));
    }
    peers.push_back({node.name, address->toString(), 0});
  }
  return peers;
}

Result<std::vector<ClusterConfig>> translateClusters(const std::vector<xds::Resource>& resources) {
  std::vector<ClusterConfig> clusters;
  for (const xds::Resource& resource : resources) {
    const auto& cluster = std::get<xds::Cluster>(resource);
    ClusterConfig out;
    out.name = cluster.name;
    out.lb_policy = cluster.lb_policy == xds::LbPolicy::kLeastRequest ? LbPolicy::kLeastRequest
                                                                      : LbPolicy::kRoundRobin;
    if (cluster.connect_timeout_ms == 0) {
      return invalidArgument(fmt::format("cluster {}: connect_timeout_ms is 0", cluster.name));
    }
    out.connect_timeout = std::chrono::milliseconds(cluster.connect_timeout_ms);
    for (size_t i = 0; i < cluster.endpoints.size(); ++i) {
      const xds::ClusterEndpoint& endpoint = cluster.endpoints[i];
      std::string where = fmt::format("cluster {} endpoints[{}].address", cluster.name, i);
      Result<InetAddress> address = parseAddress(endpoint.address, where);
      if (!address) return address.status();
      if (address->port() == 0) return invalidArgument(where + ": port 0");
      out.endpoints.push_back({endpoint.node, *address});
    }
    for (size_t i = 0; i < cluster.service_addresses.size(); ++i) {
      std::string where = fmt::format("cluster {} service_addresses[{}]", cluster.name, i);
      Result<InetAddress> address = parseAddress(cluster.service_addresses[i], where);
      if (!address) return address.status();
      if (address->port() == 0) return invalidArgument(where + ": port 0");
      out.service_addresses.push_back(*address);
    }
    clusters.push_back(std::move(out));
  }
  return clusters;
}

// A capture listener from xDS listens on its address (default 127.0.0.1:15001) and [::1]:15001,
// finds original destinations with SO_ORIGINAL_DST (the eBPF path) and passes unknown
// destinations through; the LD_PRELOAD registry is for capture listeners in the file.
Result<std::vector<ListenerConfig>> translateListeners(
    const std::vector<xds::Resource>& resources) {
  std::vector<ListenerConfig> listeners;
  for (const xds::Resource& resource : resources) {
    const auto& listener = std::get<xds::Listener>(resource);
    std::string where = fmt::format("listener {}", listener.name);
    ListenerConfig out;
    out.name = listener.name;
    switch (listener.direction) {
      case xds::ListenerDirection::kCapture: {
        Result<InetAddress> address =
            parseAddress(listener.address.value_or(kDefaultCaptureAddress), where + " address");
        if (!address) return address.status();
        if (address->port() == 0) return invalidArgument(where + " address: port 0");
        out.direction = ListenerDirection::kCapture;
        out.address = *address;
        out.has_address_v6 = true;
        out.address_v6 = InetAddress::parse(kDefaultCaptureAddressV6).value();
        break;
      }
      case xds::ListenerDirection::kOutbound: {
        if (!listener.address || !listener.cluster) {
          return invalidArgument(where + ": an outbound listener needs address and cluster");
        }
        Result<InetAddress> address = parseAddress(*listener.address, where + " address");
        if (!address) return address.status();
        out.direction = ListenerDirection::kOutbound;
        out.address = *address;
        out.cluster = *listener.cluster;
        break;
      }
      case xds::ListenerDirection::kInbound: {
        if (!listener.port || *listener.port == 0) {
          return invalidArgument(where + ": an inbound listener needs a port");
        }
        out.direction = ListenerDirection::kInbound;
        out.port = *listener.port;
        out.target = InetAddress::fromIp("127.0.0.1", out.port).value();
        if (listener.target) {
          Result<InetAddress> target = parseAddress(*listener.target, where + " target");
          if (!target) return target.status();
          if (target->port() == 0) return invalidArgument(where + " target: port 0");
          out.target = *target;
        }
        break;
      }
    }
    listeners.push_back(std::move(out));
  }
  return listeners;
}

}  // namespace

XdsConfigSource::XdsConfigSource(const ProxyConfig& boot, ConfigUpdater& updater, StatsStore& stats)
    : static_(boot), updater_(updater) {}

Result<std::unique_ptr<XdsConfigSource>> XdsConfigSource::create(event_base* base,
                                                                 const ProxyConfig& boot,
                                                                 ConfigUpdater& updater,
                                                                 StatsStore& stats) {
  if (!boot.xds) return invalidArgument("no xds section in the configuration");
  const XdsConfig& settings = *boot.xds;
  std::unique_ptr<XdsConfigSource> source(new XdsConfigSource(boot, updater, stats));

  xds::ClientOptions options;
  xds::applyBootstrap(settings, &options);
  options.identity.role = xds::ClientRole::kSidecar;
  options.identity.node_name = boot.node.name;
  options.identity.workload = settings.workload;
  options.identity.namespace_name = settings.namespace_name;
  // Clusters before listeners (a listener names its cluster), nodes before both (endpoints name
  // their nodes): the order Envoy uses, so a new service is usable as soon as it is referenced.
  options.subscriptions = {{ResourceType::kNode, {}},
                           {ResourceType::kCluster, settings.clusters},
                           {ResourceType::kListener, {}}};
  auto client = xds::makeClientFor(base, std::move(options), source.get(), stats);
  if (!client) return client.status();
  source->client_ = std::move(client.value());
  return source;
}

ProxyConfig XdsConfigSource::compose(const Dynamic& dynamic) const {
  ProxyConfig next = updater_.currentConfig();
  next.listeners = static_.listeners;
  next.listeners.insert(next.listeners.end(), dynamic.listeners.begin(), dynamic.listeners.end());
  next.clusters = static_.clusters;
  next.clusters.insert(next.clusters.end(), dynamic.clusters.begin(), dynamic.clusters.end());
  next.transport.peers = static_.transport.peers;
  for (const PeerConfig& peer : dynamic.peers) {
    // A static peer of the same name wins (the operator pinned its address).
    bool pinned = std::any_of(next.transport.peers.begin(), next.transport.peers.end(),
                              [&](const PeerConfig& p) { return p.name == peer.name; });
    if (!pinned) next.transport.peers.push_back(peer);
  }
  return next;
}

Status XdsConfigSource::onResources(ResourceType type, const std::string& version,
                                    const std::vector<xds::Resource>& resources) {
  Dynamic next = dynamic_;
  switch (type) {
    case ResourceType::kNode: {
      auto peers = translateNodes(resources, static_);
      if (!peers) return peers.status();
      next.peers = std::move(peers.value());
      break;
    }
    case ResourceType::kCluster: {
      auto clusters = translateClusters(resources);
      if (!clusters) return clusters.status();
      next.clusters = std::move(clusters.value());
      break;
    }
    case ResourceType::kListener: {
      auto listeners = translateListeners(resources);
      if (!listeners) return listeners.status();
      next.listeners = std::move(listeners.value());
      break;
    }
    default:
      return invalidArgument(
          fmt::format("type {} is not used by rdmesh-proxy", xds::shortName(type)));
  }
  ProxyConfig candidate = compose(next);
  // A listener from the control plane must name a cluster that exists once this is applied
  // (static listeners may wait for theirs: they were written before the clusters were known).
  for (const ListenerConfig& l : next.listeners) {
    if (l.direction != ListenerDirection::kOutbound) continue;
    bool known = std::any_of(candidate.clusters.begin(), candidate.clusters.end(),
                             [&](const ClusterConfig& c) { return c.name == l.cluster; });
    if (!known) {
      return invalidArgument(fmt::format("listener {}: unknown cluster '{}'", l.name, l.cluster));
    }
  }
  if (Status s = updater_.updateConfig(std::move(candidate)); !s) return s;
  dynamic_ = std::move(next);
  spdlog::debug("xds: {} version {} in force", xds::shortName(type), version);
  return {};
}

std::string XdsConfigSource::dumpJson() const {
  using Json = nlohmann::ordered_json;
  Json listeners = Json::array();
  for (const ListenerConfig& l : dynamic_.listeners) listeners.push_back(l.name);
  Json clusters = Json::array();
  for (const ClusterConfig& c : dynamic_.clusters) clusters.push_back(c.name);
  Json peers = Json::array();
  for (const PeerConfig& p : dynamic_.peers) peers.push_back(p.name);
  Json dynamic = xds::clientStatusJson<Json>(client_.get());
  dynamic["listeners"] = std::move(listeners);
  dynamic["clusters"] = std::move(clusters);
  dynamic["peers"] = std::move(peers);
  return Json{{"dynamic", std::move(dynamic)}}.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace rdmesh::proxy
