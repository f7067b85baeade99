// Mesh mode end to end with the real node agents: node-a and node-b are network namespaces joined
// by veth, each runs rdmesh-node (tcp links, no RDMA; the stream PairLink double until the
// production link domain is wired in), and each pod is a network namespace of its own,
// registered with its node's agent (pod_add), running a real rdmesh-proxy in mesh mode with a
// real echo server behind it. Pods: a1 and a2 on node-a, b1 on node-b; a1's app reaches b1
// (across nodes, through both agents) and a2 (same node, over shm the agent brokers).
#include <sys/socket.h>

#include <nlohmann/json.hpp>

#include "fake_sidecar.h"
#include "fixture.h"

namespace rdmesh::it {
namespace {

constexpr const char* kNodeIpA = "10.77.43.1";
constexpr const char* kNodeIpB = "10.77.43.2";
constexpr const char* kPodA1 = "10.201.0.11";
constexpr const char* kPodA2 = "10.201.0.12";
constexpr const char* kPodB1 = "10.201.0.21";
constexpr uint16_t kEchoPort = 7500, kInboundPort = 8080;
constexpr uint16_t kToB1 = 17501, kToA2 = 17502;

class MeshNodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = netnsUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    ns_a_ = std::make_unique<Netns>("mna");
    ns_b_ = std::make_unique<Netns>("mnb");
    linkVeth(*ns_a_, std::string(kNodeIpA) + "/24", *ns_b_, std::string(kNodeIpB) + "/24");
    agent_a_ = startAgent("node-a", *ns_a_, kNodeIpA, "node-b", kNodeIpB);
    agent_b_ = startAgent("node-b", *ns_b_, kNodeIpB, "node-a", kNodeIpA);
    ASSERT_TRUE(waitFor([&] { return agentStat("node-a", "rdmesh.node.links.up") == 1; }, 20s))
        << agent_a_->output();
    ASSERT_TRUE(waitFor([&] { return agentStat("node-b", "rdmesh.node.links.up") == 1; }, 20s));

    a1_ = addPod("a1", "node-a", kPodA1, /*client=*/true);
    a2_ = addPod("a2", "node-a", kPodA2, /*client=*/false);
    b1_ = addPod("b1", "node-b", kPodB1, /*client=*/false);
    for (Pod* p : {&a2_, &b1_, &a1_}) p->sidecar->start();
    for (Pod* p : {&a1_, &a2_, &b1_}) {
      ASSERT_TRUE(p->sidecar->waitReady()) << p->name;
      ASSERT_TRUE(p->sidecar->waitStat("rdmesh.mesh.listener.up", "1", 10s)) << p->name;
    }
  }

  std::string socketOf(const std::string& node) const { return dir_.file(node + ".sock"); }

  std::unique_ptr<Process> startAgent(const std::string& name, const Netns& ns,
                                      const std::string& ip, const std::string& peer,
                                      const std::string& peer_ip) {
    std::string config = dir_.file(name + ".yaml");
    writeFile(config, "node: {name: " + name + "}\n" + "socket: " + socketOf(name) + "\n" +
                          "state_file: " + dir_.file(name + "-pods.json") + "\n" +
                          "capture: {bpf: false}\n"
                          "fabric:\n"
                          "  listen: " +
                          ip + ":15008\n" + "  rdma: false\n" + "  peers: [{name: " + peer +
                          ", address: \"" + peer_ip + ":15008\"}]\n");
    return std::make_unique<Process>(
        name, std::vector<std::string>{RDMESH_NODE_MESH_BIN, "-c", config},
        dir_.file(name + "." + std::to_string(++agent_starts_) + ".log"), ns.name());
  }

  // The agent's stats op (node.sock is a path: reachable from any namespace).
  uint64_t agentStat(const std::string& node, const std::string& name) {
    auto c = testing::NodeSocketClient::connect(socketOf(node));
    if (!c) return ~0ull;
    auto reply = c->request({{"op", "stats"}}, {}, nullptr, 2s);
    if (!reply || !(*reply)["stats"].contains(name)) return ~0ull;
    return (*reply)["stats"][name].get<uint64_t>();
  }

  struct Pod {
    std::string name, node, ip;
    std::unique_ptr<Netns> ns;
    std::unique_ptr<EchoServer> echo;
    std::unique_ptr<Sidecar> sidecar;
  };

  // The pod's namespace, registered with its agent; echo server and sidecar in it.
  Pod addPod(const std::string& name, const std::string& node, const std::string& ip, bool client) {
    Pod p{name, node, ip, std::make_unique<Netns>("mp" + name), nullptr, nullptr};
    registerPod(p);
    SidecarSpec spec;
    spec.node = node;
    spec.pod = name;
    spec.node_agent_socket = socketOf(node);
    spec.pod_ips = {ip};
    if (client) {
      spec.outbound("to-b1", "127.0.0.1:" + std::to_string(kToB1), "b1");
      spec.cluster("b1", {{"node-b", std::string(kPodB1) + ":" + std::to_string(kInboundPort)}});
      spec.outbound("to-a2", "127.0.0.1:" + std::to_string(kToA2), "a2");
      spec.cluster("a2", {{"node-a", std::string(kPodA2) + ":" + std::to_string(kInboundPort)}});
    } else {
      p.echo = std::make_unique<EchoServer>(p.ns->name(), "127.0.0.1", kEchoPort);
      spec.inbound("echo-in", kInboundPort, "127.0.0.1:" + std::to_string(kEchoPort));
    }
    p.sidecar = std::make_unique<Sidecar>(spec, p.ns->name(), dir_.path());
    return p;
  }

  void registerPod(const Pod& p) {
    auto c = testing::NodeSocketClient::connect(socketOf(p.node));
    ASSERT_TRUE(c.isOk()) << c.status().message();
    auto reply = c->request({{"v", 1},
                             {"op", "pod_add"},
                             {"container_id", "c-" + p.name},
                             {"netns", "/run/netns/" + p.ns->name()},
                             {"ips", {p.ip}},
                             {"interface", "eth0"}},
                            {}, nullptr, 5s);
    ASSERT_TRUE(reply.isOk()) << reply.status().message();
    ASSERT_TRUE((*reply)["ok"].get<bool>()) << reply->dump();
  }

  // Echoes `bytes` through a1's listener `port` and checks what comes back.
  void echoTransfer(uint16_t port, size_t bytes, uint64_t seed) {
    expectEchoed(a1_.ns->name(), "127.0.0.1", port, bytes, seed);
  }

  TempDir dir_{"rdmn"};
  std::unique_ptr<Netns> ns_a_, ns_b_;
  std::unique_ptr<Process> agent_a_, agent_b_;
  int agent_starts_ = 0;
  Pod a1_, a2_, b1_;
};

TEST_F(MeshNodeTest, AcrossNodesThroughBothAgentsAndSameNodeOverShm) {
  echoTransfer(kToB1, 1024, 1);
  echoTransfer(kToB1, 16 << 20, 2);
  EXPECT_EQ(a1_.sidecar->stat(std::string("rdmesh.session.") + kPodB1 + "@node-b.fabric"), "agent");
  EXPECT_GT(agentStat("node-a", "rdmesh.node.datapath.submissions"), 0u);
  EXPECT_GT(agentStat("node-b", "rdmesh.node.datapath.arrivals"), 0u);

  uint64_t submissions = agentStat("node-a", "rdmesh.node.datapath.submissions");
  uint64_t arrivals = agentStat("node-a", "rdmesh.node.datapath.arrivals");
  echoTransfer(kToA2, 8 << 20, 3);
  EXPECT_EQ(a1_.sidecar->stat(std::string("rdmesh.session.") + kPodA2 + "@node-a.fabric"), "shm");
  EXPECT_EQ(agentStat("node-a", "rdmesh.node.datapath.submissions"), submissions)
      << "same-node bytes went through the agent";
  EXPECT_EQ(agentStat("node-a", "rdmesh.node.datapath.arrivals"), arrivals);
  EXPECT_GE(agentStat("node-a", "rdmesh.node.sessions.shm_brokered_total"), 1u);
}

TEST_F(MeshNodeTest, AKilledSidecarResetsItsStreamsAndTheAgentsReturnToBaseline) {
  uint64_t fds_a = agentStat("node-a", "rdmesh.node.process.open_fds");
  uint64_t fds_b = agentStat("node-b", "rdmesh.node.process.open_fds");
  UniqueFd fd = tcpConnect(a1_.ns->name(), "127.0.0.1", kToB1);
  ASSERT_TRUE(fd);
  ASSERT_TRUE(sendAll(fd.get(), std::string(1000, 'k')));
  ASSERT_EQ(readExactly(fd.get(), 1000, 10s).data.size(), 1000u);
  ASSERT_EQ(agentStat("node-a", "rdmesh.node.sessions.active"), 1u);

  b1_.sidecar->kill();
  ReadResult r = readUntilEof(fd.get(), 10s);
  EXPECT_TRUE(r.error == ECONNRESET || r.eof)
      << "the app connection did not end: " << strerror(r.error);
  EXPECT_NE(r.error, ETIMEDOUT);
  for (const char* node : {"node-a", "node-b"}) {
    EXPECT_TRUE(waitFor([&] { return agentStat(node, "rdmesh.node.sessions.active") == 0; }, 10s))
        << node;
    EXPECT_EQ(agentStat(node, "rdmesh.node.sessions.registered_bytes"), 0u) << node;
  }
  // b1's listener connection is gone too; a1's listener and link stay.
  EXPECT_TRUE(
      waitFor([&] { return agentStat("node-a", "rdmesh.node.process.open_fds") == fds_a; }, 10s))
      << agentStat("node-a", "rdmesh.node.process.open_fds") << " vs " << fds_a;
  EXPECT_TRUE(
      waitFor([&] { return agentStat("node-b", "rdmesh.node.process.open_fds") < fds_b; }, 10s));
  // a2 (same node) is untouched, and b1 back means new connections to it work.
  echoTransfer(kToA2, 64 << 10, 4);
  b1_.sidecar->start();
  ASSERT_TRUE(b1_.sidecar->waitReady() &&
              b1_.sidecar->waitStat("rdmesh.mesh.listener.up", "1", 10s));
  echoTransfer(kToB1, 1 << 20, 5);
}

TEST_F(MeshNodeTest, SidecarsReattachAfterTheNodeAgentRestarts) {
  echoTransfer(kToB1, 64 << 10, 6);
  agent_a_->kill();
  ASSERT_TRUE(a1_.sidecar->waitStat("rdmesh.mesh.listener.up", "0", 10s));
  agent_a_ = startAgent("node-a", *ns_a_, kNodeIpA, "node-b", kNodeIpB);
  ASSERT_TRUE(waitFor([&] { return agentStat("node-a", "rdmesh.node.links.up") == 1; }, 20s))
      << agent_a_->output();
  // The restarted agent read its pods back from its state file: the sidecars re-listen.
  ASSERT_TRUE(a1_.sidecar->waitStat("rdmesh.mesh.listener.up", "1", 15s)) << "a1 did not reattach";
  ASSERT_TRUE(a2_.sidecar->waitStat("rdmesh.mesh.listener.up", "1", 15s)) << "a2 did not reattach";
  echoTransfer(kToB1, 1 << 20, 7);
  echoTransfer(kToA2, 1 << 20, 8);
}

}  // namespace
}  // namespace rdmesh::it
