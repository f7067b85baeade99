// Kubernetes objects -> rdmesh registry resources (JSON in the shape docs/xds.md gives them):
//  - Pod -> Workload, only for Running pods with an IP on the pod network (host-network and
//    terminating pods carry no mesh traffic): IPs, node, service account -> SPIFFE identity
//    spiffe://<trust domain>/ns/<ns>/sa/<sa>, TCP container ports, labels.
//  - Node -> Node: InternalIP addresses (ExternalIP when there is none), the session address
//    <first address>:15008, the fabric and RDMA GID that rdmesh-node publishes as annotations
//    rdmesh.io/fabric and rdmesh.io/rdma-gid (fabric "tcp" until it does).
//  - Service + its EndpointSlices -> Service: cluster IPs (none for headless), TCP ports with
//    their target ports (a named targetPort is resolved through the EndpointSlices' ports, which
//    carry the number the pods use), the selector that picks its workloads.
// Returns nothing (std::nullopt) for objects that are valid but not part of the mesh, and an
// error naming the field for objects that are malformed.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "rdmesh/common/status.h"

namespace rdmesh::xds::k8s {

inline constexpr std::string_view kFabricAnnotation = "rdmesh.io/fabric";
inline constexpr std::string_view kRdmaGidAnnotation = "rdmesh.io/rdma-gid";
// EndpointSlices name their Service with this label.
inline constexpr std::string_view kServiceNameLabel = "kubernetes.io/service-name";

std::string spiffeIdentity(const std::string& trust_domain, const std::string& ns,
                           const std::string& service_account);

Result<std::optional<nlohmann::json>> workloadFromPod(const nlohmann::json& pod,
                                                      const std::string& trust_domain);
Result<std::optional<nlohmann::json>> nodeFromNode(const nlohmann::json& node);
Result<std::optional<nlohmann::json>> serviceFromService(
    const nlohmann::json& service, const std::vector<const nlohmann::json*>& endpoint_slices);

// "<namespace>/<service name>" an EndpointSlice belongs to, or nothing if it has no such label.
std::optional<std::string> serviceOfEndpointSlice(const nlohmann::json& slice);

}  // namespace rdmesh::xds::k8s
