// Upstream refuses: the endpoint's port has nothing listening on node B (or B has no inbound
// listener for it, or a local endpoint refuses). The app's connection must be closed promptly
// (EOF without data or ECONNRESET), a failure counter must move, and nothing may leak.
#include <sys/socket.h>

#include <cstring>
#include <iostream>

#include "fixture.h"

namespace rdmesh::it {
namespace {

constexpr uint16_t kRefusedPort = 7400, kRefusedOut = 17400;        // inbound listener, no server
constexpr uint16_t kNoListenerPort = 7401, kNoListenerOut = 17401;  // no inbound listener at all
constexpr uint16_t kLocalPort = 7403, kLocalOut = 17403;            // local endpoint, no server
constexpr uint16_t kEchoPort = 7402, kEchoOut = 17402;              // control: works

class UpstreamRefusedTest : public BackendTest {
 protected:
  // Connects through `out` and expects the connection to be closed without data within 5 s.
  void expectPromptClose(const std::string& ns, uint16_t out, const std::string& what) {
    int err = 0;
    UniqueFd fd = tcpConnect(ns, "127.0.0.1", out, 5s, &err);
    if (!fd) {
      // Refused or reset before connect() returned (a local refusal is that fast): fine too.
      EXPECT_TRUE(err == ECONNREFUSED || err == ECONNRESET)
          << what << ": connect: " << strerror(err);
      return;
    }
    auto t0 = Clock::now();
    sendAll(fd.get(), "PING\r\n");  // may fail with EPIPE/ECONNRESET: fine
    ReadResult r = readUntilEof(fd.get(), 5s, 1 << 20);
    double secs = secondsSince(t0);
    EXPECT_TRUE(r.eof || r.error == ECONNRESET || r.error == EPIPE)
        << what << ": connection not closed within 5 s (" << strerror(r.error) << ")";
    EXPECT_TRUE(r.data.empty()) << what << ": unexpected data: " << r.data.substr(0, 64);
    EXPECT_LT(secs, 3.0) << what << ": close took " << secs << " s";
    std::cout << "[metric] " << backend() << " " << what << ": closed after " << secs * 1000
              << " ms (" << (r.eof ? "EOF" : strerror(r.error)) << ")\n";
  }
};

TEST_P(UpstreamRefusedTest, ClosedPromptlyAndCounted) {
  Mesh mesh(backend(), {"node-a", "node-b"});
  const std::string a = mesh.ns("node-a"), b = mesh.ns("node-b"), ip_b = mesh.ip("node-b");
  auto ep = [&](uint16_t port) {
    return std::vector<EndpointSpec>{{"node-b", ip_b + ":" + std::to_string(port)}};
  };
  auto local = [](uint16_t port) { return "127.0.0.1:" + std::to_string(port); };
  SidecarSpec sa = mesh.baseSpec("node-a");
  sa.outbound("refused-out", local(kRefusedOut), "refused")
      .cluster("refused", ep(kRefusedPort))
      .outbound("nolistener-out", local(kNoListenerOut), "nolistener")
      .cluster("nolistener", ep(kNoListenerPort))
      .outbound("local-out", local(kLocalOut), "local")
      .cluster("local", {{"node-a", local(kLocalPort)}})
      .outbound("echo-out", local(kEchoOut), "echo")
      .cluster("echo", ep(kEchoPort));
  SidecarSpec sb = mesh.baseSpec("node-b");
  sb.inbound("refused-in", kRefusedPort, local(kRefusedPort))
      .inbound("echo-in", kEchoPort, local(kEchoPort));
  Sidecar& sca = mesh.add(sa);
  Sidecar& scb = mesh.add(sb);
  mesh.startAll();
  EchoServer echo(b, "127.0.0.1", kEchoPort);

  expectPromptClose(a, kRefusedOut, "remote endpoint refused");
  expectPromptClose(a, kNoListenerOut, "no inbound listener for the port");
  expectPromptClose(a, kLocalOut, "local endpoint refused");
  ASSERT_TRUE(sca.running()) << "node-a's sidecar died: "
                             << describeWaitStatus(sca.process()->status().value_or(-1));
  ASSERT_TRUE(scb.running()) << "node-b's sidecar died: "
                             << describeWaitStatus(scb.process()->status().value_or(-1));

  std::string stats_a = sca.stats(), stats_b = scb.stats();
  EXPECT_GE(statInt(stats_a, "rdmesh.cluster.local.upstream_cx_connect_fail"), 1) << stats_a;
  // Remote refusals: A's cluster counter, or any failure/reset counter on either side.
  auto failures = [](const std::string& stats, std::string& seen) {
    int64_t sum = 0;
    for (auto& [name, value] : statsMatching(stats, {})) {
      if (name.find("fail") == std::string::npos && name.find("reset") == std::string::npos &&
          name.find("refused") == std::string::npos) {
        continue;
      }
      if (name.find("cluster.local.") != std::string::npos) continue;
      char* end = nullptr;
      long long v = strtoll(value.c_str(), &end, 10);
      if (end && *end == '\0' && v > 0) {
        sum += v;
        seen += "  " + name + ": " + value + "\n";
      }
    }
    return sum;
  };
  std::string seen;
  int64_t moved = failures(stats_a, seen) + failures(stats_b, seen);
  std::cout << "[info] " << backend() << " failure counters after the remote refusals:\n" << seen;
  EXPECT_GE(moved, 1) << "no failure/reset counter moved for the remote refusals\n--- A ---\n"
                      << stats_a << "--- B ---\n"
                      << stats_b;

  // Repeated refusals leak nothing and leave the session usable.
  for (int i = 0; i < 20; ++i) {
    UniqueFd fd = tcpConnect(a, "127.0.0.1", i % 2 ? kRefusedOut : kNoListenerOut);
    if (fd) readUntilEof(fd.get(), 5s);
  }
  EXPECT_TRUE(sca.waitStat("rdmesh.session.node-b.streams_active", "0", 10s))
      << sca.stat("rdmesh.session.node-b.streams_active").value_or("(absent)");
  EXPECT_TRUE(scb.waitStat("rdmesh.session.node-a.streams_active", "0", 10s))
      << scb.stat("rdmesh.session.node-a.streams_active").value_or("(absent)");
  EXPECT_EQ(sca.stat("rdmesh.session.node-b.state"), "established");
  UniqueFd fd = tcpConnect(a, "127.0.0.1", kEchoOut);
  ASSERT_TRUE(fd);
  ASSERT_TRUE(sendAll(fd.get(), "still works"));
  EXPECT_EQ(readExactly(fd.get(), 11, 10s).data, "still works");
}

RDMESH_INSTANTIATE_BACKENDS(UpstreamRefusedTest);

}  // namespace
}  // namespace rdmesh::it
