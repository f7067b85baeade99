#include "config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace rdmesh::proxy {
namespace {

using namespace std::chrono_literals;

// Every key set to a non-default value. Error tests edit single lines of it, so the line numbers
// in their expectations are the line numbers here: keep the layout stable.
constexpr const char* kFullConfig = R"(node:
  name: node-a
  identity: spiffe://cluster.local/ns/default/sa/client
  workers: 2
admin:
  address: 127.0.0.1:15100
transport:
  backend: tcp
  listen: 10.0.0.1:15008
  ring_bytes: 65536
  max_streams: 512
  keepalive_interval_ms: 1000
  keepalive_timeout_ms: 3000
  connect_timeout_ms: 500
  poll_budget_us: 20
  peers:
    - name: node-b
      address: 10.0.0.2:15008
    - name: node-c
      address: 10.0.0.3:15008
listeners:
  - name: redis-out
    direction: outbound
    address: 127.0.0.1:16379
    cluster: redis
  - name: redis-in
    direction: inbound
    port: 6379
    target: 127.0.0.1:7379
clusters:
  - name: redis
    lb_policy: least_request
    connect_timeout_ms: 250
    endpoints:
      - node: node-b
        address: 10.0.0.2:6379
      - node: node-a
        address: 127.0.0.1:6380
drain_timeout_ms: 2500
)";

// kFullConfig with some 1-based lines replaced ("" deletes a line; a replacement may span
// several lines).
std::string withLines(const std::map<int, std::string>& edits) {
  std::istringstream in(kFullConfig);
  std::string out;
  std::string current;
  for (int number = 1; std::getline(in, current); ++number) {
    auto edit = edits.find(number);
    if (edit == edits.end()) {
      out += current + "\n";
    } else if (!edit->second.empty()) {
      out += edit->second + "\n";
    }
  }
  return out;
}

std::string withLine(int line, const std::string& replacement) {
  return withLines({{line, replacement}});
}

// The error message parseConfig gives for `yaml`, or a failure if it parsed.
std::string errorFor(const std::string& yaml) {
  Result<ProxyConfig> config = parseConfig(yaml, "test.yaml");
  if (config.isOk()) return "<parsed without error>";
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  return config.status().message();
}

TEST(ConfigTest, ParsesFullConfig) {
  Result<ProxyConfig> parsed = parseConfig(kFullConfig, "node-a.yaml");
  ASSERT_TRUE(parsed.isOk()) << parsed.status().message();
  const ProxyConfig& config = parsed.value();

  EXPECT_EQ(config.node.name, "node-a");
  EXPECT_EQ(config.node.identity, "spiffe://cluster.local/ns/default/sa/client");
  EXPECT_EQ(config.node.workers, 2u);
  EXPECT_EQ(config.admin.address.toString(), "127.0.0.1:15100");

  const TransportConfig& transport = config.transport;
  EXPECT_EQ(transport.backend, FabricBackend::kTcp);
  EXPECT_EQ(transport.listen, "10.0.0.1:15008");
  EXPECT_EQ(transport.ring_bytes, 65536u);
  EXPECT_EQ(transport.max_streams, 512u);
  EXPECT_EQ(transport.keepalive_interval, 1000ms);
  EXPECT_EQ(transport.keepalive_timeout, 3000ms);
  EXPECT_EQ(transport.connect_timeout, 500ms);
  EXPECT_EQ(transport.poll_budget, 20us);
  ASSERT_EQ(transport.peers.size(), 2u);
  EXPECT_EQ(transport.peers[0].name, "node-b");
  EXPECT_EQ(transport.peers[0].address, "10.0.0.2:15008");
  EXPECT_EQ(transport.peers[0].line, 17);
  EXPECT_EQ(transport.peers[1].name, "node-c");
  EXPECT_EQ(transport.peers[1].line, 19);

  ASSERT_EQ(config.listeners.size(), 2u);
  const ListenerConfig& out = config.listeners[0];
  EXPECT_EQ(out.name, "redis-out");
  EXPECT_EQ(out.direction, ListenerDirection::kOutbound);
  EXPECT_EQ(out.address.toString(), "127.0.0.1:16379");
  EXPECT_EQ(out.cluster, "redis");
  EXPECT_EQ(out.line, 22);
  const ListenerConfig& in = config.listeners[1];
  EXPECT_EQ(in.name, "redis-in");
  EXPECT_EQ(in.direction, ListenerDirection::kInbound);
  EXPECT_EQ(in.port, 6379);
  EXPECT_EQ(in.target.toString(), "127.0.0.1:7379");
  EXPECT_EQ(in.line, 26);

  ASSERT_EQ(config.clusters.size(), 1u);
  const ClusterConfig& cluster = config.clusters[0];
  EXPECT_EQ(cluster.name, "redis");
  EXPECT_EQ(cluster.lb_policy, LbPolicy::kLeastRequest);
  EXPECT_EQ(cluster.connect_timeout, 250ms);
  EXPECT_EQ(cluster.line, 31);
  ASSERT_EQ(cluster.endpoints.size(), 2u);
  EXPECT_EQ(cluster.endpoints[0].node, "node-b");
  EXPECT_EQ(cluster.endpoints[0].address.toString(), "10.0.0.2:6379");
  EXPECT_EQ(cluster.endpoints[1].node, "node-a");

  EXPECT_EQ(config.drain_timeout, 2500ms);
  EXPECT_EQ(config.source_path, "node-a.yaml");
  EXPECT_EQ(config.source_text, kFullConfig);
}

TEST(ConfigTest, FillsDefaults) {
  Result<ProxyConfig> parsed = parseConfig(R"(node:
  name: n1
transport:
  backend: shm
listeners:
  - name: in
    direction: inbound
    port: 8080
)",
                                           "minimal.yaml");
  ASSERT_TRUE(parsed.isOk()) << parsed.status().message();
  const ProxyConfig& config = parsed.value();
  EXPECT_EQ(config.node.identity, "");
  EXPECT_EQ(config.node.workers, 1u);
  EXPECT_EQ(config.admin.address.toString(), "127.0.0.1:15000");
  EXPECT_EQ(config.transport.backend, FabricBackend::kShm);
  EXPECT_EQ(config.transport.listen, "/var/run/rdmesh/n1.sock");
  EXPECT_EQ(config.transport.ring_bytes, 1024u * 1024);
  EXPECT_EQ(config.transport.max_streams, 1024u);
  EXPECT_EQ(config.transport.keepalive_interval, 5000ms);
  EXPECT_EQ(config.transport.keepalive_timeout, 15000ms);
  EXPECT_EQ(config.transport.connect_timeout, 2000ms);
  EXPECT_EQ(config.transport.poll_budget, 50us);
  EXPECT_TRUE(config.transport.peers.empty());
  ASSERT_EQ(config.listeners.size(), 1u);
  EXPECT_EQ(config.listeners[0].target.toString(), "127.0.0.1:8080");
  EXPECT_TRUE(config.clusters.empty());
  EXPECT_EQ(config.drain_timeout, 5000ms);
}

// Mesh mode: node_agent makes the transport section optional and the agent's socket and the
// pod's IPs come from the file or the downward API's environment.
using ::testing::HasSubstr;

class MeshConfigTest : public ::testing::Test {
 protected:
  void SetUp() override { clearEnv(); }
  void TearDown() override { clearEnv(); }
  static void clearEnv() {
    for (const char* name : {kNodeNameEnv, kPodIpsEnv, kPodIpEnv, "RDMESH_NODE_SOCKET"}) {
      ::unsetenv(name);
    }
  }
  static constexpr const char* kMesh = R"(node: {name: node-a}
node_agent:
  pod_ips: ["10.42.1.7", "fd00:0::7"]
listeners:
  - {name: out, direction: outbound, address: "127.0.0.1:0", cluster: c}
clusters:
  - name: c
    endpoints: [{node: node-b, address: "10.42.2.9:6379"}]
)";
};

TEST_F(MeshConfigTest, NodeAgentNeedsNoTransportAndAcceptsAnyEndpointNode) {
  Result<ProxyConfig> parsed = parseConfig(kMesh, "mesh.yaml");
  ASSERT_TRUE(parsed.isOk()) << parsed.status().message();
  ASSERT_TRUE(parsed->node_agent.has_value());
  EXPECT_EQ(parsed->node_agent->socket, "/var/run/rdmesh/node.sock");
  EXPECT_EQ(parsed->node_agent->pod_ips, (std::vector<std::string>{"10.42.1.7", "fd00::7"}));
  // Mesh sessions' own geometry (the agent pins each session's region whole): about 68 MiB.
  EXPECT_EQ(parsed->node_agent->ring_bytes, 256u << 10);
  EXPECT_EQ(parsed->node_agent->max_streams, 256u);
  EXPECT_EQ(parsed->node_agent->staging_bytes, 4u << 20);
  // Idle sessions give their pinned region back after a minute.
  EXPECT_EQ(parsed->node_agent->idle_session_timeout, std::chrono::milliseconds(60000));
  EXPECT_THAT(configToJson(*parsed), HasSubstr("\"node_agent\""));
}

TEST_F(MeshConfigTest, SessionGeometryIsSetInTheNodeAgentSection) {
  Result<ProxyConfig> parsed = parseConfig(R"(node: {name: node-a}
node_agent:
  pod_ips: [10.42.1.7]
  ring_bytes: 1048576
  max_streams: 64
  staging_bytes: 2097152
  idle_session_timeout_ms: 0
listeners: [{name: in, direction: inbound, port: 80}]
)",
                                           "geometry.yaml");
  ASSERT_TRUE(parsed.isOk()) << parsed.status().message();
  EXPECT_EQ(parsed->node_agent->ring_bytes, 1u << 20);
  EXPECT_EQ(parsed->node_agent->max_streams, 64u);
  EXPECT_EQ(parsed->node_agent->staging_bytes, 2u << 20);
  auto dump = nlohmann::json::parse(configToJson(*parsed));
  EXPECT_EQ(dump["node_agent"]["ring_bytes"], 1u << 20);
  EXPECT_EQ(dump["node_agent"]["max_streams"], 64u);
  EXPECT_EQ(parsed->node_agent->idle_session_timeout.count(), 0);  // 0: keep idle sessions
  EXPECT_EQ(dump["node_agent"]["idle_session_timeout_ms"], 0);
  // The standalone fabric's ring keys do not apply, so the dump does not show them.
  EXPECT_FALSE(dump["transport"].contains("ring_bytes"));
  EXPECT_FALSE(dump["transport"].contains("max_streams"));

  auto error = [](const std::string& agent_keys, const std::string& rest = "") {
    return parseConfig("node: {name: a}\nnode_agent: {pod_ips: [10.0.0.1]" + agent_keys + "}\n" +
                           rest + "listeners: []\n",
                       "g.yaml")
        .status()
        .message();
  };
  EXPECT_THAT(error(", ring_bytes: 300000"),
              HasSubstr("node_agent.ring_bytes: 300000 is not a power of two"));
  EXPECT_THAT(error(", ring_bytes: 2048"), HasSubstr("node_agent.ring_bytes"));
  EXPECT_THAT(error(", max_streams: 0"), HasSubstr("node_agent.max_streams"));
  EXPECT_THAT(error(", idle_session_timeout_ms: -5"),
              HasSubstr("node_agent.idle_session_timeout_ms"));
  EXPECT_THAT(error(", idle_session_timeout_ms: soon"),
              HasSubstr("node_agent.idle_session_timeout_ms"));
  EXPECT_THAT(error(", max_streams: 4096, ring_bytes: 16777216"),
              HasSubstr("above the node agent's 4294967296 per session"));
  // One spelling: the transport section's ring keys are the standalone fabric's.
  EXPECT_THAT(error("", "transport: {ring_bytes: 65536}\n"),
              HasSubstr("transport.ring_bytes: mesh sessions have their own geometry: set "
                        "node_agent.ring_bytes"));
  EXPECT_THAT(error("", "transport: {max_streams: 8}\n"), HasSubstr("set node_agent.max_streams"));
}

TEST_F(MeshConfigTest, TheDownwardApiEnvironmentFillsTheGaps) {
  ::setenv("RDMESH_NODE_SOCKET", "/run/agent.sock", 1);
  ::setenv(kNodeNameEnv, "node-z", 1);
  ::setenv(kPodIpsEnv, "10.1.1.1,fd00::1", 1);
  Result<ProxyConfig> parsed = parseConfig(R"(node: {}
node_agent: {socket: /run/file.sock}
listeners: [{name: in, direction: inbound, port: 80}]
)",
                                           "env.yaml");
  ASSERT_TRUE(parsed.isOk()) << parsed.status().message();
  EXPECT_EQ(parsed->node.name, "node-z");
  EXPECT_EQ(parsed->node_agent->socket, "/run/agent.sock");
  EXPECT_EQ(parsed->node_agent->pod_ips, (std::vector<std::string>{"10.1.1.1", "fd00::1"}));
  ::unsetenv(kPodIpsEnv);
  ::setenv(kPodIpEnv, "10.2.2.2", 1);
  parsed = parseConfig(
      "node: {}\nnode_agent: {}\nlisteners: [{name: in, direction: inbound, port: 80}]\n",
      "env.yaml");
  ASSERT_TRUE(parsed.isOk()) << parsed.status().message();
  EXPECT_EQ(parsed->node_agent->pod_ips, (std::vector<std::string>{"10.2.2.2"}));
}

TEST_F(MeshConfigTest, MistakesNameTheField) {
  auto error = [](const std::string& yaml) {
    return parseConfig(yaml, "m.yaml").status().message();
  };
  EXPECT_THAT(error("node: {name: a}\nnode_agent: {}\nlisteners: []\n"),
              HasSubstr("node_agent.pod_ips: the pod's IPs are needed in mesh mode"));
  EXPECT_THAT(error("node: {name: a}\nnode_agent: {pod_ips: [10.0.0.300]}\nlisteners: []\n"),
              HasSubstr("node_agent.pod_ips[0]"));
  EXPECT_THAT(
      error("node: {name: a}\nnode_agent: {pod_ips: [10.0.0.1, 10.0.0.1]}\nlisteners: []\n"),
      HasSubstr("listed twice"));
  EXPECT_THAT(error("node: {name: a}\nnode_agent: {pod_ips: [10.0.0.1], socket: rel.sock}\n"
                    "listeners: []\n"),
              HasSubstr("node_agent.socket"));
  EXPECT_THAT(error("node: {name: a}\nnode_agent: {pod_ips: [10.0.0.1], staging_bytes: 1000}\n"
                    "listeners: []\n"),
              HasSubstr("node_agent.staging_bytes"));
  EXPECT_THAT(error("node: {name: a}\nnode_agent: {pod_ips: [10.0.0.1]}\n"
                    "transport: {backend: verbs}\nlisteners: []\n"),
              HasSubstr("transport.backend: not used in mesh mode"));
  EXPECT_THAT(error("node: {name: a}\nnode_agent: {pod_ips: [10.0.0.1]}\n"
                    "transport: {peers: []}\nlisteners: []\n"),
              HasSubstr("transport.peers: not used in mesh mode"));
  ::setenv(kNodeNameEnv, "Bad_Name", 1);
  EXPECT_THAT(error("node: {}\nnode_agent: {pod_ips: [10.0.0.1]}\nlisteners: []\n"),
              HasSubstr("$RDMESH_NODE_NAME 'Bad_Name'"));
}

TEST(ConfigTest, FillsTcpAndClusterDefaults) {
  Result<ProxyConfig> parsed = parseConfig(R"(node: {name: n1}
transport:
  backend: tcp
  peers: [{name: n2, address: "[fd00::2]:15008"}]
listeners:
  - {name: out, direction: outbound, address: "127.0.0.1:0", cluster: c}
clusters:
  - name: c
    endpoints: [{node: n2, address: "[fd00::2]:80"}]
)",
                                           "flow.yaml");
  ASSERT_TRUE(parsed.isOk()) << parsed.status().message();
  const ProxyConfig& config = parsed.value();
  EXPECT_EQ(config.transport.listen, "0.0.0.0:15008");
  EXPECT_EQ(config.transport.peers[0].address, "[fd00::2]:15008");
  EXPECT_EQ(config.clusters[0].lb_policy, LbPolicy::kRoundRobin);
  EXPECT_EQ(config.clusters[0].connect_timeout, 1000ms);
  EXPECT_EQ(config.clusters[0].endpoints[0].address.toString(), "[fd00::2]:80");
  EXPECT_EQ(config.listeners[0].address.port(), 0);
}

TEST(ConfigTest, ShmBackendTakesSocketPaths) {
  std::string yaml = withLines({{8, "  backend: shm"},
                                {9, "  listen: /run/rdmesh/a.sock"},
                                {18, "      address: /run/rdmesh/b.sock"},
                                {20, "      address: /run/rdmesh/c.sock"}});
  Result<ProxyConfig> parsed = parseConfig(yaml, "shm.yaml");
  ASSERT_TRUE(parsed.isOk()) << parsed.status().message();
  EXPECT_EQ(parsed->transport.backend, FabricBackend::kShm);
  EXPECT_EQ(parsed->transport.listen, "/run/rdmesh/a.sock");
  EXPECT_EQ(parsed->transport.peers[0].address, "/run/rdmesh/b.sock");

  // With shm, an ip:port where a path belongs is the error.
  EXPECT_EQ(errorFor(withLine(8, "  backend: shm")),
            "test.yaml:9:11: transport.listen: '10.0.0.1:15008' is not an absolute unix socket "
            "path");
}

TEST(ConfigTest, VerbsBackendTakesTcpAddressesAndRdmaKeys) {
  Result<ProxyConfig> parsed = parseConfig(
      withLines({{8, "  backend: verbs"}, {14, "  gid_index: 1"}, {15, "  rdma_device: rxe0"}}),
      "verbs.yaml");
  ASSERT_TRUE(parsed.isOk()) << parsed.status().message();
  EXPECT_EQ(parsed->transport.backend, FabricBackend::kVerbs);
  EXPECT_EQ(parsed->transport.listen, "10.0.0.1:15008");
  EXPECT_EQ(parsed->transport.peers[0].address, "10.0.0.2:15008");
  EXPECT_EQ(parsed->transport.rdma_device, "rxe0");
  EXPECT_EQ(parsed->transport.gid_index, 1);

  // Without the optional keys: any device, GID found by address.
  parsed = parseConfig(withLine(8, "  backend: verbs"), "verbs.yaml");
  ASSERT_TRUE(parsed.isOk()) << parsed.status().message();
  EXPECT_EQ(parsed->transport.rdma_device, "");
  EXPECT_EQ(parsed->transport.gid_index, -1);
}

// Each case: the edit, then the whole expected message (path, line and column included).
struct ErrorCase {
  const char* title;
  std::map<int, std::string> edits;
  const char* expected;
};

// Names the case in failure output instead of dumping its bytes.
void PrintTo(const ErrorCase& c, std::ostream* out) {
  *out << c.title;
}

class ConfigErrorTest : public testing::TestWithParam<ErrorCase> {};

TEST_P(ConfigErrorTest, ReportsFieldPathAndPosition) {
  const ErrorCase& c = GetParam();
  EXPECT_EQ(errorFor(withLines(c.edits)), c.expected);
}

INSTANTIATE_TEST_SUITE_P(
    Errors, ConfigErrorTest,
    testing::Values(
        ErrorCase{"UnknownLbPolicy",
                  {{32, "    lb_policy: fastest"}},
                  "test.yaml:32:16: clusters[0].lb_policy: unknown value 'fastest' (expected "
                  "round_robin or least_request)"},
        ErrorCase{"TypoInListenerKey",
                  {{29, "    adress: 127.0.0.1:7379"}},
                  "test.yaml:29:5: listeners[1].adress: unknown field (did you mean 'address'?)"},
        ErrorCase{"UnknownTopLevelKey", {{39, "drain: 5"}}, "test.yaml:39:1: drain: unknown field"},
        ErrorCase{"MissingNodeNamePointsAtParent",
                  {{2, ""}},
                  "test.yaml:2:3: node.name: missing required field"},
        ErrorCase{"BadNodeName",
                  {{2, "  name: Node_A"}},
                  "test.yaml:2:9: node.name: 'Node_A' is not a valid node name (1-63 characters "
                  "of a-z, 0-9, '.', '-')"},
        ErrorCase{"IdentityNotSpiffe",
                  {{3, "  identity: https://example.com"}},
                  "test.yaml:3:13: node.identity: 'https://example.com' is not a SPIFFE id "
                  "(expected spiffe://<trust-domain>/...)"},
        ErrorCase{"WorkersOutOfRange",
                  {{4, "  workers: 0"}},
                  "test.yaml:4:12: node.workers: '0' is not an integer from 1 to 64"},
        ErrorCase{"WorkersNotANumber",
                  {{4, "  workers: two"}},
                  "test.yaml:4:12: node.workers: 'two' is not an integer from 1 to 64"},
        ErrorCase{"AdminAddressMissingPort",
                  {{6, "  address: 127.0.0.1"}},
                  "test.yaml:6:12: admin.address: '127.0.0.1' is not of the form ip:port"},
        ErrorCase{"UnknownBackend",
                  {{8, "  backend: rdma"}},
                  "test.yaml:8:12: transport.backend: unknown value 'rdma' (expected tcp, shm or "
                  "verbs)"},
        ErrorCase{"RdmaDeviceWithoutVerbs",
                  {{15, "  rdma_device: rxe0"}},
                  "test.yaml:15:3: transport.rdma_device: only allowed with backend: verbs"},
        ErrorCase{"GidIndexWithoutVerbs",
                  {{15, "  gid_index: 1"}},
                  "test.yaml:15:3: transport.gid_index: only allowed with backend: verbs"},
        ErrorCase{"GidIndexOutOfRange",
                  {{8, "  backend: verbs"}, {15, "  gid_index: 5000"}},
                  "test.yaml:15:14: transport.gid_index: '5000' is not an integer from 0 to 1023"},
        ErrorCase{"BadRdmaDeviceName",
                  {{8, "  backend: verbs"}, {15, "  rdma_device: rxe/0"}},
                  "test.yaml:15:16: transport.rdma_device: 'rxe/0' is not a device name (1-63 of "
                  "A-Z a-z 0-9 _ -, e.g. rxe0)"},
        ErrorCase{"MissingBackend",
                  {{8, ""}},
                  "test.yaml:8:3: transport.backend: missing required field"},
        ErrorCase{"RingNotPowerOfTwo",
                  {{10, "  ring_bytes: 65535"}},
                  "test.yaml:10:15: transport.ring_bytes: 65535 is not a power of two"},
        ErrorCase{"RingTooSmall",
                  {{10, "  ring_bytes: 1024"}},
                  "test.yaml:10:15: transport.ring_bytes: '1024' is not an integer from 4096 to "
                  "16777216"},
        ErrorCase{"MaxStreamsTooLarge",
                  {{11, "  max_streams: 5000"}},
                  "test.yaml:11:16: transport.max_streams: '5000' is not an integer from 1 to "
                  "4096"},
        ErrorCase{"KeepaliveTimeoutNotAboveInterval",
                  {{13, "  keepalive_timeout_ms: 1000"}},
                  "test.yaml:13:25: transport.keepalive_timeout_ms: must be greater than "
                  "keepalive_interval_ms (1000)"},
        ErrorCase{"KeepaliveTimeoutBelowDefaultInterval",
                  {{12, ""}},
                  "test.yaml:12:25: transport.keepalive_timeout_ms: must be greater than "
                  "keepalive_interval_ms (5000)"},
        ErrorCase{"KeepaliveIntervalAboveDefaultTimeout",
                  {{12, "  keepalive_interval_ms: 20000"}, {13, ""}},
                  "test.yaml:12:26: transport.keepalive_interval_ms: must be less than "
                  "keepalive_timeout_ms (15000, the default)"},
        ErrorCase{"ConnectTimeoutZero",
                  {{14, "  connect_timeout_ms: 0"}},
                  "test.yaml:14:23: transport.connect_timeout_ms: '0' is not an integer from 1 "
                  "to 86400000"},
        ErrorCase{"PollBudgetTooLarge",
                  {{15, "  poll_budget_us: 10001"}},
                  "test.yaml:15:19: transport.poll_budget_us: '10001' is not an integer from 0 "
                  "to 10000"},
        ErrorCase{"DuplicatePeer",
                  {{19, "    - name: node-b"}},
                  "test.yaml:19:13: transport.peers[1].name: duplicate peer 'node-b' (first "
                  "defined on line 17)"},
        ErrorCase{"PeerIsSelf",
                  {{17, "    - name: node-a"}},
                  "test.yaml:17:13: transport.peers[0].name: 'node-a' is this node (node.name); "
                  "a node is not its own peer"},
        ErrorCase{"PeerAddressWithoutPort",
                  {{18, "      address: 10.0.0.2"}},
                  "test.yaml:18:16: transport.peers[0].address: '10.0.0.2' is not of the form "
                  "ip:port"},
        ErrorCase{"PeersNotAList",
                  {{16, "  peers: node-b"}, {17, ""}, {18, ""}, {19, ""}, {20, ""}},
                  "test.yaml:16:10: transport.peers: expected a list, got a single value"},
        ErrorCase{"UnknownDirection",
                  {{23, "    direction: sideways"}},
                  "test.yaml:23:16: listeners[0].direction: unknown value 'sideways' (expected "
                  "outbound, inbound or capture)"},
        ErrorCase{"UndefinedCluster",
                  {{25, "    cluster: memcached"}},
                  "test.yaml:25:14: listeners[0].cluster: no cluster named 'memcached' is "
                  "defined"},
        ErrorCase{"OutboundMissingAddress",
                  {{24, ""}},
                  "test.yaml:22:5: listeners[0].address: missing required field"},
        ErrorCase{"InboundKeyOnOutbound",
                  {{25, "    cluster: redis\n    port: 80"}},
                  "test.yaml:26:5: listeners[0].port: not valid for outbound listeners"},
        ErrorCase{"OutboundKeyOnInbound",
                  {{29, "    cluster: redis"}},
                  "test.yaml:29:5: listeners[1].cluster: not valid for inbound listeners"},
        ErrorCase{"InboundPortZero",
                  {{28, "    port: 0"}},
                  "test.yaml:28:11: listeners[1].port: '0' is not an integer from 1 to 65535"},
        ErrorCase{"InboundPortMissing",
                  {{28, ""}},
                  "test.yaml:26:5: listeners[1].port: missing required field"},
        ErrorCase{"DuplicateInboundPort",
                  {{29,
                    "    target: 127.0.0.1:7379\n  - name: redis-in-2\n    direction: inbound\n"
                    "    port: 6379"}},
                  "test.yaml:32:11: listeners[2].port: port 6379 is already used by inbound "
                  "listener 'redis-in' (line 26)"},
        ErrorCase{"DuplicateListenerName",
                  {{26, "  - name: redis-out"}},
                  "test.yaml:26:11: listeners[1].name: duplicate listener 'redis-out' (first "
                  "defined on line 22)"},
        ErrorCase{"TargetPortZero",
                  {{29, "    target: 127.0.0.1:0"}},
                  "test.yaml:29:13: listeners[1].target: '127.0.0.1:0' has port 0; a "
                  "destination needs a real port"},
        ErrorCase{"EndpointOnUnknownNode",
                  {{35, "      - node: node-z"}},
                  "test.yaml:35:15: clusters[0].endpoints[0].node: unknown node 'node-z' "
                  "(expected node.name 'node-a' or a name in transport.peers)"},
        ErrorCase{"EndpointBadAddress",
                  {{38, "        address: localhost:6380"}},
                  "test.yaml:38:18: clusters[0].endpoints[1].address: 'localhost' is not an "
                  "IPv4 or IPv6 address"},
        ErrorCase{"EmptyEndpoints",
                  {{34, "    endpoints: []"}, {35, ""}, {36, ""}, {37, ""}, {38, ""}},
                  "test.yaml:34:16: clusters[0].endpoints: must list at least one endpoint"},
        ErrorCase{"ClusterWithoutNamePointsAtItsMapping",
                  {{31, "  -"}},
                  "test.yaml:32:5: clusters[0].name: missing required field"},
        ErrorCase{"EmptyListeners",
                  {{21, "listeners: []"},
                   {22, ""},
                   {23, ""},
                   {24, ""},
                   {25, ""},
                   {26, ""},
                   {27, ""},
                   {28, ""},
                   {29, ""}},
                  "test.yaml:21:12: listeners: must list at least one listener"},
        ErrorCase{"DuplicateKey",
                  {{4, "  workers: 2\n  name: node-x"}},
                  "test.yaml:5:3: node.name: duplicate field (first set on line 2)"},
        ErrorCase{"ScalarExpectedGotMapping",
                  {{2, "  name: {first: node}"}},
                  "test.yaml:2:9: node.name: expected a single value, got a mapping"},
        ErrorCase{"EmptyValue", {{2, "  name:"}}, "test.yaml:2:3: node.name: no value given"},
        ErrorCase{"DrainTimeoutHuge",
                  {{39, "drain_timeout_ms: 99999999999999999999999"}},
                  "test.yaml:39:19: drain_timeout_ms: '99999999999999999999999' is not an "
                  "integer from 0 to 86400000"},
        ErrorCase{"SyntaxError",
                  {{24, "    address: [127.0.0.1:16379"}},
                  "test.yaml:25:12: invalid YAML: end of sequence flow not found"}),
    [](const testing::TestParamInfo<ErrorCase>& info) { return std::string(info.param.title); });

TEST(ConfigTest, RejectsDocumentsThatAreNotOneMapping) {
  EXPECT_EQ(errorFor(""),
            "test.yaml:1:1: (document): config is empty (expected a mapping with node, transport "
            "and listeners)");
  EXPECT_EQ(errorFor("# only a comment\n"),
            "test.yaml:1:1: (document): config is empty (expected a mapping with node, transport "
            "and listeners)");
  EXPECT_EQ(errorFor("- node\n- transport\n"),
            "test.yaml:1:1: (document): expected a mapping with node, transport and listeners, "
            "got a list");
  EXPECT_EQ(errorFor(std::string(kFullConfig) + "---\nnode: {name: other}\n"),
            "test.yaml:40:1: (document): only one YAML document is allowed");
  EXPECT_EQ(errorFor("node: {name: n1}\ntransport: {backend: tcp}\n"),
            "test.yaml:1:1: listeners: missing required field");
}

TEST(ConfigTest, SectionsMayComeInAnyOrder) {
  Result<ProxyConfig> parsed = parseConfig(R"(listeners:
  - {name: out, direction: outbound, address: "127.0.0.1:9000", cluster: c}
clusters:
  - {name: c, endpoints: [{node: peer, address: "10.0.0.9:80"}]}
transport:
  backend: shm
  peers: [{name: peer, address: /run/peer.sock}]
node: {name: late}
)",
                                           "reordered.yaml");
  ASSERT_TRUE(parsed.isOk()) << parsed.status().message();
  // The shm default path uses node.name even though node comes after transport.
  EXPECT_EQ(parsed->transport.listen, "/var/run/rdmesh/late.sock");
}

TEST(ConfigTest, ReportsTheFirstErrorInTheFile) {
  // Clusters are needed to check listeners, yet the listener typo comes first and wins.
  EXPECT_EQ(errorFor(withLines({{29, "    tarket: 127.0.0.1:7379"}, {32, "    lb_policy: x"}})),
            "test.yaml:29:5: listeners[1].tarket: unknown field (did you mean 'target'?)");
  // Names pointing into other sections are checked after every section is read, in file order.
  EXPECT_EQ(errorFor(withLines({{25, "    cluster: nope"}, {35, "      - node: nobody"}})),
            "test.yaml:25:14: listeners[0].cluster: no cluster named 'nope' is defined");
  EXPECT_EQ(errorFor(withLines({{17, "    - name: node-a"}, {25, "    cluster: nope"}})),
            "test.yaml:17:13: transport.peers[0].name: 'node-a' is this node (node.name); a node "
            "is not its own peer");
}

// yaml-cpp 0.7's LoadAll never returns on these (jbeder/yaml-cpp#1040); found by fuzz_config.
TEST(ConfigTest, StrayFlowTokenIsASyntaxErrorNotAHang) {
  EXPECT_EQ(errorFor(",\""), "test.yaml:1:1: invalid YAML: unexpected ','");
  EXPECT_EQ(errorFor(",node:\n  name:\"shm902"), "test.yaml:1:1: invalid YAML: unexpected ','");
  EXPECT_EQ(errorFor("- a\n,\n"), "test.yaml:2:1: invalid YAML: unexpected ','");
  // yaml-cpp takes this for two documents; the stray quote on line 3 is the real problem.
  EXPECT_EQ(errorFor("- a\n- (b in (\n\"c\",\n  )\n"),
            "test.yaml:3:1: invalid YAML: unexpected '\"'");
  EXPECT_EQ(errorFor(std::string(kFullConfig) + "---\n,\n"),
            "test.yaml:40:1: (document): only one YAML document is allowed");
}

TEST(ConfigTest, NeverThrowsOnHostileYaml) {
  const std::vector<std::string> inputs = {
      "listeners: &a [*a]\nnode: {name: n}\ntransport: {backend: tcp}\n",  // self-referencing
      "node: &n {name: *n}\n",
      std::string(5000, '['),
      "node: !!binary AAAA\n",
      "? [a, b]\n: c\n",
      "node:\n  name: \"\\0\"\n",
      std::string("node: {name: \"a\0b\"}\n", 20),
  };
  for (const std::string& input : inputs) {
    Result<ProxyConfig> parsed = parseConfig(input, "hostile.yaml");
    EXPECT_FALSE(parsed.isOk()) << input;
  }
}

TEST(ConfigTest, LoadConfigFileNamesPathAndReason) {
  Result<ProxyConfig> missing = loadConfigFile("/nonexistent/rdmesh.yaml");
  ASSERT_FALSE(missing.isOk());
  EXPECT_EQ(missing.status().message(),
            "cannot open config file '/nonexistent/rdmesh.yaml': No such file or directory");

  Result<ProxyConfig> directory = loadConfigFile("/");
  ASSERT_FALSE(directory.isOk());
  EXPECT_EQ(directory.status().message(), "cannot read config file '/': Is a directory");
}

TEST(ConfigTest, LoadConfigFileReadsAndRemembersThePath) {
  std::string path =
      testing::TempDir() + "rdmesh_config_test_" + std::to_string(getpid()) + ".yaml";
  {
    std::ofstream file(path);
    file << withLine(4, "  workers: 70");
  }
  Result<ProxyConfig> bad = loadConfigFile(path);
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(bad.status().message(),
            path + ":4:12: node.workers: '70' is not an integer from 1 to 64");
  {
    std::ofstream file(path);
    file << kFullConfig;
  }
  Result<ProxyConfig> good = loadConfigFile(path);
  std::remove(path.c_str());
  ASSERT_TRUE(good.isOk()) << good.status().message();
  EXPECT_EQ(good->source_path, path);
  EXPECT_EQ(good->source_text, kFullConfig);
}

TEST(ConfigTest, JsonHasEveryEffectiveField) {
  Result<ProxyConfig> parsed = parseConfig(kFullConfig, "node-a.yaml");
  ASSERT_TRUE(parsed.isOk()) << parsed.status().message();
  nlohmann::json json = nlohmann::json::parse(configToJson(parsed.value()));

  EXPECT_EQ(json["node"]["name"], "node-a");
  EXPECT_EQ(json["node"]["workers"], 2);
  EXPECT_EQ(json["admin"]["address"], "127.0.0.1:15100");
  EXPECT_EQ(json["transport"]["backend"], "tcp");
  EXPECT_EQ(json["transport"]["listen"], "10.0.0.1:15008");
  EXPECT_EQ(json["transport"]["ring_bytes"], 65536);
  EXPECT_EQ(json["transport"]["keepalive_interval_ms"], 1000);
  EXPECT_EQ(json["transport"]["keepalive_timeout_ms"], 3000);
  EXPECT_EQ(json["transport"]["poll_budget_us"], 20);
  EXPECT_EQ(json["transport"]["peers"][1]["name"], "node-c");
  EXPECT_EQ(json["listeners"][0]["direction"], "outbound");
  EXPECT_EQ(json["listeners"][0]["address"], "127.0.0.1:16379");
  EXPECT_EQ(json["listeners"][0]["cluster"], "redis");
  EXPECT_FALSE(json["listeners"][0].contains("port"));
  EXPECT_EQ(json["listeners"][1]["direction"], "inbound");
  EXPECT_EQ(json["listeners"][1]["port"], 6379);
  EXPECT_EQ(json["listeners"][1]["target"], "127.0.0.1:7379");
  EXPECT_EQ(json["clusters"][0]["lb_policy"], "least_request");
  EXPECT_EQ(json["clusters"][0]["connect_timeout_ms"], 250);
  EXPECT_EQ(json["clusters"][0]["endpoints"][0]["address"], "10.0.0.2:6379");
  EXPECT_EQ(json["drain_timeout_ms"], 2500);
}

TEST(ConfigTest, JsonShowsDefaultsAndParsesBackToTheSameConfig) {
  Result<ProxyConfig> parsed = parseConfig(
      "node: {name: n1}\ntransport: {backend: shm}\n"
      "listeners: [{name: in, direction: inbound, port: 8080}]\n",
      "minimal.yaml");
  ASSERT_TRUE(parsed.isOk()) << parsed.status().message();
  std::string text = configToJson(parsed.value());
  nlohmann::json json = nlohmann::json::parse(text);
  EXPECT_EQ(json["node"]["identity"], "");
  EXPECT_EQ(json["admin"]["address"], "127.0.0.1:15000");
  EXPECT_EQ(json["transport"]["listen"], "/var/run/rdmesh/n1.sock");
  EXPECT_EQ(json["transport"]["max_streams"], 1024);
  EXPECT_EQ(json["transport"]["connect_timeout_ms"], 2000);
  EXPECT_EQ(json["listeners"][0]["target"], "127.0.0.1:8080");
  EXPECT_EQ(json["clusters"], nlohmann::json::array());
  EXPECT_EQ(json["drain_timeout_ms"], 5000);

  // JSON is YAML, and the dump uses the config's own keys: it must load back unchanged.
  Result<ProxyConfig> reparsed = parseConfig(text, "dump.json");
  ASSERT_TRUE(reparsed.isOk()) << reparsed.status().message();
  EXPECT_EQ(configToJson(reparsed.value()), text);
}

TEST(ConfigTest, EnumNames) {
  EXPECT_STREQ(toString(FabricBackend::kTcp), "tcp");
  EXPECT_STREQ(toString(FabricBackend::kShm), "shm");
  EXPECT_STREQ(toString(FabricBackend::kVerbs), "verbs");
  EXPECT_STREQ(toString(LbPolicy::kRoundRobin), "round_robin");
  EXPECT_STREQ(toString(LbPolicy::kLeastRequest), "least_request");
}

// The shipped examples in config/ must always load.
TEST(ConfigTest, ExampleConfigsLoad) {
  const std::filesystem::path config_dir =
      std::filesystem::path(__FILE__).parent_path() / ".." / ".." / "config";
  ASSERT_TRUE(std::filesystem::is_directory(config_dir)) << config_dir;
  int loaded = 0;
  for (const auto& file : std::filesystem::directory_iterator(config_dir)) {
    if (file.path().extension() != ".yaml") continue;
    // rdmesh-xds's registry and rdmesh-node's config live here too; they are not proxy configs.
    std::string name = file.path().filename().string();
    if (name.rfind("xds-registry", 0) == 0 || name == "node.yaml") continue;
    Result<ProxyConfig> config = loadConfigFile(file.path().string());
    EXPECT_TRUE(config.isOk()) << config.status().message();
    ++loaded;
  }
  EXPECT_GE(loaded, 4);

  Result<ProxyConfig> a = loadConfigFile((config_dir / "standalone-node-a.yaml").string());
  Result<ProxyConfig> b = loadConfigFile((config_dir / "standalone-node-b.yaml").string());
  ASSERT_TRUE(a.isOk() && b.isOk());
  EXPECT_EQ(a->transport.peers.at(0).name, b->node.name);
  EXPECT_EQ(a->transport.peers.at(0).address, b->transport.listen);
  EXPECT_EQ(b->transport.peers.at(0).address, a->transport.listen);
  EXPECT_EQ(a->listeners.at(0).address.toString(), "127.0.0.1:16379");
  EXPECT_EQ(a->clusters.at(0).endpoints.at(0).node, "node-b");
  EXPECT_EQ(a->clusters.at(0).endpoints.at(0).address.port(), 6379);
  EXPECT_EQ(b->listeners.at(0).direction, ListenerDirection::kInbound);
  EXPECT_EQ(b->listeners.at(0).port, 6379);

  Result<ProxyConfig> shm_a = loadConfigFile((config_dir / "shm-node-a.yaml").string());
  Result<ProxyConfig> shm_b = loadConfigFile((config_dir / "shm-node-b.yaml").string());
  ASSERT_TRUE(shm_a.isOk() && shm_b.isOk());
  EXPECT_EQ(shm_a->transport.backend, FabricBackend::kShm);
  EXPECT_EQ(shm_a->transport.listen, "/var/run/rdmesh/node-a.sock");
  EXPECT_EQ(shm_a->transport.peers.at(0).address, shm_b->transport.listen);
  EXPECT_EQ(shm_b->transport.peers.at(0).address, shm_a->transport.listen);

  Result<ProxyConfig> verbs_a = loadConfigFile((config_dir / "verbs-node-a.yaml").string());
  Result<ProxyConfig> verbs_b = loadConfigFile((config_dir / "verbs-node-b.yaml").string());
  ASSERT_TRUE(verbs_a.isOk() && verbs_b.isOk());
  EXPECT_EQ(verbs_a->transport.backend, FabricBackend::kVerbs);
  EXPECT_EQ(verbs_a->transport.peers.at(0).address, verbs_b->transport.listen);
  EXPECT_EQ(verbs_b->transport.peers.at(0).address, verbs_a->transport.listen);
}

}  // namespace
}  // namespace rdmesh::proxy

namespace rdmesh::proxy {
namespace {

constexpr const char* kXdsHead = R"(node: {name: node-a}
transport: {backend: tcp}
)";

TEST(ConfigXdsTest, BootstrapWithoutListenersAndWithForwardReferences) {
  auto config = parseConfig(std::string(kXdsHead) + R"(xds:
  servers: ["rdmesh-xds.rdmesh-system.svc:15012", "10.0.0.9:15012"]
  tls: {ca_file: /etc/rdmesh/ca.pem, server_name: rdmesh-xds.rdmesh-system.svc}
  workload: shop/web-0
  clusters: ["outbound|80||db.other"]
listeners:
  - {name: db, direction: outbound, address: "127.0.0.1:5432", cluster: "from-xds"}
)",
                            "boot.yaml");
  ASSERT_TRUE(config) << config.status().message();
  const XdsConfig& xds = *config->xds;
  EXPECT_EQ(xds.servers.size(), 2u);
  EXPECT_FALSE(xds.plaintext);
  EXPECT_EQ(xds.ca_file, "/etc/rdmesh/ca.pem");
  EXPECT_EQ(xds.server_name, "rdmesh-xds.rdmesh-system.svc");
  EXPECT_EQ(xds.namespace_name, "shop");
  EXPECT_EQ(xds.id, "sidecar~shop/web-0~node-a");
  EXPECT_EQ(xds.clusters, std::vector<std::string>{"outbound|80||db.other"});
  EXPECT_NE(configToJson(*config).find("\"workload\": \"shop/web-0\""), std::string::npos);
}

TEST(ConfigXdsTest, ErrorsNameTheField) {
  auto error = [](const std::string& xds) { return errorFor(std::string(kXdsHead) + xds); };
  EXPECT_EQ(error("xds: {servers: [], plaintext: true, workload: a/b}\n"),
            "test.yaml:3:16: xds.servers: must list at least one server");
  EXPECT_EQ(error("xds: {servers: [\"host\"], plaintext: true, workload: a/b}\n"),
            "test.yaml:3:17: xds.servers[0]: 'host' is not host:port");
  EXPECT_EQ(error("xds: {servers: [\"h:1\"], workload: a/b}\n"),
            "test.yaml:3:6: xds.tls: missing (TLS needs ca_file; for plaintext h2c say "
            "plaintext: true)");
  EXPECT_EQ(error("xds: {servers: [\"h:1\"], plaintext: yes, workload: a/b}\n"),
            "test.yaml:3:36: xds.plaintext: 'yes' is not true or false");
  EXPECT_EQ(error("xds: {servers: [\"h:1\"], plaintext: true, workload: web-0}\n"),
            "test.yaml:3:52: xds.workload: 'web-0' is not <namespace>/<pod>");
  EXPECT_EQ(error("xds: {servers: [\"h:1\"], plaintext: true, workload: a/b, namespace: c}\n"),
            "test.yaml:3:68: xds.namespace: 'c' differs from the workload's namespace 'a'");
  EXPECT_EQ(error("xds: {servers: [\"h:1\"], plaintext: true, tls: {ca_file: x}, workload: a/b}\n"),
            "test.yaml:3:42: xds.tls: not with plaintext: true (choose one)");
  // Without xds, listeners stay required.
  EXPECT_EQ(errorFor(kXdsHead), "test.yaml:1:1: listeners: missing required field");
}

}  // namespace
}  // namespace rdmesh::proxy
