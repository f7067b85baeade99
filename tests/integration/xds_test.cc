// Sidecars configured live from a real rdmesh-xds (docs/xds.md): two node namespaces, rdmesh-xds
// in the first, each sidecar bootstrapped from an xds: section. Workloads come and go through
// the registration API while traffic flows; a config the proxy refuses is NACKed and changes
// nothing; rdmesh-xds killed and restarted while traffic flows.
#include <gtest/gtest.h>

#include <csignal>
#include <map>
#include <set>

#include "harness.h"

namespace rdmesh::it {
namespace {

constexpr const char* kToken = "it-registration-token";
constexpr uint16_t kXdsPort = 15010;
constexpr uint16_t kCartListenerPort = 18080;
constexpr const char* kCartCluster = "outbound|80||cart.shop";

// cart-1 runs on node-a from the start (static registry); cart-0 (node-b) is registered later.
// shop/loop targets port 18080: a workload of it on node-a would be the sidecar's own listener.
constexpr const char* kRegistry = R"(trust_domain: cluster.local
nodes:
  - {name: node-a, addresses: [10.77.1.1], fabric: tcp, session_address: "10.77.1.1:15008"}
  - {name: node-b, addresses: [10.77.1.2], fabric: tcp, session_address: "10.77.1.2:15008"}
workloads:
  - {namespace: shop, pod: web-0, ip: [10.77.1.1], node: node-a, service_account: web,
     ports: [8080], labels: {app: web}}
  - {namespace: shop, pod: cart-1, ip: [10.77.1.1], node: node-a, service_account: cart,
     ports: [9090], labels: {app: cart}}
services:
  - name: shop/cart
    cluster_ips: [10.96.0.20]
    ports: [{name: http, port: 80, target_port: 9090, protocol: TCP}]
    selector: {app: cart}
  - name: shop/loop
    cluster_ips: [10.96.0.21]
    ports: [{port: 81, target_port: 18080, protocol: TCP}]
    selector: {app: loop}
)";

std::string workloadJson(const std::string& pod, const std::string& node, const std::string& ip,
                         uint16_t port, const std::string& app) {
  return "{\"name\":\"shop/" + pod + "\",\"namespace\":\"shop\",\"pod\":\"" + pod +
         "\",\"ip\":[\"" + ip + "\"],\"node\":\"" + node +
         "\",\"identity\":\"spiffe://cluster.local/ns/shop/sa/" + app +
         "\",\"service_account\":\"" + app + "\",\"ports\":[" + std::to_string(port) +
         "],\"labels\":{\"app\":\"" + app + "\"}}";
}

// Every case runs on both stream variants: state of the world ("sotw") and incremental ("delta").
class XdsTest : public ::testing::TestWithParam<std::string> {
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

    cart0_ = std::make_unique<ThreadedServer>(mesh_->ns("node-b"), "127.0.0.1", 9090,
                                              taggedEcho("cart-0"));
    cart1_ = std::make_unique<ThreadedServer>(mesh_->ns("node-a"), "10.77.1.1", 9090,
                                              taggedEcho("cart-1"));

    // node-a: web-0's sidecar. Its outbound listener is static; the cluster behind it, the
    // peers and everything else come from xDS.
    SidecarSpec a = mesh_->baseSpec("node-a");
    a.peers.clear();
    a.outbound("cart", "127.0.0.1:" + std::to_string(kCartListenerPort), kCartCluster);
    a.extra_yaml = xdsSection("127.0.0.1", "shop/web-0");
    // node-b: cart-0's sidecar, entirely from xDS (its inbound listener arrives with cart-0).
    SidecarSpec b = mesh_->baseSpec("node-b");
    b.peers.clear();
    b.extra_yaml = xdsSection("10.77.1.1", "shop/cart-0");
    for (SidecarSpec* spec : {&b, &a}) {
      Sidecar& sidecar = mesh_->add(*spec);
      sidecar.start();
      ASSERT_TRUE(sidecar.waitReady()) << spec->node << " not ready";
    }
    ASSERT_TRUE(waitConnected("node-a"));
    ASSERT_TRUE(waitConnected("node-b"));
  }

  void TearDown() override {
    if (xds_) xds_->terminate();
  }

  static ThreadedServer::Handler taggedEcho(std::string tag) {
    return [tag = std::move(tag)](int fd) {
      if (!sendAll(fd, tag + "\n")) return;
      char buffer[512];
      for (;;) {
        ssize_t n = ::read(fd, buffer, sizeof(buffer));
        if (n <= 0 || !sendAll(fd, buffer, static_cast<size_t>(n))) return;
      }
    };
  }

  std::string xdsSection(const std::string& ip, const std::string& workload) {
    return "xds:\n  servers: [\"" + ip + ":" + std::to_string(kXdsPort) +
           "\"]\n  plaintext: true\n  delta: " + (GetParam() == "delta" ? "true" : "false") +
           "\n  workload: " + workload + "\n  connect_timeout_ms: 1000\n";
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
    ASSERT_TRUE(waitFor([&] { return curl({"http://127.0.0.1:15010/ready"}) == "ready\n"; }, 10s))
        << xds_->output();
  }

  // curl over h2c inside node-a's namespace; the body, or "" on failure.
  std::string curl(std::vector<std::string> args) {
    std::vector<std::string> argv = {"curl", "-sf", "--http2-prior-knowledge", "--max-time", "5"};
    argv.insert(argv.end(), args.begin(), args.end());
    CommandResult r = runCommand(argv, mesh_->logPath("curl"), mesh_->ns("node-a"), 10s);
    if (!r.ok()) return "";
    // The log starts with the command line ("### curl: ..."); the body follows.
    size_t body = r.output.rfind("### ", 0) == 0 ? r.output.find('\n') + 1 : 0;
    return r.output.substr(body);
  }

  bool registerWorkload(const std::string& pod, const std::string& json) {
    std::string body_file = mesh_->dir().file(pod + ".json");
    writeFile(body_file, json);
    return !curl({"-X", "PUT", "-H", std::string("authorization: Bearer ") + kToken,
                  "--data-binary", "@" + body_file,
                  "http://127.0.0.1:15010/v1/workloads/shop/" + pod})
                .empty();
  }

  bool deleteWorkload(const std::string& pod) {
    return !curl({"-X", "DELETE", "-H", std::string("authorization: Bearer ") + kToken,
                  "http://127.0.0.1:15010/v1/workloads/shop/" + pod})
                .empty();
  }

  bool waitConnected(const std::string& node) {
    return mesh_->sidecar(node).waitStat("rdmesh.xds.connected", "1", 15s);
  }

  // One connection through node-a's cart listener: the backend's tag, "" if refused or reset.
  struct Connection {
    UniqueFd fd;
    std::string tag;
  };
  Connection connectCart() {
    Connection c;
    c.fd = tcpConnect(mesh_->ns("node-a"), "127.0.0.1", kCartListenerPort, 2s);
    if (!c.fd) return c;
    ReadResult r = readExactly(c.fd.get(), 7, 3s);
    if (r.data.size() == 7 && r.data.back() == '\n') c.tag = r.data.substr(0, 6);
    return c;
  }
  static bool echoes(const Connection& c, const std::string& text) {
    return sendAll(c.fd.get(), text) && readExactly(c.fd.get(), text.size(), 3s).data == text;
  }
  // The set of backends `n` new connections reach.
  std::set<std::string> tagsOf(int n) {
    std::set<std::string> tags;
    for (int i = 0; i < n; ++i) tags.insert(connectCart().tag);
    return tags;
  }

  std::unique_ptr<Mesh> mesh_;
  std::unique_ptr<Process> xds_;
  int xds_starts_ = 0;
  std::unique_ptr<ThreadedServer> cart0_;
  std::unique_ptr<ThreadedServer> cart1_;
};

TEST_P(XdsTest, WorkloadsComeAndGoLiveBrokenConfigIsNackedXdsOutageIsSurvived) {
  Sidecar& a = mesh_->sidecar("node-a");
  // The cluster came from xDS: traffic reaches cart-1 (same node) from the start.
  ASSERT_TRUE(waitFor([&] { return connectCart().tag == "cart-1"; }, 15s));

  // Register cart-0 on node-b: node-a learns the endpoint and the node (a new peer session),
  // node-b learns its inbound listener. No restart anywhere.
  ASSERT_TRUE(
      registerWorkload("cart-0", workloadJson("cart-0", "node-b", "10.77.1.2", 9090, "cart")));
  ASSERT_TRUE(waitFor([&] { return connectCart().tag == "cart-0"; }, 20s))
      << "traffic never reached the new workload";
  EXPECT_TRUE(mesh_->waitEstablished("node-a", "node-b", 10s));
  EXPECT_EQ(tagsOf(8), (std::set<std::string>{"cart-0", "cart-1"}));  // round robin over both

  Connection held;
  ASSERT_TRUE(waitFor(
      [&] {
        held = connectCart();
        return held.tag == "cart-0";
      },
      10s));

  // Remove cart-0: new connections all go to cart-1; the one already open to cart-0 lives on.
  ASSERT_TRUE(deleteWorkload("cart-0"));
  ASSERT_TRUE(waitFor([&] { return tagsOf(6) == std::set<std::string>{"cart-1"}; }, 15s));
  EXPECT_TRUE(echoes(held, "established streams survive a config change"));

  // A workload whose endpoint would be node-a's own listener: node-a refuses the Cluster update
  // (NACK with the reason, visible in its stats and in the server's /debug/syncz) and keeps the
  // last good clusters; traffic is unchanged.
  uint64_t rejected_before = a.statInt("rdmesh.xds.cluster.update_rejected", 0);
  ASSERT_TRUE(registerWorkload(
      "loop-0", workloadJson("loop-0", "node-a", "127.0.0.1", kCartListenerPort, "loop")));
  ASSERT_TRUE(waitFor(
      [&] { return a.statInt("rdmesh.xds.cluster.update_rejected", 0) > rejected_before; }, 10s));
  EXPECT_TRUE(waitFor(
      [&] {
        return curl({"http://127.0.0.1:15010/debug/syncz"}).find("routing loop") !=
               std::string::npos;
      },
      5s))
      << curl({"http://127.0.0.1:15010/debug/syncz"});
  HttpResponse dump = httpGet(a.ns(), a.adminUrl("/config_dump"));
  EXPECT_NE(dump.body.find("routing loop"), std::string::npos) << dump.body;
  EXPECT_EQ(tagsOf(4), std::set<std::string>{"cart-1"});
  EXPECT_TRUE(echoes(held, "still"));
  // Removing it brings the cluster content back to the version node-a has in force (versions
  // are content hashes), so there is nothing new to send; later changes are accepted again
  // (cart-0's re-registration below).
  ASSERT_TRUE(deleteWorkload("loop-0"));

  // Kill rdmesh-xds: the sidecars notice, keep their config, and traffic keeps flowing.
  xds_->kill();
  ASSERT_TRUE(a.waitStat("rdmesh.xds.connected", "0", 10s));
  EXPECT_EQ(tagsOf(4), std::set<std::string>{"cart-1"});
  EXPECT_TRUE(echoes(held, "the control plane is down"));

  // Restart it: both sidecars reconnect and resync (the server sees them ACK its versions).
  int64_t streams_before = a.statInt("rdmesh.xds.streams_opened", 0);
  startXds();
  ASSERT_TRUE(waitConnected("node-a"));
  ASSERT_TRUE(waitConnected("node-b"));
  EXPECT_GT(a.statInt("rdmesh.xds.streams_opened", 0), streams_before);
  EXPECT_TRUE(waitFor(
      [&] {
        std::string syncz = curl({"http://127.0.0.1:15010/debug/syncz"});
        return syncz.find("sidecar~shop/web-0~node-a") != std::string::npos &&
               syncz.find("sidecar~shop/cart-0~node-b") != std::string::npos;
      },
      10s));
  // And it pushes again: cart-0 registered on the new server reaches node-a.
  ASSERT_TRUE(
      registerWorkload("cart-0", workloadJson("cart-0", "node-b", "10.77.1.2", 9090, "cart")));
  EXPECT_TRUE(waitFor([&] { return connectCart().tag == "cart-0"; }, 20s));
  EXPECT_TRUE(echoes(held, "after the restart"));
}

INSTANTIATE_TEST_SUITE_P(Streams, XdsTest,
                         ::testing::Values(std::string("sotw"), std::string("delta")),
                         BackendName());

// TLS on the xDS port: the sidecar verifies rdmesh-xds against its CA bundle and the expected
// name; a wrong name or a foreign CA never gets a config (and says why in /config_dump).
class XdsTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = netnsUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    if (xdsBinary().empty() || findExecutable(xdsBinary()).empty()) {
      GTEST_SKIP() << "rdmesh-xds not built";
    }
    if (findExecutable("openssl").empty()) GTEST_SKIP() << "openssl CLI not installed";
    mesh_ = std::make_unique<Mesh>("tcp", std::vector<std::string>{"node-a"});
    makeCa("ca");
    makeCa("other-ca");
    writeFile(dir("san.cnf"), "subjectAltName=DNS:rdmesh-xds.test,IP:127.0.0.1\n");
    openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
             dir("server.key"), "-out", dir("server.csr"), "-subj", "/CN=rdmesh-xds"});
    openssl({"x509", "-req", "-in", dir("server.csr"), "-CA", dir("ca.pem"), "-CAkey",
             dir("ca.key"), "-CAcreateserial", "-days", "1", "-extfile", dir("san.cnf"), "-out",
             dir("server.pem")});
    writeFile(dir("registry.yaml"), kRegistry);
    xds_ = std::make_unique<Process>(
        "rdmesh-xds",
        std::vector<std::string>{xdsBinary(), "--listen-ip", "127.0.0.1", "--port", "15012",
                                 "--tls-cert", dir("server.pem"), "--tls-key", dir("server.key"),
                                 "--registry-file", dir("registry.yaml")},
        mesh_->logPath("rdmesh-xds"), mesh_->ns("node-a"));
    ASSERT_TRUE(waitForTcp(mesh_->ns("node-a"), "127.0.0.1", 15012, 10s)) << xds_->output();
  }

  std::string dir(const std::string& name) { return mesh_->dir().file(name); }

  void openssl(std::vector<std::string> args) {
    args.insert(args.begin(), "openssl");
    CommandResult r = runCommand(args, mesh_->logPath("openssl"), "", 30s);
    ASSERT_TRUE(r.ok()) << r.describe() << r.output;
  }

  void makeCa(const std::string& name) {
    openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", dir(name + ".key"), "-out", dir(name + ".pem"), "-days", "1", "-subj",
             "/CN=" + name});
  }

  // A sidecar of its own (admin and session ports by index) trusting `ca` and expecting `name`.
  std::unique_ptr<Process> startSidecar(int index, const std::string& ca, const std::string& name) {
    std::string config = dir("tls-" + std::to_string(index) + ".yaml");
    writeFile(
        config,
        "node: {name: node-a}\nadmin: {address: \"127.0.0.1:" + std::to_string(15100 + index) +
            "\"}\ntransport: {backend: tcp, listen: \"127.0.0.1:" + std::to_string(15200 + index) +
            "\"}\nxds:\n  servers: [\"127.0.0.1:15012\"]\n  tls: {ca_file: " + dir(ca + ".pem") +
            ", server_name: " + name + "}\n  workload: shop/web-0\n");
    return std::make_unique<Process>("rdmesh-proxy-" + std::to_string(index),
                                     std::vector<std::string>{proxyBinary(), "-c", config},
                                     mesh_->logPath("tls-proxy-" + std::to_string(index)),
                                     mesh_->ns("node-a"));
  }

  std::string admin(int index, const std::string& path) {
    return httpGet(mesh_->ns("node-a"), "http://127.0.0.1:" + std::to_string(15100 + index) + path)
        .body;
  }

  std::unique_ptr<Mesh> mesh_;
  std::unique_ptr<Process> xds_;
};

TEST_F(XdsTlsTest, VerifiesTheServerCertificateAndName) {
  auto good = startSidecar(0, "ca", "rdmesh-xds.test");
  auto wrong_name = startSidecar(1, "ca", "rdmesh-xds.elsewhere");
  auto foreign_ca = startSidecar(2, "other-ca", "rdmesh-xds.test");

  EXPECT_TRUE(waitFor(
      [&] { return statInt(admin(0, "/stats"), "rdmesh.xds.cluster.update_success", 0) >= 1; },
      15s))
      << good->output();
  EXPECT_EQ(statInt(admin(0, "/stats"), "rdmesh.xds.connected"), 1);

  const std::map<int, std::string> expected_error = {
      {1, "TLS: certificate: hostname mismatch"},
      {2, "TLS: certificate: unable to get local issuer certificate"}};
  for (int index : {1, 2}) {
    EXPECT_TRUE(waitFor(
        [&] { return statInt(admin(index, "/stats"), "rdmesh.xds.connect_attempts", 0) >= 2; },
        15s));
    std::string stats = admin(index, "/stats");
    EXPECT_EQ(statInt(stats, "rdmesh.xds.streams_opened"), 0) << stats;
    EXPECT_EQ(statInt(stats, "rdmesh.xds.cluster.update_attempt"), 0);
    std::string dump = admin(index, "/config_dump");
    EXPECT_NE(dump.find(expected_error.at(index)), std::string::npos) << dump;
  }
  for (auto* p : {good.get(), wrong_name.get(), foreign_ca.get()}) {
    int status = p->terminate();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << describeWaitStatus(status);
  }
}

}  // namespace
}  // namespace rdmesh::it
