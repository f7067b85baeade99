// rdmesh-proxy in mesh mode: two sidecar processes (pods 10.55.0.1 and 10.55.0.2) behind a node
// agent, in one network namespace, with a real echo server behind the second. The agent here is
// the in-test one (tests/unit/fake_session_agent.h): it serves the node.sock session ops and
// carries the sessions' writes (or brokers shm), so these tests check the sidecar side end to end
// with real processes: echo and a hashed transfer, the fabric in /stats, a killed sidecar's
// streams reset at the other end, and sidecars reattaching after the agent restarts.
#include <sys/socket.h>

#include "fake_session_agent.h"
#include "fixture.h"

namespace rdmesh::it {
namespace {

constexpr uint16_t kEchoPort = 7400;
constexpr uint16_t kInboundPort = 8080;
constexpr uint16_t kOutboundPort = 17400;
const std::string kSessionToB = "rdmesh.session.10.55.0.2@node-a";

class MeshAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = netnsUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    ns_ = std::make_unique<Netns>("meshfake");
    agent_socket_ = dir_.file("node.sock");
    agent_ = std::make_unique<testing::FakeSessionAgent>(agent_socket_, "node-a");
    echo_ = std::make_unique<EchoServer>(ns_->name(), "127.0.0.1", kEchoPort);
    b_ = makeSidecar("pod-b", "10.55.0.2", "127.0.0.2:15000");
    a_ = makeSidecar("pod-a", "10.55.0.1", "127.0.0.1:15000", /*outbound=*/true);
  }

  std::unique_ptr<Sidecar> makeSidecar(const std::string& pod, const std::string& ip,
                                       const std::string& admin, bool outbound = false) {
    SidecarSpec spec;
    spec.node = "node-a";
    spec.pod = pod;
    spec.admin = admin;
    spec.node_agent_socket = agent_socket_;
    spec.pod_ips = {ip};
    spec.transport_options = {{"connect_timeout_ms", "2000"}};
    if (outbound) {
      spec.outbound("echo-out", "127.0.0.1:" + std::to_string(kOutboundPort), "echo");
      spec.cluster("echo", {{"node-a", "10.55.0.2:" + std::to_string(kInboundPort)}});
    } else {
      spec.inbound("echo-in", kInboundPort, "127.0.0.1:" + std::to_string(kEchoPort));
    }
    return std::make_unique<Sidecar>(spec, ns_->name(), dir_.path());
  }

  void startBoth() {
    b_->start();
    a_->start();
    ASSERT_TRUE(a_->waitReady() && b_->waitReady()) << "sidecars not ready";
    ASSERT_TRUE(a_->waitStat("rdmesh.mesh.listener.up", "1", 10s));
    ASSERT_TRUE(b_->waitStat("rdmesh.mesh.listener.up", "1", 10s));
  }

  // Sends `bytes` through A to the echo server behind B and checks the hash of what comes back.
  void echoTransfer(size_t bytes, uint64_t seed) {
    expectEcho(ns_->name(), kOutboundPort, bytes, seed);
  }

  TempDir dir_{"rdmesh-mesh"};
  std::unique_ptr<Netns> ns_;
  std::string agent_socket_;
  std::unique_ptr<testing::FakeSessionAgent> agent_;
  std::unique_ptr<EchoServer> echo_;
  std::unique_ptr<Sidecar> a_, b_;
};

TEST_F(MeshAgentTest, EchoAndHashedTransferThroughTheAgent) {
  startBoth();
  echoTransfer(1024, 1);
  echoTransfer(16 << 20, 2);
  EXPECT_EQ(a_->stat(kSessionToB + ".fabric"), "agent");
  EXPECT_EQ(a_->stat("rdmesh.server.fabric"), "agent");
  EXPECT_GE(agent_->counters().bytes_moved, uint64_t{2} * (16 << 20));
  EXPECT_EQ(agent_->activeSessions(), 1u);
}

TEST_F(MeshAgentTest, SameNodePodsTalkOverShmWithoutTheAgentMovingBytes) {
  agent_->setShmMode(true);
  startBoth();
  echoTransfer(8 << 20, 3);
  EXPECT_EQ(a_->stat(kSessionToB + ".fabric"), "shm");
  EXPECT_EQ(agent_->counters().submissions_moved, 0u);
}

TEST_F(MeshAgentTest, AKilledSidecarResetsItsStreamsAtTheOtherEnd) {
  startBoth();
  UniqueFd fd = tcpConnect(ns_->name(), "127.0.0.1", kOutboundPort);
  ASSERT_TRUE(fd);
  ASSERT_TRUE(sendAll(fd.get(), std::string(1000, 'k')));
  ASSERT_EQ(readExactly(fd.get(), 1000, 10s).data.size(), 1000u);
  ASSERT_EQ(agent_->activeSessions(), 1u);
  b_->kill();
  ReadResult r = readUntilEof(fd.get(), 5s);
  EXPECT_TRUE(r.error == ECONNRESET || r.eof)
      << "the app connection did not end: " << strerror(r.error);
  EXPECT_NE(r.error, ETIMEDOUT);
  ASSERT_TRUE(waitFor([&] { return agent_->activeSessions() == 0; }, 5s));
  ASSERT_TRUE(a_->waitStat(kSessionToB + ".state", "connecting", 5s));
  // B back: new connections work (A redials on demand).
  b_->start();
  ASSERT_TRUE(b_->waitReady() && b_->waitStat("rdmesh.mesh.listener.up", "1", 10s));
  echoTransfer(64 << 10, 4);
}

TEST_F(MeshAgentTest, SidecarsReattachAfterTheAgentRestarts) {
  startBoth();
  echoTransfer(64 << 10, 5);
  agent_.reset();  // every node.sock connection hangs up
  ASSERT_TRUE(a_->waitStat("rdmesh.mesh.listener.up", "0", 5s));
  agent_ = std::make_unique<testing::FakeSessionAgent>(agent_socket_, "node-a");
  ASSERT_TRUE(a_->waitStat("rdmesh.mesh.listener.up", "1", 10s)) << "A did not reattach";
  ASSERT_TRUE(b_->waitStat("rdmesh.mesh.listener.up", "1", 10s)) << "B did not reattach";
  echoTransfer(1 << 20, 6);
  EXPECT_EQ(a_->statInt("rdmesh.mesh.listener.connects_total"), 2);
}

}  // namespace
}  // namespace rdmesh::it
