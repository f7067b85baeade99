// The verbs backend on a host without RDMA (this one: its kernel has no rdma_rxe): sessions must
// still come up, over tcp on the same bootstrap connection, both between two verbs nodes and
// between a verbs node and a tcp-only node, and /stats must say so. Real verbs between two
// Soft-RoCE guests is tests/softroce.
#include <filesystem>

#include "fixture.h"

namespace rdmesh::it {
namespace {

constexpr uint16_t kEchoPort = 7000;
constexpr uint16_t kEchoOut = 17000;

class VerbsFallbackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = netnsUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    std::error_code ec;
    if (std::filesystem::exists("/sys/class/infiniband", ec) &&
        !std::filesystem::is_empty("/sys/class/infiniband", ec)) {
      GTEST_SKIP() << "this host has RDMA devices: the fallback is covered by tests/softroce";
    }
  }

  // node-a dials node-b; each runs the given backend; A's echo cluster points at B's echo port.
  void startMesh(const std::string& backend_a, const std::string& backend_b) {
    mesh_ = std::make_unique<Mesh>("verbs", std::vector<std::string>{"node-a", "node-b"});
    SidecarSpec sa = mesh_->baseSpec("node-a");
    sa.backend = backend_a;
    sa.outbound("echo-out", "127.0.0.1:" + std::to_string(kEchoOut), "echo")
        .cluster("echo", {{"node-b", mesh_->ip("node-b") + ":" + std::to_string(kEchoPort)}});
    SidecarSpec sb = mesh_->baseSpec("node-b");
    sb.backend = backend_b;
    sb.inbound("echo-in", kEchoPort, "127.0.0.1:" + std::to_string(kEchoPort));
    mesh_->add(sa);
    mesh_->add(sb);
    mesh_->startAll();
  }

  void expectEchoOverTcp() {
    EchoServer echo(mesh_->ns("node-b"), "127.0.0.1", kEchoPort);
    Sidecar& sa = mesh_->sidecar("node-a");
    Sidecar& sb = mesh_->sidecar("node-b");
    ASSERT_TRUE(sa.waitSessionState("node-b", "established", 10s));
    EXPECT_EQ(sa.stat("rdmesh.session.node-b.fabric"), "tcp");
    EXPECT_EQ(sb.stat("rdmesh.session.node-a.fabric"), "tcp");
    std::string msg = PatternGen(0x7e4b).bytes(size_t{256} * 1024);
    UniqueFd fd = tcpConnect(mesh_->ns("node-a"), "127.0.0.1", kEchoOut);
    ASSERT_TRUE(fd);
    ASSERT_TRUE(sendAll(fd.get(), msg));
    ReadResult r = readExactly(fd.get(), msg.size(), 20s);
    ASSERT_EQ(r.error, 0) << strerror(r.error);
    EXPECT_TRUE(r.data == msg);
    sa.checkLogsClean();
    sb.checkLogsClean();
  }

  std::unique_ptr<Mesh> mesh_;
};

TEST_F(VerbsFallbackTest, TwoVerbsNodesWithoutDevicesRunTcp) {
  startMesh("verbs", "verbs");
  expectEchoOverTcp();
}

TEST_F(VerbsFallbackTest, VerbsNodeAndTcpNodeMeetOverTcp) {
  startMesh("verbs", "tcp");
  expectEchoOverTcp();
}

TEST_F(VerbsFallbackTest, TcpNodeDialsVerbsNode) {
  startMesh("tcp", "verbs");
  expectEchoOverTcp();
}

}  // namespace
}  // namespace rdmesh::it
