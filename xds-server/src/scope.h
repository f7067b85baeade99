// Which resources a client gets (docs/xds.md, "Scoping"): never the whole cluster.
//  role node:    all Nodes; the Workloads on its own node; nothing else.
//  role sidecar: Listeners for its workload (inbound|<port> per workload port, and capture);
//                Clusters of the services in its namespace plus clusters it names explicitly;
//                Nodes referenced by those clusters' endpoints; the Services behind those
//                clusters; its own Workload.
// Explicit names narrow every other type to the named resources inside the scope.
#pragma once

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

// Aggregate version of a set of resources: hash over (name, version) pairs, 16 hex digits.
std::string aggregateVersion(const Catalog& catalog, xds::ResourceType type,
                             const std::vector<std::string>& names);

}  // namespace rdmesh::xds_server
