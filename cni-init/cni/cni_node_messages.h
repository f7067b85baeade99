// Messages of the node agent socket (node-sock contract v1) as rdmesh-cni speaks them: encoding
// requests and decoding replies. Pure functions, fuzzed with the CNI stdin.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "rdmesh/common/status.h"

namespace rdmesh::cni {

inline constexpr int kNodeProtocolVersion = 1;
// One request or reply datagram holds at most this much JSON.
inline constexpr size_t kMaxNodeMessageBytes = 64 * 1024;

// What pod_add tells the agent.
struct PodRegistration {
  std::string container_id;
  std::string netns;
  std::vector<std::string> ips;
  std::string interface;
  std::string pod_name;       // optional: "" is left out
  std::string pod_namespace;  // optional
  std::string pod_uid;        // optional
  std::vector<uint16_t> exclude_outbound_ports;
};

// One entry of pod_list.
struct RegisteredPod {
  std::string container_id;
  uint64_t netns_cookie = 0;
  std::vector<std::string> ips;
  std::string pod_name;
  std::string pod_namespace;
};

std::string encodePodAdd(const PodRegistration& pod);
std::string encodePodDel(std::string_view container_id);
std::string encodePodCheck(std::string_view container_id);
std::string encodePodList();

// A reply: {"ok":true, ...} gives the object; {"ok":false,"error":...} gives InvalidArgument with
// the agent's reason ("node agent: <error>"); anything else is a ProtocolError.
Result<nlohmann::json> decodeReply(std::string_view datagram);
// pod_add's netns_cookie (an unsigned 64-bit integer).
Result<uint64_t> decodePodAddReply(std::string_view datagram);
Result<std::vector<RegisteredPod>> decodePodListReply(std::string_view datagram);

}  // namespace rdmesh::cni
