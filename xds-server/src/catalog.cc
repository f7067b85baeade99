#include "catalog.h"

#include <algorithm>

#include "fmt/format.h"

namespace rdmesh::xds_server {
namespace {

using xds::ResourceType;

// Connect timeout of derived clusters, as the proxy's static default.
constexpr uint32_t kDerivedConnectTimeoutMs = 1000;

bool selects(const xds::Service& service, const xds::Workload& workload) {
  if (service.selector.empty() || workload.namespace_name != service.namespace_name) return false;
  return std::all_of(service.selector.begin(), service.selector.end(), [&](const auto& pair) {
    auto it = workload.labels.find(pair.first);
    return it != workload.labels.end() && it->second == pair.second;
  });
}

std::string hostPort(const std::string& ip, uint16_t port) {
  return ip.find(':') == std::string::npos ? fmt::format("{}:{}", ip, port)
                                           : fmt::format("[{}]:{}", ip, port);
}

void addEntry(TypeCatalog& catalog, const xds::Resource& resource) {
  CatalogEntry entry;
  entry.json = xds::serialize(resource);
  VersionHasher hasher;
  hasher.add(entry.json);
  entry.version = hasher.hex();
  catalog.insert_or_assign(xds::nameOf(resource), std::move(entry));
}

}  // namespace

void VersionHasher::add(std::string_view bytes) {
  for (unsigned char c : bytes) hash_ = (hash_ ^ c) * 0x100000001b3ULL;
  hash_ = (hash_ ^ 0xff) * 0x100000001b3ULL;  // separator: ("ab","c") != ("a","bc")
}

std::string VersionHasher::hex() const {
  return fmt::format("{:016x}", hash_);
}

std::string clusterName(const xds::Service& service, uint16_t port) {
  std::string_view local = std::string_view(service.name).substr(service.name.find('/') + 1);
  return fmt::format("outbound|{}||{}.{}", port, local, service.namespace_name);
}

std::vector<xds::Cluster> deriveClusters(const RegistrySnapshot& snapshot) {
  std::vector<xds::Cluster> clusters;
  for (const auto& [name, service] : snapshot.services) {
    std::vector<const xds::Workload*> members;
    for (const auto& [workload_name, workload] : snapshot.workloads) {
      if (selects(service, workload)) members.push_back(&workload);
    }
    for (const xds::ServicePort& port : service.ports) {
      xds::Cluster cluster;
      cluster.name = clusterName(service, port.port);
      cluster.lb_policy = xds::LbPolicy::kRoundRobin;
      cluster.connect_timeout_ms = kDerivedConnectTimeoutMs;
      for (const std::string& ip : service.cluster_ips) {
        cluster.service_addresses.push_back(hostPort(ip, port.port));
      }
      for (const xds::Workload* workload : members) {
        cluster.endpoints.push_back({.node = workload->node,
                                     .address = hostPort(workload->ips.front(), port.target_port),
                                     .workload = workload->name});
      }
      clusters.push_back(std::move(cluster));
    }
  }
  return clusters;
}

xds::Listener captureListener() {
  return {.name = std::string(xds::kCaptureListenerName),
          .direction = xds::ListenerDirection::kCapture,
          .address = std::string(xds::kCaptureListenerAddress)};
}

std::vector<xds::Listener> deriveListeners(const xds::Workload& workload) {
  std::vector<xds::Listener> listeners;
  for (uint16_t port : workload.ports) {
    listeners.push_back({.name = fmt::format("inbound|{}", port),
                         .direction = xds::ListenerDirection::kInbound,
                         .port = port,
                         .target = fmt::format("127.0.0.1:{}", port)});
  }
  return listeners;
}

CatalogPtr buildCatalog(const RegistrySnapshot& snapshot) {
  auto catalog = std::make_shared<Catalog>();
  catalog->revision = snapshot.revision;
  auto& by_type = catalog->resources;
  auto slot = [&](ResourceType type) -> TypeCatalog& { return by_type[static_cast<size_t>(type)]; };

  for (const auto& [name, node] : snapshot.nodes) addEntry(slot(ResourceType::kNode), node);
  for (const auto& [name, workload] : snapshot.workloads) {
    addEntry(slot(ResourceType::kWorkload), workload);
    catalog->workloads_by_node[workload.node].push_back(name);
    auto& names = catalog->listeners_by_workload[name];
    for (const xds::Listener& listener : deriveListeners(workload)) {
      names.push_back(listener.name);
      // "inbound|<port>" has the same content for every workload with that port: stored once.
      if (!slot(ResourceType::kListener).contains(listener.name)) {
        addEntry(slot(ResourceType::kListener), listener);
      }
    }
  }
  addEntry(slot(ResourceType::kListener), captureListener());
  for (const auto& [name, service] : snapshot.services) {
    addEntry(slot(ResourceType::kService), service);
  }
  for (const xds::Cluster& cluster : deriveClusters(snapshot)) {
    std::string ns = cluster.name.substr(cluster.name.rfind('.') + 1);
    catalog->clusters_by_namespace[ns].push_back(cluster.name);
    std::vector<std::string>& nodes = catalog->nodes_by_cluster[cluster.name];
    for (const xds::ClusterEndpoint& endpoint : cluster.endpoints) nodes.push_back(endpoint.node);
    std::sort(nodes.begin(), nodes.end());
    nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
    addEntry(slot(ResourceType::kCluster), cluster);
  }
  for (const auto& [name, service] : snapshot.services) {
    for (const xds::ServicePort& port : service.ports) {
      catalog->service_by_cluster[clusterName(service, port.port)] = name;
    }
  }
  return catalog;
}

}  // namespace rdmesh::xds_server
