// rdmesh-node's `xds:` section: how the agent reaches rdmesh-xds (the keys every xDS client
// shares, parsed once by xds::readBootstrap) plus what only a node agent has: the bearer token
// of the registration API and the trust domain of the identities it registers.
#pragma once

#include <yaml-cpp/yaml.h>

#include <optional>
#include <string>

#include "rdmesh/common/status.h"
#include "rdmesh/xds/bootstrap.h"

namespace rdmesh::node {

struct NodeXdsConfig : xds::Bootstrap {  // id defaults to "node~<node name>"
  // First line = bearer token of rdmesh-xds's registration API. "" = the agent subscribes but
  // does not register its pods (another source, e.g. Kubernetes, knows them).
  std::string registration_token_file;
  // Pods are registered as spiffe://<trust_domain>/ns/<ns>/sa/<service account>.
  std::string trust_domain = "cluster.local";
};

// YAML keys: servers, plaintext, delta, tls {ca_file, server_name}, id, connect_timeout_ms (as in
// rdmesh.yaml), registration_token_file, trust_domain. Unknown keys are errors. `line`/`column`
// (1-based) locate the section. Errors read "<source>:<line>:<col>: xds.<key>: <what>".
Status readNodeXdsSection(const YAML::Node& section, const std::string& source_name, int line,
                          int column, NodeXdsConfig* out);

// After flags were merged: checks the whole (servers, TLS xor plaintext, paths) and fills the
// default id. Errors read "xds.<key>: <what>".
Status finishNodeXdsConfig(const std::string& node_name, NodeXdsConfig* config);

// Overrides from the command line; each set flag wins over the file, and --xds-server alone
// creates the section.
struct NodeXdsFlags {
  std::vector<std::string> servers;
  std::optional<bool> plaintext;
  std::optional<bool> delta;
  std::optional<std::string> ca_file;
  std::optional<std::string> server_name;
  std::optional<std::string> registration_token_file;
};
void applyNodeXdsFlags(const NodeXdsFlags& flags, std::optional<NodeXdsConfig>* config);

}  // namespace rdmesh::node
