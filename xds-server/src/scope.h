// Which resources a client gets (docs/xds.md, "Scoping"): never the whole cluster.
//  role node:    all Nodes; the Workloads on its own node; nothing else.
//  role sidecar: Listeners for its workload (inbound|<port> per workload port, and capture);
//                Clusters of the services in its namespace plus clusters it names explicitly;
//                Nodes referenced by those clusters' endpoints; the Services behind those
//                clusters; its own Workload.
// Explicit names narrow every other type to the named resources inside the scope.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "catalog.h"
#include "rdmesh/xds/messages.h"

namespace rdmesh::xds_server {

struct ScopeQuery {
  const xds::ClientIdentity& client;
  xds::ResourceType type;
  // Names the client asked for for `type` (empty = everything in scope).
  const std::vector<std::string>& names;
  // Clusters the client named explicitly (its Cluster subscription): they widen the cluster
  // scope and with it the Node and Service scopes.
  const std::vector<std::string>& explicit_clusters;
};

// Sorted, unique names of `query.type` resources present in `catalog`.
std::vector<std::string> resourcesInScope(const Catalog& catalog, const ScopeQuery& query);

// The inputs that decide `query`'s scope, as a cache key, when clients commonly share that
// scope (a sidecar's clusters, nodes and services depend on its namespace, not on its pod; a
// node agent's nodes on nothing); nullopt when the scope is the client's own.
std::optional<std::string> sharedScopeKey(const ScopeQuery& query);

// resourcesInScope() and aggregateVersion() of `query`, from the catalog's shared scopes when
// sharedScopeKey() gives a key (computed by the first client that asks).
ScopedResourcesPtr scopedResources(const Catalog& catalog, const ScopeQuery& query);

// Aggregate version of a set of resources: hash over (name, version) pairs, 16 hex digits.
std::string aggregateVersion(const Catalog& catalog, xds::ResourceType type,
                             const std::vector<std::string>& names);

}  // namespace rdmesh::xds_server
