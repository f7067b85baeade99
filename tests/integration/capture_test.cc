// Transparent capture with eBPF: unmodified curl / redis-cli / redis-benchmark in pod A reach
// node-b's apps by pod IP and by service IP through both sidecars, with no iptables or nft rule;
// the sidecar's uid and excluded ports are not captured; pod_del leaves no map entry; capture
// survives an agent restart; an app that connects before its sidecar listens fails fast and its
// next connect is captured; IPv6.
#include <signal.h>

#include <chrono>
#include <fstream>

#include "capture_fixture.h"

namespace rdmesh::it {
namespace {

class EbpfCaptureTest : public CaptureScenario {
 protected:
  void SetUp() override { SetUpScenario(/*bpf=*/true); }
};

// curl's output is "<body>|<remote ip>|<remote port>" (see curlFromPodA).
void expectBody(const CommandResult& r, const std::string& body, const std::string& remote_ip,
                const std::string& remote_port) {
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(commandOutput(r), body + "|" + remote_ip + "|" + remote_port);
}

int64_t sessionBytes(Sidecar& s, const std::string& peer, const char* which) {
  return s.statInt("rdmesh.session." + peer + "." + which, -1);
}

TEST_F(EbpfCaptureTest, CurlReachesPodIpAndServiceIpThroughBothSidecars) {
  int64_t sent_before = sessionBytes(sidecarA(), "node-b", "bytes_sent");

  // By pod IP: the app sees the address it asked for (getpeername hook), not 127.0.0.1:15001.
  expectBody(curlFromPodA(std::string(kPodB) + ":8080"), "web:8080\n", kPodB, "8080");
  EXPECT_EQ(captureStat("capture_to_endpoint"), 1);
  // By service IP (no route to it exists anywhere: only capture makes it reachable).
  expectBody(curlFromPodA(kWebService), "web:8080\n", "10.96.0.10", "80");
  EXPECT_EQ(captureStat("capture_to_service"), 1);

  EXPECT_GT(sessionBytes(sidecarA(), "node-b", "bytes_sent"), sent_before);
  EXPECT_GT(sessionBytes(sidecarB(), "node-a", "bytes_received"), 0);
  EXPECT_EQ(sidecarB().statInt("rdmesh.listener.in-8080.downstream_cx_total"), 2);
  EXPECT_EQ(agents_["node-a"]->stat("rdmesh.node.capture.captured"), 2);
  EXPECT_GE(agents_["node-a"]->stat("rdmesh.node.capture.original_dst_answered"), 2);

  // No packet filter rule anywhere: not in the pods' namespaces, not on the host.
  for (const std::string& ns : {mesh_->ns("node-a"), mesh_->ns("node-b"), std::string()}) {
    CommandResult nft =
        runCommand({findExecutable("nft"), "list", "ruleset"}, mesh_->logPath("nft"), ns);
    EXPECT_EQ(nft.output.find("rdmesh"), std::string::npos) << nft.output;
    if (!ns.empty()) {
      EXPECT_EQ(commandOutput(nft), "") << "nft rules in " << ns;
    }
    CommandResult ipt = runCommand({findExecutable("iptables-save")}, mesh_->logPath("ipt"), ns);
    EXPECT_EQ(ipt.output.find("REDIRECT"), std::string::npos) << ipt.output;
    EXPECT_EQ(ipt.output.find("15001"), std::string::npos) << ipt.output;
  }
  // One record per captured connection (kept until overwritten or pod_del).
  EXPECT_EQ(agents_["node-a"]->stat("rdmesh.node.capture.records"), 2);
}

TEST_F(EbpfCaptureTest, RedisCliAndBenchmarkByPodIpAndServiceIp) {
  std::string cli = findExecutable("redis-cli");
  CommandResult set = runInPodA({cli, "-h", kPodB, "-p", "6379", "SET", "capture", "works"});
  ASSERT_TRUE(set.ok()) << set.describe();
  EXPECT_EQ(commandOutput(set), "OK\n");
  CommandResult get = runInPodA({cli, "-h", "10.96.0.11", "-p", "6379", "GET", "capture"});
  ASSERT_TRUE(get.ok()) << get.describe();
  EXPECT_EQ(commandOutput(get), "works\n");

  int64_t received_before = sessionBytes(sidecarB(), "node-a", "bytes_received");
  CommandResult bench = runInPodA({findExecutable("redis-benchmark"), "-h", "10.96.0.11", "-p",
                                   "6379", "-n", "2000", "-c", "4", "-t", "set,get", "-q"},
                                  -1, {}, 120s);
  ASSERT_TRUE(bench.ok()) << bench.describe();
  EXPECT_NE(bench.output.find("GET"), std::string::npos) << bench.output;
  // 4000 requests of at least ~30 bytes each crossed the tunnel.
  EXPECT_GT(sessionBytes(sidecarB(), "node-a", "bytes_received") - received_before, 4000 * 30);
  EXPECT_GE(captureStat("capture_to_service"), 5);  // get + the benchmark's 4 connections
}

TEST_F(EbpfCaptureTest, SidecarUidAndExcludedPortsAreNotCaptured) {
  NodeAgent& agent = *agents_["node-a"];
  int64_t captured = agent.stat("rdmesh.node.capture.captured");
  int64_t skipped_uid = agent.stat("rdmesh.node.capture.skipped_uid");  // the sidecar's own
  int64_t skipped_port = agent.stat("rdmesh.node.capture.skipped_port");
  // uid 1337 (the sidecar's) goes straight to the pod: node-b's inbound listener sees nothing.
  expectBody(curlFromPodA(std::string(kPodB) + ":8080", kSidecarUid), "web:8080\n", kPodB, "8080");
  // An excluded port goes straight too, for any uid.
  expectBody(curlFromPodA(std::string(kPodB) + ":9090"), "excluded:9090\n", kPodB, "9090");
  EXPECT_EQ(agent.stat("rdmesh.node.capture.captured"), captured);
  EXPECT_GE(agent.stat("rdmesh.node.capture.skipped_uid"), skipped_uid + 1);
  EXPECT_EQ(agent.stat("rdmesh.node.capture.skipped_port"), skipped_port + 1);
  EXPECT_EQ(sidecarB().statInt("rdmesh.listener.in-8080.downstream_cx_total"), 0);
  // A service IP is reachable only through capture: uid 1337 gets no route.
  CommandResult r = curlFromPodA(kWebService, kSidecarUid);
  EXPECT_FALSE(r.ok()) << r.describe();
}

TEST_F(EbpfCaptureTest, PodDelLeavesNoMapEntries) {
  NodeAgent& agent = *agents_["node-a"];
  expectBody(curlFromPodA(std::string(kPodB) + ":8080"), "web:8080\n", kPodB, "8080");
  ASSERT_NE(agent.dumpMap("rdmesh_pods"), "[]");
  ASSERT_NE(agent.dumpMap("rdmesh_excl"), "[]");
  ASSERT_EQ(agent.stat("rdmesh.node.capture.records"), 1);

  std::string reply = agent.request(R"({"v":1,"op":"pod_del","container_id":"pod-node-a"})");
  ASSERT_EQ(jsonField(reply, "ok"), "true") << reply;
  for (const char* map : {"rdmesh_pods", "rdmesh_excl"}) {
    EXPECT_EQ(agent.dumpMap(map), "[]") << map;
  }
  EXPECT_EQ(agent.stat("rdmesh.node.capture.records"), 0);
  reply = agent.request(R"({"v":1,"op":"pod_check","container_id":"pod-node-a"})");
  EXPECT_EQ(jsonField(reply, "ok"), "false") << reply;
  // Idempotent.
  reply = agent.request(R"({"v":1,"op":"pod_del","container_id":"pod-node-a"})");
  EXPECT_EQ(jsonField(reply, "ok"), "true") << reply;

  // No longer captured: straight to the pod; the service IP is unreachable.
  int64_t to_endpoint = captureStat("capture_to_endpoint");
  expectBody(curlFromPodA(std::string(kPodB) + ":8080"), "web:8080\n", kPodB, "8080");
  EXPECT_EQ(captureStat("capture_to_endpoint"), to_endpoint);
  EXPECT_FALSE(curlFromPodA(kWebService).ok());
}

TEST_F(EbpfCaptureTest, CaptureSurvivesAgentRestart) {
  NodeAgent& agent = *agents_["node-a"];
  int st = agent.terminate();
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << describeWaitStatus(st);
  // The agent is gone; the pinned programs and maps keep capturing.
  expectBody(curlFromPodA(kWebService), "web:8080\n", "10.96.0.10", "80");
  agent.start();
  std::string list = agent.request(R"({"v":1,"op":"pod_list"})");
  EXPECT_NE(list.find("\"pod-node-a\""), std::string::npos) << list;
  std::string check = agent.request(R"({"v":1,"op":"pod_check","container_id":"pod-node-a"})");
  EXPECT_EQ(jsonField(check, "ok"), "true") << check;
  expectBody(curlFromPodA(kWebService), "web:8080\n", "10.96.0.10", "80");
  EXPECT_EQ(captureStat("capture_to_service"), 2);
}

TEST_F(EbpfCaptureTest, ConnectBeforeSidecarListensFailsFastThenIsCaptured) {
  int st = sidecarA().terminate();
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << describeWaitStatus(st);
  auto t0 = Clock::now();
  CommandResult early = curlFromPodA(std::string(kPodB) + ":8080");
  EXPECT_FALSE(early.ok()) << "captured connect succeeded with no sidecar: " << early.describe();
  EXPECT_LT(secondsSince(t0), 2.0) << "an early connect must fail fast, not hang";
  // curl's exit code 7: could not connect (refused at once by the pod's own loopback).
  EXPECT_TRUE(WIFEXITED(early.status) && WEXITSTATUS(early.status) == 7) << early.describe();

  sidecarA().start();
  ASSERT_TRUE(sidecarA().waitReady());
  ASSERT_TRUE(mesh_->waitEstablished("node-a", "node-b"));
  expectBody(curlFromPodA(std::string(kPodB) + ":8080"), "web:8080\n", kPodB, "8080");
  EXPECT_EQ(captureStat("capture_to_endpoint"), 1);
}

TEST_F(EbpfCaptureTest, Ipv6PodAddressIsCaptured) {
  std::string target = "[" + std::string(kPodB6) + "]:8086";
  expectBody(curlFromPodA(target), "web6:8086\n", kPodB6, "8086");
  EXPECT_EQ(captureStat("capture_to_endpoint"), 1);
  EXPECT_EQ(sidecarB().statInt("rdmesh.listener.in-8086.downstream_cx_total"), 1);
}

// TCP_FASTOPEN_CONNECT defers the SYN (and so TCP_CONNECT) to the first write; the thread
// connects a second captured socket in between. Both reach their own destinations.
TEST_F(EbpfCaptureTest, DeferredFastOpenConnectKeepsItsOwnDestination) {
  const char* script = R"(
import socket, sys
def get(s):
    s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk: break
        data += chunk
    return data.split(b"\r\n\r\n", 1)[-1].decode()
deferred = socket.socket()
deferred.setsockopt(socket.IPPROTO_TCP, 30, 1)  # TCP_FASTOPEN_CONNECT
deferred.connect(("10.96.0.10", 80))
other = socket.socket(socket.AF_INET6)
other.connect((sys.argv[1], 8086))
sys.stdout.write(get(other) + get(deferred))
)";
  // Defer only happens with a cached cookie, or with "no cookie needed" (0x4) on the client.
  ASSERT_TRUE(runInPodA({findExecutable("sysctl"), "-qw", "net.ipv4.tcp_fastopen=5"}).ok());
  std::string path = mesh_->logPath("fastopen.py");
  std::ofstream(path) << script;
  CommandResult r = runInPodA({findExecutable("python3"), path, kPodB6});
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(commandOutput(r), "web6:8086\nweb:8080\n");
  EXPECT_EQ(captureStat("capture_to_service"), 1);
  EXPECT_EQ(captureStat("capture_to_endpoint"), 1);
}

// A client that writes and closes before its sidecar has accepted (the sidecar is stopped): the
// sidecar finds the app's closed socket (FIN_WAIT/TIME_WAIT keep its cookie) and its record, and
// the request still reaches redis.
TEST_F(EbpfCaptureTest, WriteAndCloseBeforeTheSidecarAcceptsIsDelivered) {
  NodeAgent& agent = *agents_["node-a"];
  int64_t after_close = agent.stat("rdmesh.node.capture.answered_after_app_close");
  pid_t sidecar = sidecarA().process()->pid();
  ASSERT_EQ(::kill(sidecar, SIGSTOP), 0);
  CommandResult early =
      runInPodA({findExecutable("python3"), "-c",
                 "import socket; s = socket.create_connection(('10.96.0.11', 6379)); "
                 "s.sendall(b'SET early delivered\\r\\n'); s.close()"});
  ::kill(sidecar, SIGCONT);
  ASSERT_TRUE(early.ok()) << early.describe();

  std::string cli = findExecutable("redis-cli");
  std::string value;
  EXPECT_TRUE(waitFor(
      [&] {
        value = commandOutput(runInPodA({cli, "-h", "10.96.0.11", "-p", "6379", "GET", "early"}));
        return value == "delivered\n";
      },
      10s))
      << value;
  EXPECT_EQ(agent.stat("rdmesh.node.capture.answered_after_app_close"), after_close + 1);
}

TEST_F(EbpfCaptureTest, UnknownDestinationPassesThrough) {
  // 10.77.1.2:8086 is in no cluster (web6 lists it by IPv6 only): pod A's sidecar relays it as
  // plain TCP from uid 1337, which capture leaves alone; node-b's sidecar never sees it.
  expectBody(curlFromPodA(std::string(kPodB) + ":8086"), "web6:8086\n", kPodB, "8086");
  EXPECT_EQ(captureStat("capture_passthrough"), 1);
  EXPECT_EQ(sidecarB().statInt("rdmesh.listener.in-8086.downstream_cx_total"), 0);
}

}  // namespace
}  // namespace rdmesh::it
