// rdmesh-cni in a real container runtime: containerd + runc + Debian's bridge/host-local plugins,
// containers started with `ctr run --cni --rootfs DIR` (root filesystems made from busybox and
// the host's redis binaries, no registry).
//
//  - CtrRunCni*: one node, a fake agent on the node socket: what the runtime hands rdmesh-cni
//    on ADD and DEL, and that a failing ADD leaves nothing behind.
//  - ContainerdMeshTest: two nodes, each its own rdmesh-node (eBPF capture attached at the node's
//    cgroup subtree), bridge and pod subnet; a redis server container on node B, a client
//    container on node A running plain redis-cli/redis-benchmark against the server's pod IP,
//    sidecars (uid 1337) in both pods: traffic provably crosses both sidecars, no packet filter
//    rule exists, uid 1337 and an excluded port go straight, and DEL leaves nothing behind.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "capture_fixture.h"
#include "containerd_harness.h"
#include "fake_node_agent.h"
#include "harness.h"
#include "rdmesh/capture/netns_cookie.h"

namespace rdmesh::it {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// "inet 10.88.1.2/24" in `ip -4 -o addr show eth0` output.
std::string podIpIn(const std::string& output) {
  std::smatch m;
  static const std::regex re(R"(inet (\d+\.\d+\.\d+\.\d+)/)");
  return std::regex_search(output, m, re) ? m[1].str() : "";
}

// The container prints its eth0 address and READY, then waits to be killed.
std::vector<std::string> idleCommand(const std::string& before = "") {
  return {"/bin/sh", "-c", before + "ip -4 -o addr show eth0; echo READY; exec sleep 100000"};
}

size_t leaseFiles(const std::string& ipam_dir) {
  size_t n = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(ipam_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && std::regex_match(name, std::regex(R"(\d+\.\d+\.\d+\.\d+)"))) ++n;
  }
  return n;
}

// ------------------------------------------------------------------------------------ one node

class CtrRunCniTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = containerdUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    node_ = std::make_unique<Netns>("cnin");
    rootfs_ = dir_.file("rootfs");
    buildRootfs(rootfs_, {});
    containerd_ = std::make_unique<Containerd>(dir_.path());
  }

  CniDirs chain(const std::string& socket) {
    ChainSpec spec;
    spec.bridge = "cni0";  // inside the node's own namespace
    spec.subnet = "10.88.7.0/24";
    spec.rdmesh_cni_fields = R"({"nodeSocket":")" + socket + R"(","logFile":")" +
                             dir_.file("rdmesh-cni.log") + R"(","excludeOutboundPorts":[5432]})";
    return makeCniDirs(dir_.file("cni"), spec, cniBinary());
  }

  ContainerSpec container(const std::string& id, const CniDirs& cni) {
    return {id, rootfs_, idleCommand(), {}, node_->name(), cni};
  }

  TempDir dir_{"rdctr"};
  std::unique_ptr<Netns> node_;
  std::string rootfs_;
  std::unique_ptr<Containerd> containerd_;
};

TEST_F(CtrRunCniTest, AddRegistersThePodAndDelUnregistersIt) {
  testing::FakeNodeAgent agent(dir_.file("node.sock"));
  CniDirs cni = chain(agent.path());
  Container c(*containerd_, container("web", cni), dir_.path());
  ASSERT_TRUE(c.waitOutput("READY")) << c.output();
  const std::string pod_ip = podIpIn(c.output());
  ASSERT_FALSE(pod_ip.empty()) << c.output();

  auto pods = agent.pods();
  ASSERT_EQ(pods.size(), 1U);
  ASSERT_EQ(pods.count(c.cniContainerId()), 1U);
  const Json& add = pods[c.cniContainerId()].request;
  EXPECT_EQ(add["ips"], Json::array({pod_ip}));
  EXPECT_EQ(add["interface"], "eth0");
  EXPECT_EQ(add["netns"], c.netnsPath());  // /proc/<task pid>/ns/net
  EXPECT_EQ(add["exclude_outbound_ports"], Json::array({5432}));
  // The agent resolved the container's own namespace, not the node's.
  auto container_cookie = capture::netnsCookie(c.netnsPath());
  auto node_cookie = capture::netnsCookie("/run/netns/" + node_->name());
  ASSERT_TRUE(container_cookie.isOk() && node_cookie.isOk());
  EXPECT_EQ(pods[c.cniContainerId()].netns_cookie, *container_cookie);
  EXPECT_NE(*container_cookie, *node_cookie);
  EXPECT_EQ(leaseFiles(cni.ipam_dir), 1U);

  // Killing the task makes ctr run DEL (rdmesh-cni first, then bridge/host-local).
  auto status = c.stop();
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(agent.pods().empty());
  EXPECT_EQ(agent.ops(), (std::vector<std::string>{"pod_add", "pod_del"}));
  EXPECT_EQ(leaseFiles(cni.ipam_dir), 0U);
  const std::string log = readFile(dir_.file("rdmesh-cni.log"));
  EXPECT_NE(log.find("ADD " + c.cniContainerId() + ": registered pod"), std::string::npos) << log;
  EXPECT_NE(log.find("DEL " + c.cniContainerId() + ": unregistered"), std::string::npos) << log;
}

TEST_F(CtrRunCniTest, AddFailsCleanlyWithoutAgent) {
  CniDirs cni = chain(dir_.file("no-agent.sock"));
  Container c(*containerd_, container("orphan", cni), dir_.path());
  // ctr gives up before starting the task: rdmesh-cni's error is what it reports.
  auto status = c.stop(60s);
  EXPECT_EQ(c.output().find("READY"), std::string::npos) << c.output();
  EXPECT_NE(c.output().find("node agent unavailable"), std::string::npos) << c.output();
  ASSERT_TRUE(status.has_value());
  EXPECT_FALSE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  // ctr ran DEL over the chain: the address went back to the pool. (ctr 1.6 itself leaves the
  // never-started task in CREATED state; the Containerd fixture removes it.)
  EXPECT_EQ(leaseFiles(cni.ipam_dir), 0U);
}

TEST_F(CtrRunCniTest, AgentRefusalIsReportedAndUndone) {
  testing::FakeNodeAgent agent(dir_.file("node.sock"));
  agent.misbehaveOnce("pod_add", testing::FakeNodeAgent::Misbehaviour::kRefuse);
  CniDirs cni = chain(agent.path());
  Container c(*containerd_, container("refused", cni), dir_.path());
  ASSERT_TRUE(c.stop(60s).has_value());
  EXPECT_NE(c.output().find("node agent refused pod_add"), std::string::npos) << c.output();
  EXPECT_TRUE(agent.pods().empty());
  EXPECT_EQ(leaseFiles(cni.ipam_dir), 0U);
}

// ------------------------------------------------------------------------------------ two nodes

constexpr const char* kNodeIp[] = {"10.77.1.1", "10.77.1.2"};
constexpr const char* kPodSubnet[] = {"10.88.1.0/24", "10.88.2.0/24"};
constexpr const char* kNodeName[] = {"node-a", "node-b"};
constexpr uint16_t kExcludedRedisPort = 6380;

// The parameter: "ebpf" (rdmesh-node attaches its capture programs) or "preload" (rdmesh-node
// --bpf false; the client's apps run with LD_PRELOAD=librdmesh-preload.so, copied into the rootfs).
class ContainerdMeshTest : public ::testing::TestWithParam<std::string> {
 protected:
  bool bpf() const { return GetParam() == "ebpf"; }

  void SetUp() override {
    if (auto why = containerdUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    cgroup_root_ = cgroupV2Root();
    if (cgroup_root_.empty()) GTEST_SKIP() << "no cgroup v2 mount";
    for (const char* tool : {"redis-server", "redis-cli", "redis-benchmark", "bpftool", "setpriv"})
      if (findExecutable(tool).empty()) GTEST_SKIP() << tool << " not installed";
    raiseFdLimit();

    // Nodes: two namespaces on one veth link, each routing the other's pod subnet.
    for (int i = 0; i < 2; ++i) nodes_.push_back(std::make_unique<Netns>(i ? "cnb" : "cna"));
    linkVeth(*nodes_[0], std::string(kNodeIp[0]) + "/24", *nodes_[1],
             std::string(kNodeIp[1]) + "/24");
    for (int i = 0; i < 2; ++i) {
      nodes_[i]->ip({"route", "add", kPodSubnet[1 - i], "via", kNodeIp[1 - i]});
      ASSERT_TRUE(runCommand({"sysctl", "-w", "net.ipv4.ip_forward=1"}, dir_.file("sysctl.log"),
                             nodes_[i]->name())
                      .ok());
    }
    tag_ = uniqueName("rdmc");  // the capture suites' sweeper knows this prefix
    containerd_ = std::make_unique<Containerd>(dir_.path());
    for (int i = 0; i < 2; ++i) {
      ctr_ns_[i] = tag_ + (i ? "b" : "a");
      node_cgroups_.push_back(std::make_unique<TestCgroup>(cgroup_root_ + "/" + ctr_ns_[i]));
      agents_.push_back(
          std::make_unique<NodeAgent>(kNodeName[i], dir_.path(), node_cgroups_.back()->path(),
                                      "/sys/fs/bpf/" + tag_ + "-" + kNodeName[i], bpf()));
      agents_.back()->start();
      ChainSpec chain;
      chain.bridge = "cni0";  // inside the node's own namespace
      chain.subnet = kPodSubnet[i];
      chain.rdmesh_cni_fields = R"({"nodeSocket":")" + agents_[i]->socketPath() +
                                R"(","logFile":")" + dir_.file("rdmesh-cni.log") +
                                R"(","excludeOutboundPorts":[)" +
                                std::to_string(kExcludedRedisPort) + "]}";
      cni_[i] = makeCniDirs(dir_.file(std::string("cni-") + kNodeName[i]), chain, cniBinary());
      std::vector<std::string> executables = {"redis-server", "redis-cli", "redis-benchmark"};
      if (!bpf()) executables.push_back(preloadLibrary());
      buildRootfs(dir_.file(std::string("rootfs-") + kNodeName[i]), executables);
    }
    pins_before_ = pins(0);

    // Node B: redis on 6379 (reached through the mesh) and 6380 (an excluded port).
    const std::string servers =
        "redis-server --port 6379 --bind 0.0.0.0 --save '' --appendonly no --protected-mode no "
        "--daemonize yes --dir /tmp; redis-server --port 6380 --bind 0.0.0.0 --save '' "
        "--appendonly no --protected-mode no --daemonize yes --dir /tmp; ";
    server_ = start(1, "redis", idleCommand(servers));
    client_ = start(0, "client", idleCommand());
    server_ip_ = podIpIn(server_->output());
    client_ip_ = podIpIn(client_->output());
    ASSERT_FALSE(server_ip_.empty() || client_ip_.empty());
    for (int i = 0; i < 2; ++i) {
      Container& c = i ? *server_ : *client_;
      pod_ns_[i] = std::make_unique<AttachedNetns>("cnp", c.taskPid());
    }
    ASSERT_TRUE(waitForTcp(pod_ns_[1]->name(), "127.0.0.1", kRedisPort, 20s));

    // Sidecars in the pods (their cgroup and netns, uid 1337): A captures and sends redis
    // traffic for B's pod IP to node B; B delivers it to its local redis.
    for (int i = 0; i < 2; ++i) {
      const std::string own = i ? server_ip_ : client_ip_;
      const std::string other = i ? client_ip_ : server_ip_;
      SidecarSpec s;
      s.node = kNodeName[i];
      s.identity = std::string("spiffe://cluster.local/ns/default/sa/") + kNodeName[i];
      s.backend = "tcp";
      s.listen = own + ":15008";
      s.peers = {{kNodeName[1 - i], other + ":15008"}};
      s.transport_options = {{"keepalive_interval_ms", "1000"},
                             {"keepalive_timeout_ms", "5000"},
                             {"connect_timeout_ms", "2000"}};
      s.drain_timeout_ms = 1000;
      s.capture("capture");
      if (i == 0) {
        s.cluster("redis", {{kNodeName[1], server_ip_ + ":" + std::to_string(kRedisPort)}});
      } else {
        s.inbound("in-redis", kRedisPort, "127.0.0.1:" + std::to_string(kRedisPort));
      }
      Container& c = i ? *server_ : *client_;
      const std::string cgroup = c.cgroupDir(cgroup_root_);
      const std::string ns = pod_ns_[i]->name();
      sidecars_.push_back(std::make_unique<Sidecar>(s, ns, dir_.path()));
      sidecars_.back()->setLauncher([cgroup, ns](std::vector<std::string> argv) {
        return inPod(cgroup, ns, std::move(argv), kSidecarUid);
      });
    }
    for (int i = 1; i >= 0; --i) {
      sidecars_[i]->start();
      ASSERT_TRUE(sidecars_[i]->waitReady(30s));
    }
    ASSERT_TRUE(sidecars_[0]->waitSessionState("node-b", "established", 30s));
  }

  void TearDown() override {
    sidecars_.clear();
    for (auto& ns : pod_ns_) ns.reset();
    client_.reset();
    server_.reset();
    agents_.clear();
    containerd_.reset();
    node_cgroups_.clear();
  }

  std::unique_ptr<Container> start(int node, const std::string& id, std::vector<std::string> argv) {
    ContainerSpec spec{id,
                       dir_.file(std::string("rootfs-") + kNodeName[node]),
                       std::move(argv),
                       {},
                       nodes_[node]->name(),
                       cni_[node],
                       ctr_ns_[node]};
    auto c = std::make_unique<Container>(*containerd_, spec, dir_.path());
    EXPECT_TRUE(c->waitOutput("READY")) << c->output();
    return c;
  }

  // A command in the client pod (`ctr task exec`: its cgroup and netns), optionally as uid 1337.
  // A client app in the client pod. With the shim, the pod's environment carries LD_PRELOAD and
  // the excluded ports (what the injector would set; rdmesh-cni's list feeds only eBPF).
  CommandResult inClient(std::vector<std::string> argv, bool as_sidecar_uid = false) {
    argv[0] = "/usr/bin/" + argv[0];  // the rootfs keeps host paths; exec has no PATH
    if (!bpf()) {
      argv.insert(argv.begin(),
                  {"/bin/env", "LD_PRELOAD=" + preloadLibrary(),
                   "RDMESH_EXCLUDE_OUTBOUND_PORTS=" + std::to_string(kExcludedRedisPort)});
    }
    return client_->exec(argv, 120s, as_sidecar_uid ? std::to_string(kSidecarUid) : "");
  }
  int64_t captured() {
    return bpf() ? agents_[0]->stat("rdmesh.node.capture.captured")
                 : sidecars_[0]->statInt("rdmesh.listener.capture.capture_to_endpoint");
  }

  std::set<std::string> pins(int node) {
    std::set<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::recursive_directory_iterator(agents_[node]->pinDir(), ec))
      out.insert(e.path().string());
    return out;
  }

  Json podList(int node) {
    return Json::parse(agents_[node]->request(R"({"v":1,"op":"pod_list"})"), nullptr, false);
  }

  int64_t sessionBytes(int i, const char* which) {
    return sidecars_[i]->statInt(std::string("rdmesh.session.") + kNodeName[1 - i] + "." + which,
                                 -1);
  }

  TempDir dir_{"rdctrm"};
  std::string cgroup_root_;
  std::string tag_;
  std::vector<std::unique_ptr<Netns>> nodes_;
  std::string ctr_ns_[2];
  CniDirs cni_[2];
  std::unique_ptr<Containerd> containerd_;
  std::vector<std::unique_ptr<TestCgroup>> node_cgroups_;
  std::vector<std::unique_ptr<NodeAgent>> agents_;
  std::set<std::string> pins_before_;
  std::unique_ptr<Container> server_;
  std::unique_ptr<Container> client_;
  std::string server_ip_;
  std::string client_ip_;
  std::unique_ptr<AttachedNetns> pod_ns_[2];
  std::vector<std::unique_ptr<Sidecar>> sidecars_;
};

TEST_P(ContainerdMeshTest, RedisClientReachesServerPodIpThroughBothSidecars) {
  // rdmesh-cni registered each container with its own node's agent.
  for (int i = 0; i < 2; ++i) {
    Json list = podList(i);
    ASSERT_EQ(list["pods"].size(), 1U) << list.dump();
    EXPECT_EQ(list["pods"][0]["container_id"], ctr_ns_[i] + "-" + (i ? "redis" : "client"));
    EXPECT_EQ(list["pods"][0]["ips"], Json::array({i ? server_ip_ : client_ip_}));
  }
  const std::string port = std::to_string(kRedisPort);
  CommandResult set = inClient({"redis-cli", "-h", server_ip_, "-p", port, "SET", "cni", "works"});
  ASSERT_TRUE(set.ok()) << set.describe();
  EXPECT_EQ(commandOutput(set), "OK\n");
  // The server saw the connection come from sidecar B (loopback), not from the client pod.
  CommandResult info = inClient({"redis-cli", "-h", server_ip_, "-p", port, "CLIENT", "INFO"});
  ASSERT_TRUE(info.ok()) << info.describe();
  EXPECT_NE(info.output.find("addr=127.0.0.1:"), std::string::npos) << info.output;

  const int64_t sent_before = sessionBytes(0, "bytes_sent");
  const int64_t received_before = sessionBytes(1, "bytes_received");
  CommandResult bench = inClient({"redis-benchmark", "-h", server_ip_, "-p", port, "-n", "2000",
                                  "-c", "4", "-t", "set,get", "-q"});
  ASSERT_TRUE(bench.ok()) << bench.describe();
  EXPECT_NE(bench.output.find("GET"), std::string::npos) << bench.output;
  // 4000 requests of at least ~30 bytes crossed the tunnel, counted by both sidecars.
  EXPECT_GT(sessionBytes(0, "bytes_sent") - sent_before, 4000 * 30);
  EXPECT_GT(sessionBytes(1, "bytes_received") - received_before, 4000 * 30);
  EXPECT_GE(sidecars_[0]->statInt("rdmesh.listener.capture.capture_to_endpoint"), 6);
  EXPECT_GE(sidecars_[1]->statInt("rdmesh.listener.in-redis.downstream_cx_total"), 6);
  EXPECT_GE(captured(), 6);

  // No packet filter rule of rdmesh anywhere: host, nodes, pods.
  std::vector<std::string> namespaces = {"", nodes_[0]->name(), nodes_[1]->name(),
                                         pod_ns_[0]->name(), pod_ns_[1]->name()};
  for (const auto& ns : namespaces) {
    CommandResult nft = runCommand({"nft", "list", "ruleset"}, dir_.file("nft.log"), ns);
    EXPECT_EQ(nft.output.find("rdmesh"), std::string::npos) << nft.output;
    EXPECT_EQ(nft.output.find("redirect"), std::string::npos) << nft.output;
    CommandResult ipt = runCommand({"iptables-save"}, dir_.file("ipt.log"), ns);
    EXPECT_EQ(ipt.output.find("rdmesh"), std::string::npos) << ipt.output;
    EXPECT_EQ(ipt.output.find("REDIRECT"), std::string::npos) << ipt.output;
  }
}

TEST_P(ContainerdMeshTest, SidecarUidAndExcludedPortGoStraight) {
  const int64_t captured_before = captured();
  const int64_t inbound = sidecars_[1]->statInt("rdmesh.listener.in-redis.downstream_cx_total");
  // uid 1337: the server sees the client pod's own address.
  CommandResult as_sidecar = inClient(
      {"redis-cli", "-h", server_ip_, "-p", std::to_string(kRedisPort), "CLIENT", "INFO"}, true);
  ASSERT_TRUE(as_sidecar.ok()) << as_sidecar.describe();
  EXPECT_NE(as_sidecar.output.find("addr=" + client_ip_ + ":"), std::string::npos)
      << as_sidecar.output;
  // The excluded port (rdmesh-cni's excludeOutboundPorts), any uid.
  CommandResult excluded = inClient(
      {"redis-cli", "-h", server_ip_, "-p", std::to_string(kExcludedRedisPort), "CLIENT", "INFO"});
  ASSERT_TRUE(excluded.ok()) << excluded.describe();
  EXPECT_NE(excluded.output.find("addr=" + client_ip_ + ":"), std::string::npos) << excluded.output;

  EXPECT_EQ(captured(), captured_before);
  if (bpf()) {
    EXPECT_GE(agents_[0]->stat("rdmesh.node.capture.skipped_port"), 1);
  }
  EXPECT_EQ(sidecars_[1]->statInt("rdmesh.listener.in-redis.downstream_cx_total"), inbound);
}

TEST_P(ContainerdMeshTest, DelLeavesNoMapEntryAndNoPin) {
  if (bpf()) {
    ASSERT_NE(agents_[0]->dumpMap("rdmesh_pods"), "[]");
    ASSERT_NE(agents_[0]->dumpMap("rdmesh_excl"), "[]");
  }
  sidecars_[0].reset();
  pod_ns_[0].reset();
  ASSERT_TRUE(client_->stop().has_value());  // ctr runs DEL through the chain

  EXPECT_TRUE(podList(0)["pods"].empty()) << podList(0).dump();
  if (bpf()) {
    for (const char* map : {"rdmesh_pods", "rdmesh_excl"})
      EXPECT_EQ(agents_[0]->dumpMap(map), "[]") << map;
    EXPECT_EQ(agents_[0]->stat("rdmesh.node.capture.records"), 0);
  }
  EXPECT_EQ(pins(0), pins_before_);          // nothing pinned per pod
  EXPECT_EQ(podList(1)["pods"].size(), 1U);  // the other node's pod is untouched
  EXPECT_EQ(leaseFiles(cni_[0].ipam_dir), 0U);
}

INSTANTIATE_TEST_SUITE_P(Capture, ContainerdMeshTest, ::testing::Values("ebpf", "preload"),
                         BackendName());

}  // namespace
}  // namespace rdmesh::it
