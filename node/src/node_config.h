// rdmesh-node's configuration: an optional YAML file, overridden by command-line flags.
#pragma once

#include <optional>
#include <string>

#include "rdmesh/common/status.h"
#include "xds_config.h"

namespace rdmesh::node {

struct NodeAgentConfig {
  std::string node_name;                                  // default: the host name
  std::string socket_path = "/var/run/rdmesh/node.sock";  // RDMESH_NODE_SOCKET for clients
  std::string state_file = "/var/run/rdmesh/pods.json";   // the pod registry across restarts
  bool bpf = true;          // eBPF capture on; off = registry only (LD_PRELOAD nodes)
  std::string cgroup_path;  // cgroup v2 directory to attach at; "" = the cgroup v2 root
  std::string pin_dir = "/sys/fs/bpf/rdmesh";
  std::string log_level = "info";
  std::optional<NodeXdsConfig> xds;  // joins the control plane (rdmesh-xds) when set
};

// YAML keys (all optional; unknown keys are errors):
//   node: {name: STR}
//   socket: PATH
//   state_file: PATH
//   capture: {bpf: BOOL, cgroup: PATH, pin_dir: PATH}
//   log_level: trace|debug|info|warn|error
//   xds: {servers, plaintext, delta, tls, id, connect_timeout_ms, registration_token_file,
//         trust_domain}  (xds_config.h)
// Errors read "<source>:<line>:<col>: <field>: <what is wrong>".
Result<NodeAgentConfig> parseNodeConfig(const std::string& yaml_text,
                                        const std::string& source_name);
Result<NodeAgentConfig> loadNodeConfigFile(const std::string& path);

// Fills the defaults that depend on the host (node name); checks the values.
Status finishNodeConfig(NodeAgentConfig* config);

}  // namespace rdmesh::node
