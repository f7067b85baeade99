// The five xDS resource types as C++ values, and their JSON codec. Parsing is strict: every
// field is type- and range-checked, unknown fields are errors, and each error names the field
// path ("resources[2].endpoints[0].address: expected \"ip:port\"").
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "rdmesh/common/status.h"
#include "rdmesh/xds/wire.h"

namespace rdmesh::xds {

enum class FabricKind : uint8_t { kVerbs, kTcp, kShm };
enum class LbPolicy : uint8_t { kRoundRobin, kLeastRequest };
enum class ListenerDirection : uint8_t { kOutbound, kInbound, kCapture };

struct RdmaInfo {
  std::optional<std::string> gid;
  bool operator==(const RdmaInfo&) const = default;
};

struct Node {
  std::string name;
  std::vector<std::string> addresses;  // IPs
  FabricKind fabric = FabricKind::kTcp;
  std::string session_address;  // "ip:15008"
  std::optional<RdmaInfo> rdma;
  bool operator==(const Node&) const = default;
};

struct Workload {
  std::string name;  // "<ns>/<pod>"
  std::string namespace_name;
  std::string pod;
  std::optional<std::string> uid;
  std::vector<std::string> ips;
  std::string node;
  std::string identity;  // spiffe://<td>/ns/<ns>/sa/<sa>
  std::string service_account;
  std::vector<uint16_t> ports;
  std::map<std::string, std::string> labels;
  bool operator==(const Workload&) const = default;
};

struct ServicePort {
  std::optional<std::string> name;
  uint16_t port = 0;
  uint16_t target_port = 0;
  std::string protocol = "TCP";
  bool operator==(const ServicePort&) const = default;
};

struct Service {
  std::string name;  // "<ns>/<svc>"
  std::string namespace_name;
  std::vector<std::string> cluster_ips;
  std::vector<ServicePort> ports;
  std::map<std::string, std::string> selector;
  bool operator==(const Service&) const = default;
};

struct ClusterEndpoint {
  std::string node;      // node name
  std::string address;   // "<pod ip>:<target port>"
  std::string workload;  // "<ns>/<pod>"
  bool operator==(const ClusterEndpoint&) const = default;
};

struct Cluster {
  std::string name;  // "outbound|<port>||<svc>.<ns>"
  LbPolicy lb_policy = LbPolicy::kRoundRobin;
  uint32_t connect_timeout_ms = 1000;
  std::vector<std::string> service_addresses;  // "<cluster ip>:<port>"
  std::vector<ClusterEndpoint> endpoints;
  bool operator==(const Cluster&) const = default;
};

struct Listener {
  std::string name;
  ListenerDirection direction = ListenerDirection::kOutbound;
  std::optional<std::string> address;  // outbound/capture: "ip:port"
  std::optional<std::string> cluster;  // outbound
  std::optional<uint16_t> port;        // inbound
  std::optional<std::string> target;   // inbound: "ip:port"
  bool operator==(const Listener&) const = default;
};

// Alternatives in ResourceType order.
using Resource = std::variant<Node, Workload, Service, Listener, Cluster>;
static_assert(std::variant_size_v<Resource> == kResourceTypeCount);

ResourceType typeOf(const Resource& resource);
const std::string& nameOf(const Resource& resource);

std::string_view toString(FabricKind kind);
std::string_view toString(LbPolicy policy);
std::string_view toString(ListenerDirection direction);

// `path` prefixes error messages ("resources[3]"); empty for a top-level object.
Result<Node> parseNode(const nlohmann::json& value, const std::string& path);
Result<Workload> parseWorkload(const nlohmann::json& value, const std::string& path);
Result<Service> parseService(const nlohmann::json& value, const std::string& path);
Result<Listener> parseListener(const nlohmann::json& value, const std::string& path);
Result<Cluster> parseCluster(const nlohmann::json& value, const std::string& path);
Result<Resource> parseResource(ResourceType type, const nlohmann::json& value,
                               const std::string& path);
// Parses one resource from JSON text (registration API bodies).
Result<Resource> parseResourceText(ResourceType type, std::string_view text);

nlohmann::json toJson(const Node& node);
nlohmann::json toJson(const Workload& workload);
nlohmann::json toJson(const Service& service);
nlohmann::json toJson(const Listener& listener);
nlohmann::json toJson(const Cluster& cluster);
nlohmann::json toJson(const Resource& resource);

// Canonical compact JSON text of a resource (stable key order): what goes on the wire and what
// versions are hashed over.
std::string serialize(const Resource& resource);

}  // namespace rdmesh::xds
