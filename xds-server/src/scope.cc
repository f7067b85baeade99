#include "scope.h"

#include <algorithm>
#include <set>

namespace rdmesh::xds_server {
namespace {

using xds::ResourceType;

std::set<std::string> clustersInScope(const Catalog& catalog, const ScopeQuery& query) {
  std::set<std::string> clusters;
  if (query.client.role != xds::ClientRole::kSidecar) return clusters;
  if (auto it = catalog.clusters_by_namespace.find(query.client.namespace_name);
      it != catalog.clusters_by_namespace.end()) {
    clusters.insert(it->second.begin(), it->second.end());
  }
  const TypeCatalog& all = catalog.of(ResourceType::kCluster);
  for (const std::string& name : query.explicit_clusters) {
    if (all.contains(name)) clusters.insert(name);
  }
  return clusters;
}

std::set<std::string> unfiltered(const Catalog& catalog, const ScopeQuery& query) {
  const xds::ClientIdentity& client = query.client;
  std::set<std::string> names;
  if (client.role == xds::ClientRole::kNode) {
    switch (query.type) {
      case ResourceType::kNode:
        for (const auto& [name, entry] : catalog.of(ResourceType::kNode)) names.insert(name);
        break;
      case ResourceType::kWorkload:
        if (auto it = catalog.workloads_by_node.find(client.node_name);
            it != catalog.workloads_by_node.end()) {
          names.insert(it->second.begin(), it->second.end());
        }
        break;
      default:
        break;
    }
    return names;
  }
  switch (query.type) {
    case ResourceType::kListener:
      names.insert(std::string(xds::kCaptureListenerName));
      if (auto it = catalog.listeners_by_workload.find(client.workload);
          it != catalog.listeners_by_workload.end()) {
        names.insert(it->second.begin(), it->second.end());
      }
      break;
    case ResourceType::kCluster:
      return clustersInScope(catalog, query);
    case ResourceType::kNode:
      for (const std::string& cluster : clustersInScope(catalog, query)) {
        if (auto it = catalog.nodes_by_cluster.find(cluster);
            it != catalog.nodes_by_cluster.end()) {
          names.insert(it->second.begin(), it->second.end());
        }
      }
      break;
    case ResourceType::kService:
      for (const std::string& cluster : clustersInScope(catalog, query)) {
        if (auto it = catalog.service_by_cluster.find(cluster);
            it != catalog.service_by_cluster.end()) {
          names.insert(it->second);
        }
      }
      break;
    case ResourceType::kWorkload:
      names.insert(client.workload);
      break;
  }
  return names;
}

}  // namespace

std::vector<std::string> resourcesInScope(const Catalog& catalog, const ScopeQuery& query) {
  std::set<std::string> names = unfiltered(catalog, query);
  const TypeCatalog& present = catalog.of(query.type);
  std::vector<std::string> result;
  // Explicit names narrow every type but Cluster, where they already widened the scope.
  const bool narrow = !query.names.empty() && query.type != ResourceType::kCluster;
  std::set<std::string> wanted(query.names.begin(), query.names.end());
  for (const std::string& name : names) {
    if (!present.contains(name)) continue;
    if (narrow && !wanted.contains(name)) continue;
    result.push_back(name);
  }
  return result;
}

std::optional<std::string> sharedScopeKey(const ScopeQuery& query) {
  const bool sidecar = query.client.role == xds::ClientRole::kSidecar;
  const bool shared = sidecar ? query.type == ResourceType::kCluster ||
                                    query.type == ResourceType::kNode ||
                                    query.type == ResourceType::kService
                              : query.type == ResourceType::kNode;
  if (!shared) return std::nullopt;
  // Length-prefixed fields: no name can make two different inputs collide.
  std::string key;
  auto add = [&key](std::string_view field) {
    key += std::to_string(field.size());
    key += ':';
    key += field;
  };
  add(xds::shortName(query.type));
  add(sidecar ? "sidecar" : "node");
  if (sidecar) add(query.client.namespace_name);
  key += "n";
  for (const std::string& name : query.names) add(name);
  if (sidecar) {
    key += "c";
    for (const std::string& name : query.explicit_clusters) add(name);
  }
  return key;
}

ScopedResourcesPtr scopedResources(const Catalog& catalog, const ScopeQuery& query) {
  auto compute = [&] {
    auto scoped = std::make_shared<ScopedResources>();
    scoped->names = resourcesInScope(catalog, query);
    scoped->version = aggregateVersion(catalog, query.type, scoped->names);
    return scoped;
  };
  std::optional<std::string> key = sharedScopeKey(query);
  if (!key) return compute();
  auto it = catalog.shared_scopes.find(*key);
  if (it == catalog.shared_scopes.end()) {
    it = catalog.shared_scopes.emplace(std::move(*key), compute()).first;
  }
  return it->second;
}

std::string aggregateVersion(const Catalog& catalog, ResourceType type,
                             const std::vector<std::string>& names) {
  const TypeCatalog& entries = catalog.of(type);
  VersionHasher hasher;
  for (const std::string& name : names) {
    auto it = entries.find(name);
    hasher.add(name);
    hasher.add(it == entries.end() ? std::string_view() : it->second.version);
  }
  return hasher.hex();
}

}  // namespace rdmesh::xds_server
