// The rdmesh xDS wire contract (docs/xds.md), version 1: type URLs, HTTP paths and limits,
// spelled once. Server and clients include this header; nothing else spells these strings.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace rdmesh::xds {

// HTTP/2 paths of the two long-lived streams and their content type.
inline constexpr std::string_view kStreamPath = "/rdmesh.xds.v1.Discovery/Stream";
inline constexpr std::string_view kDeltaStreamPath = "/rdmesh.xds.v1.Discovery/DeltaStream";
inline constexpr std::string_view kNdjsonContentType = "application/x-ndjson";
inline constexpr std::string_view kAlpnH2 = "h2";

// Registration API prefixes (PUT/DELETE <prefix><name>).
inline constexpr std::string_view kWorkloadsPath = "/v1/workloads/";
inline constexpr std::string_view kNodesPath = "/v1/nodes/";

inline constexpr uint16_t kTlsPort = 15012;
inline constexpr uint16_t kPlaintextPort = 15010;

// One NDJSON message (one line, without its "\n") is at most 4 MiB.
inline constexpr size_t kMaxMessageBytes = size_t{4} << 20;
// JSON nesting deeper than this is never a valid message (resources nest 4 levels); the cap keeps
// hostile input ("[[[[...") from costing stack or time.
inline constexpr int kMaxJsonDepth = 16;
// Any single string field (names, addresses, messages).
inline constexpr size_t kMaxStringBytes = 4096;
// Entries in one list or map field (resource_names, endpoints, labels, ...).
inline constexpr size_t kMaxListEntries = 100000;

static_assert(kMaxMessageBytes == 4194304, "contract: <= 4 MiB per message");
static_assert(kMaxStringBytes < kMaxMessageBytes);
static_assert(kMaxJsonDepth >= 5, "a delta response nests resources 5 levels deep");

enum class ResourceType : uint8_t { kNode, kWorkload, kService, kListener, kCluster };
inline constexpr size_t kResourceTypeCount = 5;

inline constexpr std::array<std::string_view, kResourceTypeCount> kTypeUrls = {
    "type.rdmesh.io/rdmesh.v1.Node",    "type.rdmesh.io/rdmesh.v1.Workload",
    "type.rdmesh.io/rdmesh.v1.Service", "type.rdmesh.io/rdmesh.v1.Listener",
    "type.rdmesh.io/rdmesh.v1.Cluster",
};
static_assert(static_cast<size_t>(ResourceType::kCluster) + 1 == kResourceTypeCount);

inline constexpr std::array<ResourceType, kResourceTypeCount> kAllResourceTypes = {
    ResourceType::kNode, ResourceType::kWorkload, ResourceType::kService, ResourceType::kListener,
    ResourceType::kCluster};

constexpr std::string_view typeUrl(ResourceType type) {
  return kTypeUrls[static_cast<size_t>(type)];
}
constexpr std::optional<ResourceType> resourceTypeFromUrl(std::string_view url) {
  for (ResourceType type : kAllResourceTypes) {
    if (typeUrl(type) == url) return type;
  }
  return std::nullopt;
}
// "Node", "Workload", ... (the part after the last '.'), for logs and metrics labels.
constexpr std::string_view shortName(ResourceType type) {
  std::string_view url = typeUrl(type);
  return url.substr(url.rfind('.') + 1);
}

// Well-known names (ARCHITECTURE.md).
inline constexpr std::string_view kCaptureListenerName = "capture";
inline constexpr std::string_view kCaptureListenerAddress = "127.0.0.1:15001";
inline constexpr uint16_t kNodeSessionPort = 15008;

}  // namespace rdmesh::xds
