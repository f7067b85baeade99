// node.sock requests (docs/node-agent.md, contract version 1): the envelope every request shares,
// and typed parsing of the fields of each op. Pure functions over bytes/JSON: no I/O, never
// throws, every error names the field that is wrong. Fuzzed by tests/fuzz/fuzz_node_request.cc.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rdmesh/common/status.h"
#include "rdmesh/transport/hello.h"

namespace rdmesh::node {

inline constexpr int kNodeProtocolVersion = 1;
inline constexpr size_t kMaxRequestBytes = 64 * 1024;

// {"v":1, "op":"<op>", ...fields}
struct RequestEnvelope {
  std::string op;
  nlohmann::json body;  // the whole object (fields are read by the op's parser)
};
Result<RequestEnvelope> parseEnvelope(std::string_view datagram);

struct PodAddRequest {
  std::string container_id;
  std::string netns;             // path of the pod's network namespace
  std::vector<std::string> ips;  // canonical text form, v4 and/or v6
  std::string interface;
  std::string pod_name;  // optional fields are "" when absent
  std::string pod_namespace;
  std::string pod_uid;
  std::vector<uint16_t> exclude_outbound_ports;  // sorted, unique
  // What the agent tells rdmesh-xds beyond the IPs (the Workload's fields); optional.
  std::string service_account;
  std::vector<uint16_t> ports;  // sorted, unique
  std::map<std::string, std::string> labels;
  bool operator==(const PodAddRequest&) const = default;
};
Result<PodAddRequest> parsePodAdd(const nlohmann::json& body);

// An optional list of ports named `name` (sorted, unique; absent = empty).
Result<std::vector<uint16_t>> parsePortField(const nlohmann::json& body, const char* name);

// pod_del and pod_check carry only the container id.
Result<std::string> parseContainerIdOnly(const nlohmann::json& body);

// Session ops (mesh mode). Hellos arrive as lowercase hex of transport::encodeHello and are
// parsed (a Hello the peer could not use is an error here, not on the peer node).
struct SessionListenRequest {
  std::vector<std::string> pod_ips;  // canonical text form
  // The pod's rdmesh.io/exclude-outbound-ports, passed by its injected sidecar: the agent stops
  // capturing them for the caller's pod (sorted, unique; empty = none).
  std::vector<uint16_t> exclude_outbound_ports;
};
Result<SessionListenRequest> parseSessionListen(const nlohmann::json& body);

struct SessionOpenRequest {
  std::string destination_ip;  // canonical
  std::string node;            // the destination pod's node
  std::vector<std::byte> hello;
  transport::Hello parsed_hello;
};
Result<SessionOpenRequest> parseSessionOpen(const nlohmann::json& body);

struct SessionAcceptRequest {
  uint64_t offer_id = 0;
  std::vector<std::byte> hello;
  transport::Hello parsed_hello;
};
Result<SessionAcceptRequest> parseSessionAccept(const nlohmann::json& body);

struct SessionRefuseRequest {
  uint64_t offer_id = 0;
  std::string reason;
};
Result<SessionRefuseRequest> parseSessionRefuse(const nlohmann::json& body);

// Replies. Strings are dumped with invalid UTF-8 replaced, so a reply is always valid JSON.
std::string okReply(nlohmann::json fields = nlohmann::json::object());
std::string errorReply(std::string_view message);

}  // namespace rdmesh::node
