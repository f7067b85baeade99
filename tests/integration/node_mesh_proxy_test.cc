// The whole mesh mode path with real processes: rdmesh-proxy sidecars in mesh mode behind two
// rdmesh-node agents in two namespaces (node-a, node-b) joined by veth, the agents linked by a
// tcp PairLink (rdma off). An app's TCP through sidecar A reaches an echo server behind sidecar
// B: A's session bytes are posted by agent A from A's staging, land in B's receive area through
// agent B, and come back the same way. Then sidecar B is killed: agent A closes A's session, and
// both agents' stats return to no sessions and no registered bytes.
#include <sys/socket.h>

#include <nlohmann/json.hpp>

#include "fake_sidecar.h"
#include "fixture.h"

namespace rdmesh::it {
namespace {

constexpr uint16_t kEchoPort = 7400;
constexpr uint16_t kInboundPort = 8080;
constexpr uint16_t kOutboundPort = 17400;
constexpr const char* kIpA = "10.77.42.1";
constexpr const char* kIpB = "10.77.42.2";

class NodeMeshProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = netnsUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    removeStaleNamespaces();
    ns_a_ = std::make_unique<Netns>("mpa");
    ns_b_ = std::make_unique<Netns>("mpb");
    linkVeth(*ns_a_, std::string(kIpA) + "/24", *ns_b_, std::string(kIpB) + "/24");
    agent_a_ = startAgent("node-a", *ns_a_, kIpA, "node-b", kIpB);
    agent_b_ = startAgent("node-b", *ns_b_, kIpB, "node-a", kIpA);
    ASSERT_TRUE(waitFor([&] { return stat("node-a", "rdmesh.node.links.up") == 1; }, 20s))
        << agent_a_->output();
    echo_ = std::make_unique<EchoServer>(ns_b_->name(), "127.0.0.1", kEchoPort);
    SidecarSpec b;
    b.node = "node-b";
    b.pod = "pod-b";
    b.node_agent_socket = socketOf("node-b");
    b.pod_ips = {"10.55.0.2"};
    b.inbound("echo-in", kInboundPort, "127.0.0.1:" + std::to_string(kEchoPort));
    b_ = std::make_unique<Sidecar>(b, ns_b_->name(), dir_.path());
    SidecarSpec a;
    a.node = "node-a";
    a.pod = "pod-a";
    a.node_agent_socket = socketOf("node-a");
    a.pod_ips = {"10.55.0.1"};
    a.outbound("echo-out", "127.0.0.1:" + std::to_string(kOutboundPort), "echo");
    a.cluster("echo", {{"node-b", "10.55.0.2:" + std::to_string(kInboundPort)}});
    a_ = std::make_unique<Sidecar>(a, ns_a_->name(), dir_.path());
    b_->start();
    a_->start();
    ASSERT_TRUE(a_->waitReady() && b_->waitReady()) << "sidecars not ready";
    ASSERT_TRUE(b_->waitStat("rdmesh.mesh.listener.up", "1", 10s));
  }

  std::string socketOf(const std::string& node) const { return dir_.file(node + ".sock"); }

  std::unique_ptr<Process> startAgent(const std::string& name, const Netns& ns,
                                      const std::string& ip, const std::string& peer,
                                      const std::string& peer_ip) {
    std::string config = dir_.file(name + ".yaml");
    writeFile(config, "node: {name: " + name + "}\nsocket: " + socketOf(name) +
                          "\nstate_file: " + dir_.file(name + "-pods.json") +
                          "\ncapture: {bpf: false}\nfabric:\n  listen: " + ip +
                          ":15008\n  rdma: false\n  verify_caller_netns: false\n"
                          "  peers: [{name: " +
                          peer + ", address: \"" + peer_ip + ":15008\"}]\n");
    return std::make_unique<Process>(name, std::vector<std::string>{RDMESH_NODE_BIN, "-c", config},
                                     dir_.file(name + ".log"), ns.name());
  }

  uint64_t stat(const std::string& node, const std::string& name) {
    auto c = testing::NodeSocketClient::connect(socketOf(node));
    if (!c) return ~0ull;
    auto reply = c->request({{"op", "stats"}}, {}, nullptr, 2s);
    if (!reply || !(*reply)["stats"].contains(name)) return ~0ull;
    return (*reply)["stats"][name].get<uint64_t>();
  }

  void echoTransfer(size_t bytes, uint64_t seed) {
    UniqueFd fd = tcpConnect(ns_a_->name(), "127.0.0.1", kOutboundPort);
    ASSERT_TRUE(fd) << "connect to the outbound listener";
    std::string data = PatternGen(seed).bytes(bytes);
    Hasher sent;
    sent.update(data.data(), data.size());
    std::thread writer([&] {
      sendAll(fd.get(), data);
      ::shutdown(fd.get(), SHUT_WR);
    });
    ReadResult r = readUntilEof(fd.get(), 60s);
    writer.join();
    ASSERT_EQ(r.error, 0) << strerror(r.error);
    Hasher got;
    got.update(r.data.data(), r.data.size());
    EXPECT_EQ(got.bytes(), bytes);
    EXPECT_EQ(got.digest(), sent.digest()) << "echoed bytes differ";
  }

  TempDir dir_{"rdnmp"};
  std::unique_ptr<Netns> ns_a_, ns_b_;
  std::unique_ptr<Process> agent_a_, agent_b_;
  std::unique_ptr<EchoServer> echo_;
  std::unique_ptr<Sidecar> a_, b_;
};

TEST_F(NodeMeshProxyTest, EchoThroughTwoAgentsAndASidecarDeathCleansUp) {
  echoTransfer(1024, 1);
  echoTransfer(8 << 20, 2);
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

}  // namespace
}  // namespace rdmesh::it
