// The `xds:` section every rdmesh xDS client shares (rdmesh-proxy's rdmesh.yaml, rdmesh-node's
// node.yaml): which servers, how to reach them (TLS or h2c), which stream variant, the client id.
// Role-specific keys (a sidecar's workload, a node agent's registration token) are read by the
// owner; this is the one parser of the shared ones, so both files mean the same thing by them.
#pragma once

#include <yaml-cpp/yaml.h>

#include <array>
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "rdmesh/common/status.h"
#include "rdmesh/xds/client.h"

namespace rdmesh::xds {

struct Bootstrap {
  std::vector<std::string> servers;  // "host:port", tried in turn
  bool plaintext = false;            // h2c (tests, trusted networks); otherwise TLS
  bool delta = false;                // incremental stream instead of state of the world
  std::string ca_file;               // TLS: CA bundle that signs the server certificate
  std::string ca_pem;                // TLS: the same bundle inline (injected sidecars); one of the two
  std::string server_name;           // TLS: name the certificate must carry (default: the host)
  std::string id;                    // unique client id ("" = the owner's default)
  std::chrono::milliseconds connect_timeout{5000};
};

// Where a YAML node starts, 1-based as editors count (`fallback` when yaml-cpp has no mark), and
// its kind for "expected X, got Y" messages: shared by every rdmesh YAML reader.
struct YamlPosition {
  int line = 1;
  int column = 1;
};
YamlPosition yamlPositionOf(const YAML::Node& node, YamlPosition fallback);
const char* describeYamlType(const YAML::Node& node);  // "nothing", "a list", ...

// The shared keys; an owner accepts these plus its own.
inline constexpr std::array<std::string_view, 6> kBootstrapKeys = {
    "servers", "plaintext", "delta", "tls", "id", "connect_timeout_ms"};

// Reads the shared keys of `section` (a mapping whose keys the owner has already checked) into
// *out. `path` is the section's field path ("xds"); `line`/`column` (1-based) locate the section
// for errors about missing keys. Errors read "<source>:<line>:<col>: <path>.<key>: <what>".
// Never throws.
Status readBootstrap(const YAML::Node& section, const std::string& source_name,
                     const std::string& path, int line, int column, Bootstrap* out);

// The same checks for a bootstrap assembled from flags (no positions): servers present and
// host:port, TLS xor plaintext, id printable. Errors read "<path>.<key>: <what>".
Status checkBootstrap(const Bootstrap& bootstrap, const std::string& path);

// The connection part of the client's options (servers, TLS, variant, id, timeout).
void applyBootstrap(const Bootstrap& bootstrap, ClientOptions* options);

}  // namespace rdmesh::xds
