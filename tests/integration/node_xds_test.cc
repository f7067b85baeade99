// rdmesh-node joins the control plane (docs/node-agent.md, "Joining the control plane"): two node
// namespaces, rdmesh-xds in node-a, the node agent of node-b (eBPF capture off: the capture path
// has its own suites) subscribed to rdmesh-xds and registering its pods, a sidecar on node-a
// routing to the service those pods back, and node-b's sidecar configured from xDS.
//  - pod_add over node.sock makes the Workload appear at rdmesh-xds and traffic from node-a
//    reach the pod; pod_del removes it.
//  - rdmesh-xds down: pod_add still answers at once; once rdmesh-xds is back the agent
//    reconciles (registers what is missing, deletes a stale Workload it owns, leaves others').
//  - The agent's peer list follows the Node resources live; a Node it cannot use is NACKed (seen
//    in /debug/syncz) and the last good peers stay.
// Every case runs with the agent on both stream variants (state of the world and delta).
#include <gtest/gtest.h>

#include <csignal>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "capture_fixture.h"
#include "harness.h"

namespace rdmesh::it {
namespace {

constexpr const char* kToken = "node-xds-registration-token";
constexpr uint16_t kXdsPort = 15010;
constexpr uint16_t kCartListenerPort = 18080;
constexpr const char* kCartCluster = "outbound|80||cart.shop";

// The cart service has no workload until node-b's agent registers one.
constexpr const char* kRegistry = R"(trust_domain: cluster.local
nodes:
  - {name: node-a, addresses: [10.77.1.1], fabric: tcp, session_address: "10.77.1.1:15008"}
  - {name: node-b, addresses: [10.77.1.2], fabric: tcp, session_address: "10.77.1.2:15008"}
workloads:
  - {namespace: shop, pod: web-0, ip: [10.77.1.1], node: node-a, service_account: web,
     ports: [8080], labels: {app: web}}
services:
  - name: shop/cart
    cluster_ips: [10.96.0.20]
    ports: [{name: http, port: 80, target_port: 9090, protocol: TCP}]
    selector: {app: cart}
)";

class NodeXdsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (auto why = netnsUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    if (xdsBinary().empty() || findExecutable(xdsBinary()).empty()) {
      GTEST_SKIP() << "rdmesh-xds not built";
    }
    if (findExecutable("curl").empty()) GTEST_SKIP() << "curl not installed";
    std::signal(SIGPIPE, SIG_IGN);
    mesh_ = std::make_unique<Mesh>("tcp", std::vector<std::string>{"node-a", "node-b"});
    writeFile(mesh_->dir().file("registry.yaml"), kRegistry);
    writeFile(mesh_->dir().file("token"), std::string(kToken) + "\n");
    startXds();

    // cart's pods all run on node-b; the inbound listener targets 127.0.0.1:9090 there.
    cart_ = std::make_unique<ThreadedServer>(mesh_->ns("node-b"), "127.0.0.1", 9090,
                                             [](int fd) { sendAll(fd, "cart-b\n"); });

    agent_ = std::make_unique<NodeAgent>("node-b", mesh_->dir().path(), "", "", /*bpf=*/false);
    agent_->setLaunch(mesh_->ns("node-b"),
                      {"--xds-server", "10.77.1.1:" + std::to_string(kXdsPort), "--xds-plaintext",
                       "true", "--xds-delta", GetParam() == "delta" ? "true" : "false",
                       "--xds-registration-token-file", mesh_->dir().file("token")});
    agent_->start();

    SidecarSpec a = mesh_->baseSpec("node-a");
    a.peers.clear();
    a.outbound("cart", "127.0.0.1:" + std::to_string(kCartListenerPort), kCartCluster);
    a.extra_yaml = xdsSection("127.0.0.1", "shop/web-0");
    SidecarSpec b = mesh_->baseSpec("node-b");
    b.peers.clear();
    b.extra_yaml = xdsSection("10.77.1.1", "shop/cart-0");
    for (SidecarSpec* spec : {&b, &a}) {
      Sidecar& sidecar = mesh_->add(*spec);
      sidecar.start();
      ASSERT_TRUE(sidecar.waitReady()) << spec->node << " not ready";
      ASSERT_TRUE(sidecar.waitStat("rdmesh.xds.connected", "1", 15s));
    }
  }

  void TearDown() override {
    if (agent_) agent_->terminate();
    if (xds_) xds_->terminate();
  }

  static std::string xdsSection(const std::string& ip, const std::string& workload) {
    return "xds:\n  servers: [\"" + ip + ":" + std::to_string(kXdsPort) +
           "\"]\n  plaintext: true\n  workload: " + workload + "\n  connect_timeout_ms: 1000\n";
  }

  void startXds() {
    ++xds_starts_;
    xds_ = std::make_unique<Process>(
        "rdmesh-xds",
        std::vector<std::string>{xdsBinary(), "--listen-ip", "0.0.0.0", "--plaintext-port",
                                 std::to_string(kXdsPort), "--registry-file",
                                 mesh_->dir().file("registry.yaml"), "--registration-token-file",
                                 mesh_->dir().file("token"), "--push-delay-ms", "0"},
        mesh_->logPath("rdmesh-xds-" + std::to_string(xds_starts_)), mesh_->ns("node-a"));
    ASSERT_TRUE(waitFor([&] { return curl({url("/ready")}) == "ready\n"; }, 10s)) << xds_->output();
  }

  static std::string url(const std::string& path) {
    return "http://127.0.0.1:" + std::to_string(kXdsPort) + path;
  }

  // curl over h2c inside node-a's namespace; the body, or "" on failure.
  std::string curl(std::vector<std::string> args) {
    std::vector<std::string> argv = {"curl", "-sf", "--http2-prior-knowledge", "--max-time", "5"};
    argv.insert(argv.end(), args.begin(), args.end());
    CommandResult r = runCommand(argv, mesh_->logPath("curl"), mesh_->ns("node-a"), 10s);
    if (!r.ok()) return "";
    return commandOutput(r);
  }

  bool put(const std::string& path, const std::string& json) {
    std::string body_file = mesh_->dir().file("body.json");
    writeFile(body_file, json);
    return !curl({"-X", "PUT", "-H", std::string("authorization: Bearer ") + kToken,
                  "--data-binary", "@" + body_file, url(path)})
                .empty();
  }
  bool del(const std::string& path) {
    return !curl({"-X", "DELETE", "-H", std::string("authorization: Bearer ") + kToken, url(path)})
                .empty();
  }

  // rdmesh-xds's workloads by name (its /debug/registry).
  std::map<std::string, nlohmann::json> workloadMap() {
    nlohmann::json registry = nlohmann::json::parse(curl({url("/debug/registry")}), nullptr, false);
    std::map<std::string, nlohmann::json> workloads;
    if (!registry.is_object() || !registry.contains("workloads")) return workloads;
    for (const auto& w : registry["workloads"]) workloads[w.value("name", "")] = w;
    return workloads;
  }
  std::set<std::string> workloadsAtXds() {
    std::set<std::string> names;
    for (const auto& [name, w] : workloadMap()) names.insert(name);
    return names;
  }
  // The container id label of a workload at rdmesh-xds ("" if absent).
  std::string containerIdAtXds(const std::string& name) {
    std::map<std::string, nlohmann::json> workloads = workloadMap();
    auto it = workloads.find(name);
    if (it == workloads.end()) return "";
    return it->second["labels"].value("rdmesh.io/container-id", "");
  }
  bool xdsHas(const std::string& workload) { return workloadsAtXds().contains(workload); }

  // The agent's "peers" op: the names in force.
  std::vector<std::string> peers() {
    nlohmann::json reply =
        nlohmann::json::parse(agent_->request(R"({"v":1,"op":"peers"})"), nullptr, false);
    std::vector<std::string> names;
    if (!reply.is_object() || !reply.contains("peers")) return {"(no reply)"};
    for (const auto& p : reply["peers"]) names.push_back(p.value("name", ""));
    return names;
  }

  std::string podAdd(const std::string& id, const std::string& pod) {
    return agent_->request(R"({"v":1,"op":"pod_add","container_id":")" + id +
                           R"(","netns":"/run/netns/)" + mesh_->ns("node-b") +
                           R"(","ips":["10.77.1.2"],"interface":"eth0","pod_name":")" + pod +
                           R"(","pod_namespace":"shop","service_account":"cart","ports":[9090],)" +
                           R"("labels":{"app":"cart"}})");
  }
  std::string podDel(const std::string& id) {
    return agent_->request(R"({"v":1,"op":"pod_del","container_id":")" + id + R"("})");
  }

  // What a new connection through node-a's cart listener reads first ("" = refused or reset).
  std::string cartReply() {
    UniqueFd fd = tcpConnect(mesh_->ns("node-a"), "127.0.0.1", kCartListenerPort, 2s);
    if (!fd) return "";
    ReadResult r = readExactly(fd.get(), 7, 3s);
    return r.data;
  }

  std::unique_ptr<Mesh> mesh_;
  std::unique_ptr<Process> xds_;
  int xds_starts_ = 0;
  std::unique_ptr<ThreadedServer> cart_;
  std::unique_ptr<NodeAgent> agent_;
};

TEST_P(NodeXdsTest, PodsAreRegisteredLiveAndReconciledAfterAnXdsOutage) {
  // Nothing behind the cart service yet.
  EXPECT_EQ(cartReply(), "");
  EXPECT_FALSE(xdsHas("shop/cart-0"));

  // (a) pod_add over node.sock: the agent registers the pod; node-a's sidecar learns the
  // endpoint (and node-b as a peer), node-b's sidecar its inbound listener; traffic flows.
  std::string reply = podAdd("cart0sandbox", "cart-0");
  ASSERT_EQ(jsonField(reply, "ok"), "true") << reply;
  ASSERT_TRUE(waitFor([&] { return xdsHas("shop/cart-0"); }, 10s))
      << curl({url("/debug/registry")});
  nlohmann::json cart0 = workloadMap()["shop/cart-0"];
  EXPECT_EQ(cart0["labels"].value("rdmesh.io/container-id", ""), "cart0sandbox") << cart0;
  EXPECT_EQ(cart0["labels"].value("rdmesh.io/registered-by", ""), "rdmesh-node") << cart0;
  EXPECT_EQ(cart0.value("identity", ""), "spiffe://cluster.local/ns/shop/sa/cart") << cart0;
  EXPECT_EQ(cart0.value("node", ""), "node-b") << cart0;
  ASSERT_TRUE(waitFor([&] { return cartReply() == "cart-b\n"; }, 20s))
      << "traffic never reached the registered pod";

  // pod_del: the Workload goes, and with it the endpoint.
  reply = podDel("cart0sandbox");
  ASSERT_EQ(jsonField(reply, "ok"), "true") << reply;
  ASSERT_TRUE(waitFor([&] { return !xdsHas("shop/cart-0"); }, 10s));
  EXPECT_TRUE(waitFor([&] { return cartReply().empty(); }, 10s));

  // (b) rdmesh-xds down: pod_add answers at once (the control plane is not on the pod path),
  // the registration waits and is retried.
  xds_->kill();
  ASSERT_TRUE(waitFor([&] { return agent_->stat("rdmesh.xds.connected") == 0; }, 10s));
  auto t0 = Clock::now();
  // The same pod again, in a new sandbox (node-b's sidecar serves workload shop/cart-0).
  reply = podAdd("cart0sandbox2", "cart-0");
  double seconds = secondsSince(t0);
  ASSERT_EQ(jsonField(reply, "ok"), "true") << reply;
  EXPECT_LT(seconds, 0.5) << "pod_add waited for the control plane";
  EXPECT_TRUE(
      waitFor([&] { return agent_->stat("rdmesh.node.registrar.failures_total") > 0; }, 10s));

  // rdmesh-xds back (from its file: every registration is gone). Meanwhile someone left a
  // Workload on node-b that says this agent registered it, and another source registered one
  // there too. The agent reconciles: its pod is registered again, the stale one it owns is
  // deleted, the other source's stays.
  startXds();
  auto workload = [](const std::string& pod, bool owned) {
    return R"({"name":"shop/)" + pod + R"(","namespace":"shop","pod":")" + pod +
           R"(","ip":["10.77.1.2"],"node":"node-b","identity":"spiffe://cluster.local/ns/shop/sa/x",)" +
           R"("service_account":"x","ports":[7070],"labels":{)" +
           (owned ? R"("rdmesh.io/registered-by":"rdmesh-node")" : R"("app":"other")") + "}}";
  };
  ASSERT_TRUE(put("/v1/workloads/shop/ghost-0", workload("ghost-0", true)));
  ASSERT_TRUE(put("/v1/workloads/shop/other-0", workload("other-0", false)));
  ASSERT_TRUE(waitFor(
      [&] {
        std::set<std::string> names = workloadsAtXds();
        return names.contains("shop/cart-0") && !names.contains("shop/ghost-0");
      },
      20s))
      << curl({url("/debug/registry")});
  EXPECT_TRUE(workloadsAtXds().contains("shop/other-0"));
  EXPECT_EQ(containerIdAtXds("shop/cart-0"), "cart0sandbox2");
  EXPECT_TRUE(waitFor([&] { return cartReply() == "cart-b\n"; }, 20s))
      << "traffic does not reach the pod registered after the outage";
  EXPECT_EQ(agent_->stat("rdmesh.xds.connected"), 1);
  EXPECT_TRUE(waitFor([&] { return agent_->stat("rdmesh.node.registrar.pending") == 0; }, 5s));
}

TEST_P(NodeXdsTest, PeersFollowTheNodesAndABadNodeIsNackedKeepingTheLastGoodPeers) {
  // (c) The peers: every node but node-b itself, live.
  ASSERT_TRUE(waitFor([&] { return peers() == std::vector<std::string>{"node-a"}; }, 10s))
      << agent_->request(R"({"v":1,"op":"peers"})");
  ASSERT_TRUE(put("/v1/nodes/node-c", R"({"name":"node-c","addresses":["10.77.1.3"],)"
                                      R"("fabric":"verbs","session_address":"10.77.1.3:15008",)"
                                      R"("rdma":{"gid":"fe80::5054:ff:fe12:3456"}})"));
  ASSERT_TRUE(waitFor(
      [&] {
        return peers() == std::vector<std::string>{"node-a", "node-c"};
      },
      10s))
      << agent_->request(R"({"v":1,"op":"peers"})");
  std::string detail = agent_->request(R"({"v":1,"op":"peers"})");
  EXPECT_NE(detail.find(R"("session_address":"10.77.1.3:15008")"), std::string::npos) << detail;
  EXPECT_NE(detail.find(R"("rdma_gid":"fe80::5054:ff:fe12:3456")"), std::string::npos) << detail;
  EXPECT_EQ(agent_->stat("rdmesh.node.peers.known"), 2);
  std::string stats = agent_->request(R"({"v":1,"op":"stats"})");
  EXPECT_NE(stats.find(R"("peers":["node-a","node-c"])"), std::string::npos) << stats;

  // (d) A node the agent cannot dial (unspecified session address; the codec accepts it):
  // NACKed with the reason, visible at the server; the peers stay as they were.
  ASSERT_TRUE(put("/v1/nodes/node-d", R"({"name":"node-d","addresses":["10.77.1.4"],)"
                                      R"("fabric":"tcp","session_address":"0.0.0.0:15008"})"));
  const std::string reason = "node node-d session_address: 0.0.0.0:15008 is unspecified";
  ASSERT_TRUE(
      waitFor([&] { return curl({url("/debug/syncz")}).find(reason) != std::string::npos; }, 10s))
      << curl({url("/debug/syncz")});
  EXPECT_EQ(peers(), (std::vector<std::string>{"node-a", "node-c"}));
  std::string status = agent_->request(R"({"v":1,"op":"xds"})");
  EXPECT_NE(status.find(reason), std::string::npos) << status;
  EXPECT_GE(agent_->stat("rdmesh.xds.node.update_rejected"), 1);

  // Fixed (node-d removed, node-e added): accepted again.
  ASSERT_TRUE(del("/v1/nodes/node-d"));
  ASSERT_TRUE(put("/v1/nodes/node-e", R"({"name":"node-e","addresses":["10.77.1.5"],)"
                                      R"("fabric":"tcp","session_address":"10.77.1.5:15008"})"));
  EXPECT_TRUE(waitFor(
      [&] {
        return peers() == std::vector<std::string>{"node-a", "node-c", "node-e"};
      },
      10s))
      << agent_->request(R"({"v":1,"op":"peers"})");
}

INSTANTIATE_TEST_SUITE_P(Streams, NodeXdsTest, ::testing::Values("sotw", "delta"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace rdmesh::it
