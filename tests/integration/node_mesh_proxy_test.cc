// The whole mesh mode path with real processes: rdmesh-proxy sidecars in mesh mode behind two
// rdmesh-node agents in two namespaces (node-a, node-b) joined by veth, the agents linked by a
// tcp PairLink (rdma off). An app's TCP through sidecar A reaches an echo server behind sidecar
// B: A's session bytes are posted by agent A from A's staging, land in B's receive area through
// agent B, and come back the same way. Then sidecar B is killed: agent A closes A's session, and
// both agents' stats return to no sessions and no registered bytes. With a short idle timeout,
// an unused session is closed by the sidecars (IDLE_CLOSE) and both agents release it.
#include <sys/socket.h>

#include <nlohmann/json.hpp>

#include "fixture.h"
#include "node_agents_fixture.h"

namespace rdmesh::it {
namespace {

constexpr uint16_t kEchoPort = 7400;
constexpr uint16_t kInboundPort = 8080;
constexpr uint16_t kOutboundPort = 17400;
constexpr const char* kIpA = "10.77.42.1";
constexpr const char* kIpB = "10.77.42.2";

class NodeMeshProxyTest : public NodeAgentsTest {
 protected:
  void SetUp() override {
    startNodes("mp", kIpA, kIpB);
    if (IsSkipped() || HasFatalFailure()) return;
    echo_ = std::make_unique<EchoServer>(ns_b_->name(), "127.0.0.1", kEchoPort);
    SidecarSpec b;
    b.node = "node-b";
    b.pod = "pod-b";
    b.node_agent_socket = socketOf("node-b");
    b.pod_ips = {"10.55.0.2"};
    b.node_agent_options = node_agent_options_;
    b.transport_options = transport_options_;
    b.inbound("echo-in", kInboundPort, "127.0.0.1:" + std::to_string(kEchoPort));
    b_ = std::make_unique<Sidecar>(b, ns_b_->name(), dir_.path());
    SidecarSpec a;
    a.node = "node-a";
    a.pod = "pod-a";
    a.node_agent_socket = socketOf("node-a");
    a.pod_ips = {"10.55.0.1"};
    a.node_agent_options = node_agent_options_;
    a.transport_options = transport_options_;
    a.outbound("echo-out", "127.0.0.1:" + std::to_string(kOutboundPort), "echo");
    a.cluster("echo", {{"node-b", "10.55.0.2:" + std::to_string(kInboundPort)}});
    a_ = std::make_unique<Sidecar>(a, ns_a_->name(), dir_.path());
    b_->start();
    a_->start();
    ASSERT_TRUE(a_->waitReady() && b_->waitReady()) << "sidecars not ready";
    ASSERT_TRUE(b_->waitStat("rdmesh.mesh.listener.up", "1", 10s));
  }

  std::map<std::string, std::string> node_agent_options_;
  std::map<std::string, std::string> transport_options_;
  std::unique_ptr<EchoServer> echo_;
  std::unique_ptr<Sidecar> a_, b_;
};

class NodeMeshIdleTest : public NodeMeshProxyTest {
 protected:
  NodeMeshIdleTest() {
    node_agent_options_["idle_session_timeout_ms"] = "400";
    transport_options_["keepalive_interval_ms"] = "100";
  }
};

TEST_F(NodeMeshProxyTest, EchoThroughTwoAgentsAndASidecarDeathCleansUp) {
  expectEchoed(ns_a_->name(), "127.0.0.1", kOutboundPort, 1024, 1);
  expectEchoed(ns_a_->name(), "127.0.0.1", kOutboundPort, 8 << 20, 2);
  EXPECT_EQ(a_->stat("rdmesh.server.fabric"), "agent");
  EXPECT_GE(stat("node-a", "rdmesh.node.datapath.submissions"), 1u);
  EXPECT_GE(stat("node-b", "rdmesh.node.datapath.arrivals"), 1u);
  EXPECT_EQ(stat("node-a", "rdmesh.node.sessions.active"), 1u);
  EXPECT_GT(stat("node-a", "rdmesh.node.sessions.registered_bytes"), 0u);

  b_->kill();
  ASSERT_TRUE(waitFor([&] { return stat("node-a", "rdmesh.node.sessions.active") == 0; }, 10s))
      << agent_a_->output();
  for (const char* node : {"node-a", "node-b"}) {
    EXPECT_TRUE(waitFor([&] { return stat(node, "rdmesh.node.sessions.open_fds") == 0; }, 10s))
        << node;
    EXPECT_EQ(stat(node, "rdmesh.node.sessions.registered_bytes"), 0u) << node;
  }
  EXPECT_EQ(stat("node-a", "rdmesh.node.links.lost_total"), 0u);
}

TEST_F(NodeMeshIdleTest, AnIdleSessionIsClosedAndBothAgentsReleaseItsRegion) {
  const std::string session = "rdmesh.session.10.55.0.2@node-b.";
  for (int round = 1; round <= 2; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    expectEchoed(ns_a_->name(), "127.0.0.1", kOutboundPort, 64 << 10, round);
    EXPECT_GT(stat("node-a", "rdmesh.node.sessions.registered_bytes"), 0u);
    EXPECT_GT(stat("node-b", "rdmesh.node.sessions.registered_bytes"), 0u);
    // Nobody uses it now: the sidecars agree to close it, the agents let go of everything.
    ASSERT_TRUE(waitFor([&] { return a_->statInt(session + "idle_closes_total") == round; }, 10s));
    for (const char* node : {"node-a", "node-b"}) {
      EXPECT_TRUE(waitFor(
          [&] {
            return stat(node, "rdmesh.node.sessions.active") == 0 &&
                   stat(node, "rdmesh.node.sessions.registered_bytes") == 0 &&
                   stat(node, "rdmesh.node.sessions.open_fds") == 0;
          },
          10s))
          << node;
    }
    EXPECT_EQ(a_->statInt(session + "disconnects_total"), 0);
    EXPECT_EQ(a_->statInt(session + "streams_reset_total"), 0);
  }
  // The second echo dialed a new session; the link between the agents stayed up throughout.
  EXPECT_EQ(a_->statInt(session + "connects_total"), 2);
  EXPECT_EQ(stat("node-a", "rdmesh.node.links.lost_total"), 0u);
}

}  // namespace
}  // namespace rdmesh::it
