// rdmesh-node's configuration: an optional YAML file, overridden by command-line flags.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "rdmesh/common/status.h"
#include "rdmesh/transport/fabric.h"
#include "rdmesh/transport/session_manager.h"
#include "xds_config.h"

namespace rdmesh::node {

// The session switch (fabric_module.h): links to the peer nodes and the sidecars' sessions. On
// when node.yaml has a `fabric:` section (or --fabric-listen is given). Peers come from the file
// until the control plane provides them (peer_directory.h).
struct FabricConfig {
  bool enabled = false;
  std::string listen = "0.0.0.0:15008";
  std::vector<transport::PeerSpec> peers;
  bool rdma = true;  // false: tcp links only
  // Register sidecar memory on demand (ODP) when the RNIC supports it, instead of pinning it.
  bool on_demand_paging = false;
  transport::VerbsFabricOptions verbs;
  // Session ops check that the caller runs in the netns of the registered pod owning the IPs.
  // false only for standalone tests without pod_add (any local process may then claim any IP).
  bool verify_caller_netns = true;
};

struct NodeAgentConfig {
  std::string node_name;                                  // default: the host name
  std::string socket_path = "/var/run/rdmesh/node.sock";  // RDMESH_NODE_SOCKET for clients
  std::string state_file = "/var/run/rdmesh/pods.json";   // the pod registry across restarts
  bool bpf = true;          // eBPF capture on; off = registry only (LD_PRELOAD nodes)
  std::string cgroup_path;  // cgroup v2 directory to attach at; "" = the cgroup v2 root
  std::string pin_dir = "/sys/fs/bpf/rdmesh";
  std::string log_level = "info";
  FabricConfig fabric;
  std::optional<NodeXdsConfig> xds;  // joins the control plane (rdmesh-xds) when set
};

// YAML keys (all optional; unknown keys are errors):
//   node: {name: STR}
//   socket: PATH
//   state_file: PATH
//   capture: {bpf: BOOL, cgroup: PATH, pin_dir: PATH}
//   log_level: trace|debug|info|warn|error
//   fabric: {listen: "IP:PORT", rdma: BOOL, on_demand_paging: BOOL, verify_caller_netns: BOOL,
//            verbs: {device: STR, gid_index: INT, port: INT},
//            peers: [{name: STR, address: "IP:PORT"}, ...]}
//   xds: {servers, plaintext, delta, tls, id, connect_timeout_ms, registration_token_file,
//         trust_domain}  (xds_config.h)
// Errors read "<source>:<line>:<col>: <field>: <what is wrong>".
Result<NodeAgentConfig> parseNodeConfig(const std::string& yaml_text,
                                        const std::string& source_name);
Result<NodeAgentConfig> loadNodeConfigFile(const std::string& path);

// Fills the defaults that depend on the host (node name); checks the values.
Status finishNodeConfig(NodeAgentConfig* config);

}  // namespace rdmesh::node
