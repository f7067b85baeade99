// Mesh mode through two real node agents: node-a and node-b are network namespaces joined by
// veth, each runs rdmesh-node (rdma off: one tcp PairLink between them), and sidecars are
// rdmesh-fake-sidecar processes speaking the
// node.sock session ops with real memfd regions and eventfds. Checked: bytes written into one
// sidecar's staging land in the other's receive area with the v1 arrival; a killed sidecar
// closes the remote session and both agents' /stats return to their baseline (fds, registered
// bytes); a killed agent hangs up its sessions, and a restarted one is dialed again.
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include "node_agents_fixture.h"
#include "rdmesh/transport/wire.h"

namespace rdmesh::it {
namespace {

using nlohmann::json;

constexpr const char* kIpA = "10.77.41.1";
constexpr const char* kIpB = "10.77.41.2";
constexpr const char* kPodIp = "10.200.0.7";  // the destination pod (sidecar on node-b)

class NodeMeshTest : public NodeAgentsTest {
 protected:
  void SetUp() override { startNodes("nm", kIpA, kIpB); }

  std::unique_ptr<Process> sidecar(const std::string& tag, const Netns& ns,
                                   std::vector<std::string> args) {
    args.insert(args.begin(), RDMESH_FAKE_SIDECAR_BIN);
    return std::make_unique<Process>(tag, args, dir_.file(tag + ".log"), ns.name());
  }

  static bool logHas(const Process& p, const std::string& text) {
    return p.output().find(text) != std::string::npos;
  }
};

TEST_F(NodeMeshTest, SessionAcrossNodesCarriesBytesAndASidecarDeathCleansUpBothAgents) {
  uint64_t fds_a = stat("node-a", "rdmesh.node.process.open_fds");
  uint64_t fds_b = stat("node-b", "rdmesh.node.process.open_fds");
  auto listener = sidecar("listener", *ns_b_, {"listen", socketOf("node-b"), kPodIp, "node-b"});
  ASSERT_TRUE(waitFor([&] { return logHas(*listener, "LISTENING"); }, 10s)) << listener->output();
  std::string text = "hello from node-a";
  auto opener = sidecar("opener", *ns_a_, {"open", socketOf("node-a"), kPodIp, "node-b", text});
  ASSERT_TRUE(waitFor([&] { return logHas(*opener, "SENT"); }, 10s)) << opener->output();
  EXPECT_TRUE(logHas(*opener, "OPENED mode=agent"));
  uint32_t imm = wire::encodeImm(wire::ImmType::kData, 1, static_cast<uint32_t>(text.size()));
  std::string arrival = "ARRIVAL imm=" + std::to_string(imm) +
                        " len=" + std::to_string(text.size()) + " data=" + text;
  ASSERT_TRUE(waitFor([&] { return logHas(*listener, arrival); }, 10s)) << listener->output();
  EXPECT_TRUE(logHas(*listener, "ACCEPTED mode=agent"));
  EXPECT_EQ(stat("node-a", "rdmesh.node.sessions.active"), 1u);
  EXPECT_EQ(stat("node-a", "rdmesh.node.sessions.open_fds"), 3u);
  EXPECT_GT(stat("node-b", "rdmesh.node.sessions.registered_bytes"), 0u);
  EXPECT_EQ(stat("node-a", "rdmesh.node.datapath.submissions"), 1u);
  EXPECT_EQ(stat("node-b", "rdmesh.node.datapath.arrivals"), 1u);

  opener->kill();  // SIGKILL: the sidecar dies without a word
  ASSERT_TRUE(waitFor([&] { return logHas(*listener, "CLOSED closed_flag=1"); }, 10s))
      << listener->output();
  ASSERT_TRUE(listener->wait(10s).has_value());
  for (const char* node : {"node-a", "node-b"}) {
    EXPECT_TRUE(waitFor([&] { return stat(node, "rdmesh.node.sessions.open_fds") == 0; }, 10s))
        << node;
    EXPECT_EQ(stat(node, "rdmesh.node.sessions.registered_bytes"), 0u) << node;
    EXPECT_EQ(stat(node, "rdmesh.node.sessions.active"), 0u) << node;
  }
  // Every fd the agents took for the session (regions, doorbells, connections) is closed.
  EXPECT_TRUE(waitFor([&] { return stat("node-a", "rdmesh.node.process.open_fds") == fds_a; }, 10s))
      << stat("node-a", "rdmesh.node.process.open_fds") << " vs " << fds_a;
  EXPECT_TRUE(waitFor([&] { return stat("node-b", "rdmesh.node.process.open_fds") == fds_b; }, 10s))
      << stat("node-b", "rdmesh.node.process.open_fds") << " vs " << fds_b;
  EXPECT_EQ(stat("node-a", "rdmesh.node.links.lost_total"), 0u);
}

TEST_F(NodeMeshTest, AKilledAgentHangsUpItsSessionsAndIsDialedAgainWhenItReturns) {
  auto listener = sidecar("listener", *ns_b_, {"listen", socketOf("node-b"), kPodIp, "node-b"});
  ASSERT_TRUE(waitFor([&] { return logHas(*listener, "LISTENING"); }, 10s)) << listener->output();
  auto opener = sidecar("opener", *ns_a_, {"open", socketOf("node-a"), kPodIp, "node-b", "x"});
  ASSERT_TRUE(waitFor([&] { return logHas(*listener, "ARRIVAL"); }, 10s)) << listener->output();

  agent_b_->kill();
  // node-b's sidecar sees its session connection hang up; node-a loses the link and closes the
  // session on its side.
  EXPECT_TRUE(waitFor([&] { return logHas(*listener, "CLOSED"); }, 10s)) << listener->output();
  EXPECT_TRUE(waitFor([&] { return logHas(*opener, "HANGUP closed_flag=1"); }, 10s))
      << opener->output();
  EXPECT_EQ(stat("node-a", "rdmesh.node.links.up"), 0u);
  EXPECT_EQ(stat("node-a", "rdmesh.node.sessions.registered_bytes"), 0u);

  // node-b comes back: node-a (the lower name dials) reconnects with backoff, and a new session
  // works across the new link.
  agent_b_ = startAgent("node-b", *ns_b_, kIpB, "node-a", kIpA);
  ASSERT_TRUE(waitFor([&] { return stat("node-a", "rdmesh.node.links.up") == 1; }, 20s))
      << agent_a_->output();
  auto listener2 = sidecar("listener2", *ns_b_, {"listen", socketOf("node-b"), kPodIp, "node-b"});
  ASSERT_TRUE(waitFor([&] { return logHas(*listener2, "LISTENING"); }, 10s));
  auto opener2 =
      sidecar("opener2", *ns_a_, {"open", socketOf("node-a"), kPodIp, "node-b", "again"});
  EXPECT_TRUE(waitFor([&] { return logHas(*listener2, "data=again"); }, 10s))
      << listener2->output() << opener2->output();
}

}  // namespace
}  // namespace rdmesh::it
