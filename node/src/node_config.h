// rdmesh-node's configuration: an optional YAML file, overridden by command-line flags.
#pragma once

#include <string>

#include "rdmesh/common/status.h"

namespace rdmesh::node {

struct NodeAgentConfig {
  std::string node_name;                                // default: the host name
  std::string socket_path = "/var/run/rdmesh/node.sock";  // RDMESH_NODE_SOCKET for clients
  std::string state_file = "/var/run/rdmesh/pods.json";   // the pod registry across restarts
  bool bpf = true;             // eBPF capture on; off = registry only (LD_PRELOAD nodes)
  std::string cgroup_path;     // cgroup v2 directory to attach at; "" = the cgroup v2 root
  std::string pin_dir = "/sys/fs/bpf/rdmesh";
  std::string log_level = "info";
};

// YAML keys (all optional; unknown keys are errors):
//   node: {name: STR}
//   socket: PATH
//   state_file: PATH
//   capture: {bpf: BOOL, cgroup: PATH, pin_dir: PATH}
//   log_level: trace|debug|info|warn|error
// Errors read "<source>:<line>:<col>: <field>: <what is wrong>".
Result<NodeAgentConfig> parseNodeConfig(const std::string& yaml_text,
                                        const std::string& source_name);
Result<NodeAgentConfig> loadNodeConfigFile(const std::string& path);

// Fills the defaults that depend on the host (node name); checks the values.
Status finishNodeConfig(NodeAgentConfig* config);

}  // namespace rdmesh::node
