// The four discovery messages (state of the world and delta), the client identity and the
// stream error line, with their JSON codec. Parsers take one NDJSON line (without "\n") and
// return a clear InvalidArgument naming the field on any bad input; they never throw.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rdmesh/common/status.h"
#include "rdmesh/xds/resources.h"
#include "rdmesh/xds/wire.h"

namespace rdmesh::xds {

enum class ClientRole : uint8_t { kSidecar, kNode };
std::string_view toString(ClientRole role);

// The "node" field of a client's first request.
struct ClientIdentity {
  std::string id;
  ClientRole role = ClientRole::kSidecar;
  std::string node_name;
  std::string workload;        // "<ns>/<pod>", sidecar only
  std::string namespace_name;  // sidecar only
  std::string version;         // optional
  bool operator==(const ClientIdentity&) const = default;
};

struct ErrorDetail {
  int32_t code = 0;
  std::string message;
  bool operator==(const ErrorDetail&) const = default;
};

struct DiscoveryRequest {
  std::string version_info;
  std::optional<ClientIdentity> node;
  std::vector<std::string> resource_names;
  ResourceType type = ResourceType::kNode;
  std::string response_nonce;
  std::optional<ErrorDetail> error_detail;
  bool operator==(const DiscoveryRequest&) const = default;
};

struct DiscoveryResponse {
  std::string version_info;
  std::vector<Resource> resources;
  ResourceType type = ResourceType::kNode;
  std::string nonce;
  bool operator==(const DiscoveryResponse&) const = default;
};

struct DeltaDiscoveryRequest {
  std::optional<ClientIdentity> node;
  ResourceType type = ResourceType::kNode;
  std::vector<std::string> resource_names_subscribe;
  std::vector<std::string> resource_names_unsubscribe;
  std::map<std::string, std::string> initial_resource_versions;
  std::string response_nonce;
  std::optional<ErrorDetail> error_detail;
  bool operator==(const DeltaDiscoveryRequest&) const = default;
};

struct VersionedResource {
  std::string name;
  std::string version;
  Resource resource;
  bool operator==(const VersionedResource&) const = default;
};

struct DeltaDiscoveryResponse {
  std::string system_version_info;
  ResourceType type = ResourceType::kNode;
  std::string nonce;
  std::vector<VersionedResource> resources;
  std::vector<std::string> removed_resources;
  bool operator==(const DeltaDiscoveryResponse&) const = default;
};

// The line a server sends before resetting a stream: {"error":{"code":400,"message":"..."}}.
struct StreamError {
  int32_t code = 400;
  std::string message;
  bool operator==(const StreamError&) const = default;
};

Result<DiscoveryRequest> parseDiscoveryRequest(std::string_view line);
Result<DiscoveryResponse> parseDiscoveryResponse(std::string_view line);
Result<DeltaDiscoveryRequest> parseDeltaDiscoveryRequest(std::string_view line);
Result<DeltaDiscoveryResponse> parseDeltaDiscoveryResponse(std::string_view line);
// The error line if `line` is one; nothing when it is any other (or no) JSON object.
std::optional<StreamError> parseStreamError(std::string_view line);

// Compact JSON text, without the trailing "\n".
std::string serialize(const DiscoveryRequest& request);
std::string serialize(const DiscoveryResponse& response);
std::string serialize(const DeltaDiscoveryRequest& request);
std::string serialize(const DeltaDiscoveryResponse& response);
std::string serialize(const StreamError& error);

}  // namespace rdmesh::xds
