// Capture through the LD_PRELOAD shim (librdmesh-preload.so), with eBPF off (rdmesh-node
// --bpf false): the same apps and checks as the eBPF suite.
#include <sys/wait.h>

#include "capture_fixture.h"

namespace rdmesh::it {
namespace {

class PreloadCaptureTest : public CaptureScenario {
 protected:
  void SetUp() override { SetUpScenario(/*bpf=*/false); }
  std::vector<std::string> preloadEnv(const std::string& extra = {}) {
    std::vector<std::string> env = {"LD_PRELOAD=" + preloadLibrary(),
                                    "RDMESH_EXCLUDE_OUTBOUND_PORTS=22," +
                                        std::to_string(kExcludedPort)};
    if (!extra.empty()) env.push_back(extra);
    return env;
  }
};

void expectBody(const CommandResult& r, const std::string& body, const std::string& remote_ip,
                const std::string& remote_port) {
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(commandOutput(r), body + "|" + remote_ip + "|" + remote_port);
}

TEST_F(PreloadCaptureTest, CurlAndRedisReachPodIpAndServiceIpThroughBothSidecars) {
  // No eBPF anywhere in this suite: the agent runs with --bpf false.
  EXPECT_EQ(agents_["node-a"]->stat("rdmesh.node.capture.captured"), -1);
  expectBody(curlFromPodA(std::string(kPodB) + ":8080", -1, preloadEnv()), "web:8080\n", kPodB,
             "8080");
  expectBody(curlFromPodA(kWebService, -1, preloadEnv()), "web:8080\n", "10.96.0.10", "80");
  EXPECT_EQ(captureStat("capture_to_endpoint"), 1);
  EXPECT_EQ(captureStat("capture_to_service"), 1);

  std::string cli = findExecutable("redis-cli");
  CommandResult set = runInPodA({cli, "-h", "10.96.0.11", "-p", "6379", "SET", "k", "v"}, -1,
                                preloadEnv());
  ASSERT_TRUE(set.ok()) << set.describe();
  EXPECT_EQ(commandOutput(set), "OK\n");
  // redis-benchmark: non-blocking connects from two threads (hiredis + ae).
  int64_t received = sidecarB().statInt("rdmesh.session.node-a.bytes_received");
  CommandResult bench =
      runInPodA({findExecutable("redis-benchmark"), "-h", kPodB, "-p", "6379", "-n", "2000", "-c",
                 "8", "--threads", "2", "-t", "get", "-q"},
                -1, preloadEnv(), 120s);
  ASSERT_TRUE(bench.ok()) << bench.describe();
  EXPECT_GT(sidecarB().statInt("rdmesh.session.node-a.bytes_received") - received, 2000 * 30);
  EXPECT_GE(captureStat("capture_to_endpoint"), 1 + 8);  // + the benchmark's own probe
  EXPECT_EQ(captureStat("capture_no_original_dst"), 0);
}

TEST_F(PreloadCaptureTest, ForkAndExecKeepCapturing) {
  // sh forks and execs curl twice: LD_PRELOAD is inherited and the shim loads in each child.
  std::string curl = findExecutable("curl");
  std::string script = curl + " -sS http://" + std::string(kWebService) + "/ && " + curl +
                       " -sS http://" + std::string(kPodB) + ":8080/";
  CommandResult r = runInPodA({"/bin/sh", "-c", script}, -1, preloadEnv());
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(commandOutput(r), "web:8080\nweb:8080\n");
  EXPECT_EQ(captureStat("capture_to_service"), 1);
  EXPECT_EQ(captureStat("capture_to_endpoint"), 1);
}

TEST_F(PreloadCaptureTest, SidecarUidAndExcludedPortsAreNotCaptured) {
  expectBody(curlFromPodA(std::string(kPodB) + ":8080", kSidecarUid, preloadEnv()), "web:8080\n",
             kPodB, "8080");
  expectBody(curlFromPodA(std::string(kPodB) + ":9090", -1, preloadEnv()), "excluded:9090\n",
             kPodB, "9090");
  EXPECT_EQ(captureStat("capture_to_endpoint"), 0);
  EXPECT_EQ(sidecarB().statInt("rdmesh.listener.in-8080.downstream_cx_total"), 0);
  // Without the shim nothing is captured at all.
  EXPECT_FALSE(curlFromPodA(kWebService).ok());
}

TEST_F(PreloadCaptureTest, ConnectBeforeSidecarListensFailsFastThenIsCaptured) {
  int st = sidecarA().terminate();
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << describeWaitStatus(st);
  auto t0 = Clock::now();
  CommandResult early = curlFromPodA(std::string(kPodB) + ":8080", -1, preloadEnv());
  EXPECT_TRUE(WIFEXITED(early.status) && WEXITSTATUS(early.status) == 7) << early.describe();
  EXPECT_LT(secondsSince(t0), 2.0);
  sidecarA().start();
  ASSERT_TRUE(sidecarA().waitReady());
  ASSERT_TRUE(mesh_->waitEstablished("node-a", "node-b"));
  expectBody(curlFromPodA(std::string(kPodB) + ":8080", -1, preloadEnv()), "web:8080\n", kPodB,
             "8080");
}

TEST_F(PreloadCaptureTest, Ipv6PodAddressIsCaptured) {
  expectBody(curlFromPodA("[" + std::string(kPodB6) + "]:8086", -1, preloadEnv()), "web6:8086\n",
             kPodB6, "8086");
  EXPECT_EQ(captureStat("capture_to_endpoint"), 1);
  EXPECT_EQ(sidecarB().statInt("rdmesh.listener.in-8086.downstream_cx_total"), 1);
}

}  // namespace
}  // namespace rdmesh::it
