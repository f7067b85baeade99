// Everything a revision of the registry publishes, computed once per revision and shared by
// every client: each resource's wire JSON and content version, the derived clusters and
// listeners, and the indexes that scoping needs. Immutable once built.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "rdmesh/xds/resources.h"
#include "rdmesh/xds/wire.h"
#include "registry_store.h"

namespace rdmesh::xds_server {

struct CatalogEntry {
  std::string json;     // canonical compact JSON of the resource
  std::string version;  // content hash of `json` (16 hex digits)
};
using TypeCatalog = std::map<std::string, CatalogEntry, std::less<>>;

// Resources of one type in some client's scope, sorted, with their aggregate version.
struct ScopedResources {
  std::vector<std::string> names;
  std::string version;
};
using ScopedResourcesPtr = std::shared_ptr<const ScopedResources>;

struct Catalog {
  uint64_t revision = 0;
  std::array<TypeCatalog, xds::kResourceTypeCount> resources;

  // Scoping indexes (names refer to entries of `resources`).
  std::map<std::string, std::vector<std::string>, std::less<>> clusters_by_namespace;
  std::map<std::string, std::vector<std::string>, std::less<>> nodes_by_cluster;
  std::map<std::string, std::string, std::less<>> service_by_cluster;
  std::map<std::string, std::vector<std::string>, std::less<>> workloads_by_node;
  // Inbound listener names per workload ("capture" is common to all sidecars).
  std::map<std::string, std::vector<std::string>, std::less<>> listeners_by_workload;

  const TypeCatalog& of(xds::ResourceType type) const {
    return resources[static_cast<size_t>(type)];
  }

  // The comma-joined JSON of a set of resources, keyed by type and aggregate version: clients
  // with the same scope (every sidecar of a namespace) share one copy of their push. Weak, so a
  // body lives only while some stream is still sending it. Loop thread only.
  mutable std::map<std::string, std::weak_ptr<const std::string>, std::less<>> joined_bodies;
  // Scopes that many clients share (a namespace's clusters, the nodes and services behind
  // them), by scopeKey(): on a change, 1,000 sidecars of a namespace cost one scope
  // computation. Filled on first use; lives as long as the revision. Loop thread only.
  mutable std::map<std::string, ScopedResourcesPtr, std::less<>> shared_scopes;
};
using CatalogPtr = std::shared_ptr<const Catalog>;

// Derivation rules (docs/xds.md): one cluster per service port, named
// "outbound|<port>||<svc>.<ns>", whose endpoints are the workloads of the service's namespace
// whose labels match the (non-empty) selector, at "<first pod ip>:<target port>"; one inbound
// listener "inbound|<port>" per workload port and the capture listener for every sidecar.
std::vector<xds::Cluster> deriveClusters(const RegistrySnapshot& snapshot);
std::vector<xds::Listener> deriveListeners(const xds::Workload& workload);
xds::Listener captureListener();
std::string clusterName(const xds::Service& service, uint16_t port);

CatalogPtr buildCatalog(const RegistrySnapshot& snapshot);

// 64-bit FNV-1a as 16 hex digits: resource versions and per-client aggregate versions.
class VersionHasher {
 public:
  void add(std::string_view bytes);
  std::string hex() const;

 private:
  uint64_t hash_ = 0xcbf29ce484222325ULL;
};

}  // namespace rdmesh::xds_server
