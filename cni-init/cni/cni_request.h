// Turning one CNI invocation (environment variables + stdin) into a validated CniRequest.
// Pure functions, no effects: the unit tests and the fuzz target drive them directly.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cni_spec.h"

namespace rdmesh::cni {

// The variables as the runtime set them; absent ones are empty.
struct CniEnvironment {
  std::string command;       // CNI_COMMAND
  std::string container_id;  // CNI_CONTAINERID
  std::string netns;         // CNI_NETNS
  std::string ifname;        // CNI_IFNAME
  std::string args;          // CNI_ARGS
  std::string node_socket;   // RDMESH_NODE_SOCKET (used when the config has no "nodeSocket")
};

// The Kubernetes pod, when the runtime is kubelet (CNI_ARGS K8S_POD_*); empty otherwise.
struct PodIdentity {
  std::string name;
  std::string pod_namespace;
  std::string uid;
};

// rdmesh-cni's own fields of the network configuration (README "rdmesh-cni"), with defaults.
struct PluginConfig {
  std::string cni_version;
  std::string network_name;
  std::string node_socket;                        // "nodeSocket"
  std::vector<uint16_t> exclude_outbound_ports;   // "excludeOutboundPorts", sorted, unique
  std::vector<std::string> exclude_namespaces;    // "excludeNamespaces": pods left alone
  std::string log_file;                           // "logFile": "" = stderr only
  int agent_timeout_ms = kDefaultAgentTimeoutMs;  // "agentTimeoutMs"
};

// One validated invocation of ADD, DEL or CHECK (VERSION carries only the command).
struct CniRequest {
  CniCommand command = CniCommand::kVersion;
  std::string container_id;
  std::string netns;  // may be empty for DEL
  std::string ifname;
  PodIdentity pod;
  PluginConfig config;
  // The previous plugin's result, kept in its original key order so ADD prints it back as given.
  std::optional<nlohmann::ordered_json> prev_result;
  // Addresses of the pod's interface in prev_result, without prefix length ("10.22.0.5").
  std::vector<std::string> pod_ips;

  // True when the configuration says to leave this pod out of the mesh.
  bool podExcluded() const;
};

// Bounds on stdin: a network configuration is a few KiB; nesting is bounded because printing a
// JSON value recurses once per level.
inline constexpr size_t kMaxStdinBytes = 1 << 20;
inline constexpr size_t kMaxJsonDepth = 64;
// Deepest [ / { nesting in `text` (strings skipped); any input, valid JSON or not.
size_t jsonNestingDepth(std::string_view text);

CniOr<CniCommand> parseCommand(std::string_view text);

// CNI_ARGS "K=V;K=V" (empty segments tolerated); a segment without '=' or with an empty key is an
// error (code 4).
CniOr<std::map<std::string, std::string>> parseCniArgs(std::string_view text);

// Addresses of the pod's interface listed in a result (0.3.0 .. 1.0.0 format): every ips[] entry
// whose "interface" index names the interface called `ifname` or one inside a sandbox, and
// entries without an index. Deduplicated, in result order. Code 7 for a malformed result.
CniOr<std::vector<std::string>> podIpsFromResult(const nlohmann::ordered_json& result,
                                                 std::string_view ifname);

// The whole invocation: command, variables, configuration, prevResult. Error codes: 4 (bad
// variables), 6 (stdin is not a JSON object), 1 (cniVersion missing or not supported, or CHECK
// before 0.4.0), 7 (bad rdmesh-cni field, missing or malformed prevResult).
CniOr<CniRequest> parseRequest(const CniEnvironment& env, std::string_view stdin_text);

// The version errors should be reported in: the configuration's when it is one rdmesh-cni
// speaks, else the newest. Reads as little as it can: works on any stdin.
std::string errorVersionFor(std::string_view stdin_text);

}  // namespace rdmesh::cni
