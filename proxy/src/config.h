// The standalone sidecar's configuration (rdmesh.yaml), as parsed and validated.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rdmesh/common/address.h"
#include "rdmesh/common/status.h"
#include "rdmesh/xds/bootstrap.h"

namespace rdmesh::proxy {

enum class FabricBackend { kTcp, kShm, kVerbs };
enum class LbPolicy { kRoundRobin, kLeastRequest };
enum class ListenerDirection { kOutbound, kInbound, kCapture };
// What the capture listener does with a connection whose original destination is neither a
// service address nor an endpoint of any cluster.
enum class UnknownDestination { kPassthrough, kReject };

struct NodeConfig {
  // Unique per node; the session key. Mesh mode: the node the pod runs on ($RDMESH_NODE_NAME,
  // the downward API's spec.nodeName, takes its place when set).
  std::string name;
  std::string identity;  // SPIFFE id carried in stream open; may be empty
  uint32_t workers = 1;  // worker threads (each its own event_base)
};

struct PeerConfig {
  std::string name;
  std::string address;  // tcp: "ip:port"; shm: unix socket path
  int line = 0;         // for error messages
};

struct TransportConfig {
  FabricBackend backend = FabricBackend::kTcp;
  std::string listen;  // tcp, verbs: "ip:port" (default 0.0.0.0:15008); shm: socket path
  // Per-stream receive ring (power of two, 4 KiB..16 MiB). 1 MiB keeps one bulk stream from
  // stalling on credit (256 KiB: 4.8 Gbit/s, 1 MiB: 11 Gbit/s on the shm bench); pages are only
  // resident while used and are returned to the kernel when a stream that touched them ends.
  uint32_t ring_bytes = 1024 * 1024;
  uint32_t max_streams = 1024;  // concurrent streams per session (1..4096)
  std::chrono::milliseconds keepalive_interval{5000};
  std::chrono::milliseconds keepalive_timeout{15000};
  std::chrono::milliseconds connect_timeout{2000};  // bootstrap of one session
  std::chrono::microseconds poll_budget{50};  // max adaptive spin before blocking (0 = never spin)
  std::vector<PeerConfig> peers;
  // verbs only: the RDMA device (empty: any) and RoCEv2 GID index (-1: the GID of the address
  // the session's bootstrap connection uses).
  std::string rdma_device;
  int gid_index = -1;
};

// Mesh mode (`node_agent:` in the file): the sidecar runs behind rdmesh-node, which owns the
// fabric; sessions are per remote sidecar, through the agent (docs/design/node-agent-datapath.md).
struct NodeAgentConfig {
  // $RDMESH_NODE_SOCKET, else node_agent.socket, else /var/run/rdmesh/node.sock.
  std::string socket;
  // The pod's own IPs, canonical: node_agent.pod_ips, else $RDMESH_POD_IPS (comma-separated) or
  // $RDMESH_POD_IP (the downward API's status.podIPs / status.podIP).
  std::vector<std::string> pod_ips;
  // Mesh sessions' own geometry. The agent registers (pins) each session's whole region with the
  // RNIC, one session per remote sidecar this pod talks to, so the standalone 1024 x 1 MiB
  // (1 GiB per session) is far too much: 256 streams x 256 KiB = 64 MiB of receive area, plus
  // 4 MiB of send staging, about 68 MiB pinned per session. 256 KiB is 2x the bandwidth-delay
  // product of a 100 Gbit/s stream at a 10 us credit round trip; 256 concurrent streams cover
  // the connection pools pods keep to one peer (docs/design/node-agent-datapath.md, "Geometry").
  uint32_t ring_bytes = 256 * 1024;  // per-stream receive ring (power of two, 4 KiB..16 MiB)
  uint32_t max_streams = 256;        // concurrent streams per session (1..4096)
  uint64_t staging_bytes = 4 << 20;  // send staging per session (64 KiB..64 MiB)
  // Outbound ports the node agent stops capturing for this pod (sent with session_listen):
  // node_agent.exclude_outbound_ports, else $RDMESH_EXCLUDE_OUTBOUND_PORTS ("5432,6379").
  std::vector<uint16_t> exclude_outbound_ports;
  // A session without streams for this long is closed by agreement with the peer and its region
  // released in the agent; the next stream dials it again. 0 keeps idle sessions.
  std::chrono::milliseconds idle_session_timeout{60000};
};

struct ListenerConfig {
  std::string name;
  ListenerDirection direction = ListenerDirection::kOutbound;
  // outbound: where apps connect (ip:port) and which cluster serves it.
  InetAddress address;
  std::string cluster;
  // inbound: destination port accepted from the tunnel, and the local app it maps to.
  uint16_t port = 0;
  InetAddress target;  // default 127.0.0.1:<port>
  // capture: where eBPF/LD_PRELOAD capture sends apps (`address`, default 127.0.0.1:15001, and
  // `address_v6`, default [::1]:15001 unless `address_v6: none`); each connection is routed by
  // its original destination (service address -> cluster, endpoint -> that endpoint).
  bool has_address_v6 = false;
  InetAddress address_v6;
  UnknownDestination unknown_destination = UnknownDestination::kPassthrough;
  // Abstract unix socket ("@name") where librdmesh-preload.so registers original destinations;
  // "" = the LD_PRELOAD path is off (the kernel's answers only: eBPF getsockname, SO_ORIGINAL_DST).
  std::string preload_socket;
  int line = 0;
};

struct EndpointConfig {
  std::string node;     // node name; equal to node.name means local (plain TCP)
  InetAddress address;  // pod address:port
  bool operator==(const EndpointConfig&) const = default;
};

struct ClusterConfig {
  std::string name;
  LbPolicy lb_policy = LbPolicy::kRoundRobin;
  std::chrono::milliseconds connect_timeout{1000};
  std::vector<EndpointConfig> endpoints;
  // Addresses apps use for the whole cluster (a Kubernetes service's cluster IP:port); the
  // capture listener sends connections to them to this cluster's endpoints.
  std::vector<InetAddress> service_addresses;
  int line = 0;
};

// Dynamic configuration from rdmesh-xds (docs/xds.md). With it, listeners, clusters and peers
// also come from the control plane, alongside (never instead of) the ones in the file.
// The shared keys (servers, plaintext, delta, tls, id, connect_timeout_ms) are xds::Bootstrap;
// id defaults to "sidecar~<workload>~<node>".
struct XdsConfig : xds::Bootstrap {
  std::string workload;               // "<namespace>/<pod>"
  std::string namespace_name;         // the workload's namespace
  std::vector<std::string> clusters;  // clusters wanted beyond the workload's namespace
  int line = 0;
};

struct AdminConfig {
  InetAddress address;  // default 127.0.0.1:15000
  // Serves GET /ready alone (no stats, no /quitquitquit), for the kubelet's probe, which
  // reaches the pod IP and not loopback. Injected sidecars: 0.0.0.0:15021.
  std::optional<InetAddress> probe_address;
};

struct ProxyConfig {
  NodeConfig node;
  AdminConfig admin;
  TransportConfig transport;
  std::vector<ListenerConfig> listeners;
  std::vector<ClusterConfig> clusters;
  std::optional<XdsConfig> xds;
  std::optional<NodeAgentConfig> node_agent;  // set: mesh mode
  std::chrono::milliseconds drain_timeout{5000};
  std::string source_path;  // file it came from (for /config_dump)
  std::string source_text;  // raw YAML (for /config_dump)
};

// What workers run on: an immutable snapshot of the whole configuration. A live update (xDS)
// builds a new one and hands it to every worker; connections already open keep what they copied.
using ConfigSnapshot = std::shared_ptr<const ProxyConfig>;

// Parses and validates; errors read "<file>:<line>:<col>: <field path>: <what is wrong>".
Result<ProxyConfig> parseConfig(const std::string& yaml_text, const std::string& source_name);
Result<ProxyConfig> loadConfigFile(const std::string& path);

// The effective configuration as JSON (defaults filled in), for /config_dump.
std::string configToJson(const ProxyConfig& config);

const char* toString(FabricBackend b);
const char* toString(LbPolicy p);
const char* toString(ListenerDirection d);
const char* toString(UnknownDestination u);

inline constexpr const char* kDefaultCaptureAddress = "127.0.0.1:15001";
inline constexpr const char* kDefaultCaptureAddressV6 = "[::1]:15001";
inline constexpr const char* kDefaultPreloadSocket = "@rdmesh-preload";
// Mesh mode: the pod's identity from the downward API.
inline constexpr const char* kNodeNameEnv = "RDMESH_NODE_NAME";
inline constexpr const char* kPodIpsEnv = "RDMESH_POD_IPS";
inline constexpr const char* kPodIpEnv = "RDMESH_POD_IP";
// Downward API (metadata.namespace, metadata.name): the xds workload when the file has none.
inline constexpr const char* kPodNamespaceEnv = "RDMESH_POD_NAMESPACE";
inline constexpr const char* kPodNameEnv = "RDMESH_POD_NAME";
inline constexpr const char* kExcludeOutboundPortsEnv = "RDMESH_EXCLUDE_OUTBOUND_PORTS";
// The whole configuration (YAML) when rdmesh-proxy runs without -c (injected sidecars).
inline constexpr const char* kProxyConfigEnv = "RDMESH_PROXY_CONFIG";

}  // namespace rdmesh::proxy
