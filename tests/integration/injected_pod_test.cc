// An injected pod in a real container runtime (issue 7): rdmesh-xds (webhook, CA, xDS over TLS)
// and rdmesh-node (eBPF capture) on one emulated node (a network namespace with a CNI bridge),
// containers started with `ctr run` (containerd + runc + Debian's CNI plugins + rdmesh-cni).
//
// Two pods of namespace "shop" are sent through the webhook as the API server would send them:
// a redis server (label app=redis, port 6379) and a client. Each pod is then run as the kubelet
// would run the patched spec: the app container first (CNI ADD wires capture), then the
// injected rdmesh-proxy container in the pod's network namespace, with exactly the command, env
// (downward API values filled in), user (runAsUser 1337) and node socket mount of the patch. The
// test then shows that
//  - the sidecar comes up: the patch's readiness probe (httpGet pod IP:15021/ready) answers 200,
//    its bootstrap found xDS over TLS with the inline CA and its workload name from the env;
//  - the app's traffic goes through it: plain redis-cli in the client pod, to the service's
//    cluster IP, is captured by eBPF, routed by the client's sidecar over the node agent's shm
//    session to the server's sidecar, and delivered to redis over loopback.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <regex>

#include "base64.h"
#include "capture_fixture.h"
#include "containerd_harness.h"
#include "harness.h"

namespace rdmesh::it {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kNode = "node-a";
constexpr const char* kSubnet = "10.89.1.0/24";
constexpr const char* kGateway = "10.89.1.1";  // the bridge, in the node namespace
constexpr const char* kServiceIp = "10.96.0.30";
constexpr const char* kServiceName = "rdmesh-xds.rdmesh-system.svc";
constexpr const char* kToken = "injected-pod-registration-token";
constexpr uint16_t kXdsTls = 15012;
constexpr uint16_t kXdsPlain = 15010;
constexpr uint16_t kWebhook = 15017;

Json podSpec(const std::string& name, const std::string& app, const std::string& sa,
             std::optional<int> port) {
  Json container = {{"name", app}, {"image", "docker.io/library/redis:7"}};
  if (port) container["ports"] = {{{"containerPort", *port}, {"protocol", "TCP"}}};
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}, {"namespace", "shop"}, {"labels", {{"app", app}}}}},
          {"spec", {{"serviceAccountName", sa}, {"containers", {container}}}}};
}

Json admissionReview(const Json& pod) {
  return {{"apiVersion", "admission.k8s.io/v1"},
          {"kind", "AdmissionReview"},
          {"request",
           {{"uid", "uid-" + pod["metadata"]["name"].get<std::string>()},
            {"kind", {{"group", ""}, {"version", "v1"}, {"kind", "Pod"}}},
            {"resource", {{"group", ""}, {"version", "v1"}, {"resource", "pods"}}},
            {"namespace", "shop"},
            {"operation", "CREATE"},
            {"object", pod}}}};
}

// "inet 10.89.1.2/24" in `ip -4 -o addr show eth0` output.
std::string podIpIn(const std::string& output) {
  std::smatch m;
  static const std::regex re(R"(inet (\d+\.\d+\.\d+\.\d+)/)");
  return std::regex_search(output, m, re) ? m[1].str() : "";
}

class InjectedPodTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = containerdUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    cgroup_root_ = cgroupV2Root();
    if (cgroup_root_.empty()) GTEST_SKIP() << "no cgroup v2 mount";
    for (const char* tool : {"redis-server", "redis-cli", "bpftool", "setpriv", "openssl", "curl"})
      if (findExecutable(tool).empty()) GTEST_SKIP() << tool << " not installed";
    raiseFdLimit();

    node_ = std::make_unique<Netns>("cwi");
    tag_ = uniqueName("rdmc");  // the capture suites' sweeper knows this prefix
    containerd_ = std::make_unique<Containerd>(dir_.path());
    node_cgroup_ = std::make_unique<TestCgroup>(cgroup_root_ + "/" + tag_);
    agent_ = std::make_unique<NodeAgent>(kNode, dir_.path(), node_cgroup_->path(),
                                         "/sys/fs/bpf/" + tag_ + "-" + kNode, true);
    // Mesh mode needs the agent's session switch (fabric); no peers on a one-node cluster.
    writeFile(dir_.file("node.yaml"), std::string("node: {name: ") + kNode +
                                          "}\nfabric:\n  listen: \"127.0.0.1:25008\"\n"
                                          "  rdma: false\n");
    agent_->setLaunch("", {"-c", dir_.file("node.yaml")});
    agent_->start();
    ChainSpec chain;
    chain.bridge = "cni0";
    chain.subnet = kSubnet;
    chain.rdmesh_cni_fields = R"({"nodeSocket":")" + agent_->socketPath() + R"(","logFile":")" +
                              dir_.file("rdmesh-cni.log") + R"("})";
    cni_ = makeCniDirs(dir_.file("cni"), chain, cniBinary());
    buildRootfs(dir_.file("rootfs"),
                {"redis-server", "redis-cli", proxyBinary(), findExecutable("setpriv")});

    startControlPlane();
  }

  void TearDown() override {
    pods_.clear();
    containerd_.reset();
    xds_.reset();
    agent_.reset();
    node_cgroup_.reset();
  }

  // rdmesh-xds in the node namespace: xDS over TLS (certificate from its CA) for the sidecars,
  // plaintext for the test's registrations, and the webhook.
  void startControlPlane() {
    makeCaFiles();
    writeFile(dir_.file("token"), std::string(kToken) + "\n");
    writeFile(dir_.file("registry.yaml"),
              std::string("nodes:\n  - {name: ") + kNode + ", addresses: [" + kGateway +
                  "], fabric: tcp, session_address: \"" + kGateway +
                  ":15008\"}\nservices:\n  - {name: shop/redis, cluster_ips: [" + kServiceIp +
                  "], ports: [{port: 6379, target_port: 6379}], selector: {app: redis}}\n");
    writeFile(dir_.file("injection.yaml"),
              std::string("image: registry.example/rdmesh-proxy:test\n") +
                  "xdsAddress: " + kGateway + ":" + std::to_string(kXdsTls) + "\n" +
                  "xdsServerName: " + kServiceName + "\ndrainSeconds: 1\n");
    xds_ = std::make_unique<Process>("rdmesh-xds",
                                     std::vector<std::string>{xdsBinary(),
                                                              "--listen-ip",
                                                              "0.0.0.0",
                                                              "--port",
                                                              std::to_string(kXdsTls),
                                                              "--plaintext-port",
                                                              std::to_string(kXdsPlain),
                                                              "--registry-file",
                                                              dir_.file("registry.yaml"),
                                                              "--registration-token-file",
                                                              dir_.file("token"),
                                                              "--push-delay-ms",
                                                              "20",
                                                              "--ca-cert",
                                                              dir_.file("ca.pem"),
                                                              "--ca-key",
                                                              dir_.file("ca.key"),
                                                              "--service-dns",
                                                              kServiceName,
                                                              "--webhook-port",
                                                              std::to_string(kWebhook),
                                                              "--injection-config",
                                                              dir_.file("injection.yaml"),
                                                              "--log-level",
                                                              "debug"},
                                     dir_.file("xds.log"), node_->name());
    ASSERT_TRUE(waitFor(
        [&] {
          const std::string log = xds_->output();
          return log.find("injection webhook listening") != std::string::npos &&
                 log.find("(TLS, ALPN h2)") != std::string::npos;
        },
        20s))
        << xds_->output();
  }

  void makeCaFiles() {
    CommandResult ca = runCommand({"openssl",
                                   "req",
                                   "-x509",
                                   "-newkey",
                                   "ec",
                                   "-pkeyopt",
                                   "ec_paramgen_curve:prime256v1",
                                   "-nodes",
                                   "-keyout",
                                   dir_.file("ca.key"),
                                   "-out",
                                   dir_.file("ca.pem"),
                                   "-days",
                                   "1",
                                   "-subj",
                                   "/CN=rdmesh injected pod test CA",
                                   "-addext",
                                   "basicConstraints=critical,CA:TRUE",
                                   "-addext",
                                   "keyUsage=critical,keyCertSign,cRLSign"},
                                  dir_.file("openssl.log"));
    ASSERT_TRUE(ca.ok()) << ca.describe();
  }

  // What the API server does with a new pod: ask the webhook, apply the patch.
  Json admit(const Json& pod) {
    writeFile(dir_.file("review.json"), admissionReview(pod).dump());
    const std::string host = std::string(kServiceName) + ":" + std::to_string(kWebhook);
    CommandResult reply =
        runCommand({"curl", "-sS", "--cacert", dir_.file("ca.pem"), "--resolve",
                    host + ":127.0.0.1", "-H", "Content-Type: application/json", "--data-binary",
                    "@" + dir_.file("review.json"), "https://" + host + "/inject"},
                   dir_.file("admit.log"), node_->name());
    EXPECT_TRUE(reply.ok()) << reply.describe();
    Json review = Json::parse(commandOutput(reply), nullptr, false);
    EXPECT_FALSE(review.is_discarded()) << reply.output;
    const Json& response = review["response"];
    EXPECT_EQ(response["allowed"], true);
    EXPECT_TRUE(response.contains("patch")) << review.dump();
    Result<std::string> patch = xds_server::base64Decode(response.value("patch", ""));
    EXPECT_TRUE(patch.isOk());
    return pod.patch(Json::parse(*patch));
  }

  struct RunningPod {
    Json spec;
    std::string ip;
    std::unique_ptr<Container> app;
    std::unique_ptr<Container> sidecar;
    std::unique_ptr<AttachedNetns> netns;
  };

  // The kubelet's part: the app container (first in the pod: CNI runs for it), then every other
  // container of the patched spec in the pod's network namespace.
  RunningPod& run(const Json& patched, const std::string& app_command) {
    auto pod = std::make_unique<RunningPod>();
    pod->spec = patched;
    const std::string name = patched["metadata"]["name"];
    ContainerSpec app{
        name,
        dir_.file("rootfs"),
        {"/bin/sh", "-c", app_command + "ip -4 -o addr show eth0; echo READY; exec sleep 100000"},
        {},
        node_->name(),
        cni_,
        tag_};
    pod->app = std::make_unique<Container>(*containerd_, app, dir_.path());
    EXPECT_TRUE(pod->app->waitOutput("READY")) << pod->app->output();
    pod->ip = podIpIn(pod->app->output());
    EXPECT_FALSE(pod->ip.empty()) << pod->app->output();
    pod->netns = std::make_unique<AttachedNetns>("cwp", pod->app->taskPid());
    registerWorkload(patched, pod->ip);

    const Json& sidecar = patched["spec"]["containers"][0];
    EXPECT_EQ(sidecar["name"], "rdmesh-proxy");
    // The downward API, as the kubelet resolves it for this pod.
    const std::map<std::string, std::string> fields = {
        {"metadata.name", name},
        {"metadata.namespace", "shop"},
        {"spec.serviceAccountName", patched["spec"]["serviceAccountName"]},
        {"spec.nodeName", kNode},
        {"status.podIP", pod->ip},
        {"status.podIPs", pod->ip}};
    ContainerSpec side{
        name + "-rdmesh-proxy", dir_.file("rootfs"), {}, {}, node_->name(), cni_, tag_};
    for (const Json& env : sidecar["env"]) {
      std::string value;
      if (env.contains("value")) {
        value = env["value"];
      } else {
        const std::string field = env["valueFrom"]["fieldRef"]["fieldPath"];
        EXPECT_TRUE(fields.contains(field)) << field;
        value = fields.count(field) ? fields.at(field) : "";
      }
      side.env.push_back(env["name"].get<std::string>() + "=" + value);
    }
    // runAsUser/runAsGroup (ctr run has no --user): setpriv, as the runtime would set them.
    const int uid = sidecar["securityContext"]["runAsUser"];
    const int gid = sidecar["securityContext"]["runAsGroup"];
    side.argv = {findExecutable("setpriv"), "--reuid=" + std::to_string(uid),
                 "--regid=" + std::to_string(gid), "--clear-groups"};
    for (const Json& arg : sidecar["command"]) side.argv.push_back(arg);
    for (const Json& arg : sidecar["args"]) side.argv.push_back(arg);
    side.argv[4] = proxyBinary();  // the image's /usr/local/bin/rdmesh-proxy is this build's
    // volumeMounts: the node socket directory (hostPath /var/run/rdmesh) holds node.sock; this
    // node's agent keeps its socket in the test directory.
    EXPECT_EQ(sidecar["volumeMounts"][0]["mountPath"], "/var/run/rdmesh");
    side.mounts = {"type=bind,src=" + agent_->socketPath() +
                   ",dst=/var/run/rdmesh/node.sock,options=rbind:rw"};
    side.join_netns = "/proc/" + std::to_string(pod->app->taskPid()) + "/ns/net";
    pod->sidecar = std::make_unique<Container>(*containerd_, side, dir_.path());
    pods_.push_back(std::move(pod));
    return *pods_.back();
  }

  // The node agent's registration, done here over the registration API (rdmesh-cni does not
  // pass pod names from `ctr run`).
  void registerWorkload(const Json& pod, const std::string& ip) {
    const std::string name = pod["metadata"]["name"];
    Json workload = {{"name", "shop/" + name},
                     {"namespace", "shop"},
                     {"pod", name},
                     {"ip", {ip}},
                     {"node", kNode},
                     {"identity", "spiffe://cluster.local/ns/shop/sa/" +
                                      pod["spec"]["serviceAccountName"].get<std::string>()},
                     {"service_account", pod["spec"]["serviceAccountName"]},
                     {"labels", pod["metadata"]["labels"]}};
    workload["ports"] = Json::array();
    for (const Json& c : pod["spec"]["containers"]) {
      for (const Json& p : c.value("ports", Json::array())) {
        if (c["name"] != "rdmesh-proxy") workload["ports"].push_back(p["containerPort"]);
      }
    }
    writeFile(dir_.file("workload.json"), workload.dump());
    CommandResult put =
        runCommand({"curl", "-sS", "-f", "--http2-prior-knowledge", "-X", "PUT", "-H",
                    std::string("authorization: Bearer ") + kToken, "--data-binary",
                    "@" + dir_.file("workload.json"),
                    "http://127.0.0.1:" + std::to_string(kXdsPlain) + "/v1/workloads/shop/" + name},
                   dir_.file("register.log"), node_->name());
    ASSERT_TRUE(put.ok()) << put.describe();
  }

  // The patch's readiness probe, made as the kubelet makes it: from the node, to the pod IP.
  bool probeReady(const RunningPod& pod) {
    const Json& probe = pod.spec["spec"]["containers"][0]["readinessProbe"]["httpGet"];
    const std::string url = "http://" + pod.ip + ":" + std::to_string(probe["port"].get<int>()) +
                            probe["path"].get<std::string>();
    return httpGet(node_->name(), url).status == 200;
  }

  std::string sidecarStats(const RunningPod& pod) {
    return httpGet(pod.netns->name(), "http://127.0.0.1:15000/stats").body;
  }
  int64_t stat(const RunningPod& pod, const std::string& name) {
    std::smatch m;
    const std::string stats = sidecarStats(pod);
    const std::regex re("(^|\\n)" + std::regex_replace(name, std::regex(R"([|.])"), R"(\$&)") +
                        R"(: (\d+))");
    return std::regex_search(stats, m, re) ? std::stoll(m[2]) : -1;
  }

  TempDir dir_{"rdinj"};
  std::string cgroup_root_;
  std::string tag_;
  std::unique_ptr<Netns> node_;
  std::unique_ptr<Containerd> containerd_;
  std::unique_ptr<TestCgroup> node_cgroup_;
  std::unique_ptr<NodeAgent> agent_;
  CniDirs cni_;
  std::unique_ptr<Process> xds_;
  std::vector<std::unique_ptr<RunningPod>> pods_;
};

TEST_F(InjectedPodTest, InjectedPodsComeUpWithTheSidecarAndTrafficGoesThroughIt) {
  const Json server_pod = admit(podSpec("redis-0", "redis", "redis", 6379));
  Json client_spec = podSpec("client-0", "client", "client", std::nullopt);
  client_spec["metadata"]["annotations"] = {{"rdmesh.io/exclude-outbound-ports", "6380"}};
  const Json client_pod = admit(client_spec);
  ASSERT_EQ(server_pod["spec"]["containers"].size(), 2U);

  RunningPod& server = run(server_pod,
                           "redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no "
                           "--daemonize yes --dir /tmp; redis-server --port 6380 --bind 0.0.0.0 "
                           "--save '' --appendonly no --protected-mode no --daemonize yes --dir "
                           "/tmp; ");
  RunningPod& client = run(client_pod, "");

  // Both sidecars come up: the kubelet's readiness probe passes.
  for (RunningPod* pod : {&server, &client}) {
    ASSERT_TRUE(waitFor([&] { return probeReady(*pod); }, 60s)) << pod->sidecar->output() << "\n"
                                                                << xds_->output();
  }
  // The bootstrap found its workload name in the env and xDS over TLS with the inline CA.
  HttpResponse dump = httpGet(client.netns->name(), "http://127.0.0.1:15000/config_dump");
  Json config = Json::parse(dump.body, nullptr, false);
  ASSERT_FALSE(config.is_discarded()) << dump.body;
  EXPECT_EQ(config["xds"]["workload"], "shop/client-0");
  EXPECT_EQ(config["node"]["identity"], "spiffe://cluster.local/ns/shop/sa/client");
  EXPECT_EQ(config["node"]["name"], kNode);

  // The client app uses the service's cluster IP with plain redis-cli: captured by eBPF, routed
  // by its sidecar over the agent's shm session to the server's sidecar, delivered to redis
  // (which listens on loopback only: nothing but the server's sidecar can reach it).
  const int64_t captured_before = agent_->stat("rdmesh.node.capture.captured");
  CommandResult set;
  ASSERT_TRUE(waitFor(
      [&] {
        set = client.app->exec(
            {"/usr/bin/redis-cli", "-h", kServiceIp, "-p", "6379", "SET", "injected", "works"},
            20s);
        return set.ok() && commandOutput(set) == "OK\n";
      },
      60s, 500ms))
      << set.describe() << "\n"
      << client.sidecar->output();
  CommandResult get = client.app->exec(
      {"/usr/bin/redis-cli", "-h", kServiceIp, "-p", "6379", "GET", "injected"}, 20s);
  ASSERT_TRUE(get.ok()) << get.describe();
  EXPECT_EQ(commandOutput(get), "works\n");

  EXPECT_GE(agent_->stat("rdmesh.node.capture.captured") - captured_before, 2);
  EXPECT_GE(stat(client, "rdmesh.listener.capture.capture_to_service"), 2) << sidecarStats(client);
  EXPECT_GE(stat(server, "rdmesh.listener.inbound|6379.downstream_cx_total"), 2)
      << sidecarStats(server);
  // The sidecars themselves (uid 1337) are never captured: the agent counted them as skipped.
  EXPECT_GE(agent_->stat("rdmesh.node.capture.skipped_uid"), 1);

  // rdmesh.io/exclude-outbound-ports: "6380" on the client pod reached its sidecar, which had
  // the agent stop capturing 6380 for this pod: redis sees the client pod's own address.
  const int64_t skipped_before = agent_->stat("rdmesh.node.capture.skipped_port");
  CommandResult excluded = client.app->exec(
      {"/usr/bin/redis-cli", "-h", server.ip, "-p", "6380", "CLIENT", "INFO"}, 20s);
  ASSERT_TRUE(excluded.ok()) << excluded.describe();
  EXPECT_NE(excluded.output.find("addr=" + client.ip + ":"), std::string::npos) << excluded.output;
  EXPECT_EQ(agent_->stat("rdmesh.node.capture.skipped_port") - skipped_before, 1);
}

}  // namespace
}  // namespace rdmesh::it
