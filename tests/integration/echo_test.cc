// Echo through the mesh: app in node A -> A's outbound listener -> session -> B's sidecar ->
// echo server on B's loopback (unreachable from A except through the mesh). Bytes must come back
// identical; half-close must travel both ways; the sidecars must shut down cleanly.
#include <sys/socket.h>
#include <sys/wait.h>

#include <iostream>

#include "fixture.h"

namespace rdmesh::it {
namespace {

constexpr uint16_t kEchoPort = 7000;     // echo server in B (127.0.0.1)
constexpr uint16_t kEchoOut = 17000;     // A's outbound listener
constexpr uint16_t kGreeterPort = 7001;  // B server that half-closes first
constexpr uint16_t kGreeterOut = 17001;

std::string firstDifference(const std::string& got, const std::string& want) {
  size_t n = std::min(got.size(), want.size());
  for (size_t i = 0; i < n; ++i) {
    if (got[i] != want[i]) return "first difference at byte " + std::to_string(i);
  }
  return "sizes " + std::to_string(got.size()) + " vs " + std::to_string(want.size());
}

class EchoTest : public BackendTest {
 protected:
  // Two nodes; A's "echo" cluster points at node-b's echo port, "greeter" at the greeter port.
  void startMesh() {
    mesh_ = std::make_unique<Mesh>(backend(), std::vector<std::string>{"node-a", "node-b"});
    a_ = mesh_->ns("node-a");
    b_ = mesh_->ns("node-b");
    std::string ip_b = mesh_->ip("node-b");
    SidecarSpec sa = mesh_->baseSpec("node-a");
    sa.outbound("echo-out", "127.0.0.1:" + std::to_string(kEchoOut), "echo")
        .cluster("echo", {{"node-b", ip_b + ":" + std::to_string(kEchoPort)}})
        .outbound("greeter-out", "127.0.0.1:" + std::to_string(kGreeterOut), "greeter")
        .cluster("greeter", {{"node-b", ip_b + ":" + std::to_string(kGreeterPort)}});
    SidecarSpec sb = mesh_->baseSpec("node-b");
    sb.inbound("echo-in", kEchoPort, "127.0.0.1:" + std::to_string(kEchoPort))
        .inbound("greeter-in", kGreeterPort, "127.0.0.1:" + std::to_string(kGreeterPort));
    mesh_->add(sa);
    mesh_->add(sb);
    mesh_->startAll();
  }

  std::unique_ptr<Mesh> mesh_;
  std::string a_, b_;
};

TEST_P(EchoTest, Echo64KiB) {
  startMesh();
  EchoServer echo(b_, "127.0.0.1", kEchoPort);
  Sidecar& sa = mesh_->sidecar("node-a");
  Sidecar& sb = mesh_->sidecar("node-b");
  EXPECT_EQ(sa.stat("rdmesh.session.node-b.fabric"), backend());
  EXPECT_EQ(sb.stat("rdmesh.session.node-a.fabric"), backend());

  std::string msg = PatternGen(0xec40).bytes(64 * 1024);
  UniqueFd fd = tcpConnect(a_, "127.0.0.1", kEchoOut);
  ASSERT_TRUE(fd) << "connect to A's outbound listener";
  ASSERT_TRUE(sendAll(fd.get(), msg));
  ReadResult r = readExactly(fd.get(), msg.size(), 20s);
  ASSERT_EQ(r.error, 0) << "echo read failed after " << r.data.size()
                        << " bytes: " << strerror(r.error);
  ASSERT_TRUE(r.data == msg) << firstDifference(r.data, msg);

  // Small round trips on the same stream (no batching may hold a lone small write back).
  auto t0 = Clock::now();
  for (int i = 0; i < 200; ++i) {
    std::string ping =
        "ping-" + std::to_string(i) + "-" + std::string(static_cast<size_t>(i % 97), 'x');
    ASSERT_TRUE(sendAll(fd.get(), ping));
    ReadResult pr = readExactly(fd.get(), ping.size(), 5s);
    ASSERT_EQ(pr.error, 0) << "round trip " << i;
    ASSERT_EQ(pr.data, ping);
  }
  std::cout << "[metric] " << backend() << " small round trip: " << secondsSince(t0) / 200 * 1e6
            << " us average (sanitizer build numbers are not meaningful)\n";
  fd.reset();

  EXPECT_GE(sa.statInt("rdmesh.listener.echo-out.downstream_cx_total"), 1);
  EXPECT_GE(sa.statInt("rdmesh.cluster.echo.upstream_cx_total"), 1);
  EXPECT_GE(sa.statInt("rdmesh.session.node-b.bytes_sent"), static_cast<int64_t>(msg.size()));
  EXPECT_GE(sa.statInt("rdmesh.session.node-b.bytes_received"), static_cast<int64_t>(msg.size()));
  EXPECT_GE(sb.statInt("rdmesh.session.node-a.bytes_received"), static_cast<int64_t>(msg.size()));
  EXPECT_EQ(sa.statInt("rdmesh.session.node-b.connects_total"), 1);
  EXPECT_TRUE(sa.waitStat("rdmesh.session.node-b.streams_active", "0", 10s))
      << sa.stat("rdmesh.session.node-b.streams_active").value_or("(absent)");
  EXPECT_TRUE(sb.waitStat("rdmesh.session.node-a.streams_active", "0", 10s))
      << sb.stat("rdmesh.session.node-a.streams_active").value_or("(absent)");
  EXPECT_TRUE(sa.waitStat("rdmesh.listener.echo-out.downstream_cx_active", "0", 10s));
  EXPECT_EQ(echo.accepted(), 1u);
}

// The client half-closes: its EOF reaches the server, which keeps sending the rest of the echo
// and only then half-closes back.
TEST_P(EchoTest, ClientHalfClose) {
  startMesh();
  EchoServer echo(b_, "127.0.0.1", kEchoPort);
  std::string msg = PatternGen(0x4a1f).bytes(256 * 1024 + 17);
  UniqueFd fd = tcpConnect(a_, "127.0.0.1", kEchoOut);
  ASSERT_TRUE(fd);
  ASSERT_TRUE(sendAll(fd.get(), msg));
  ASSERT_EQ(shutdown(fd.get(), SHUT_WR), 0);
  ReadResult r = readUntilEof(fd.get(), 20s);
  EXPECT_TRUE(r.eof) << "no EOF after the echo: " << strerror(r.error) << ", got " << r.data.size()
                     << " of " << msg.size() << " bytes";
  EXPECT_TRUE(r.data == msg) << firstDifference(r.data, msg);
}

// The server half-closes first (sends a greeting, then SHUT_WR); the client sees the greeting and
// EOF, and can still send: the server receives everything after its own half-close.
TEST_P(EchoTest, ServerHalfClose) {
  startMesh();
  std::string greeting = "hello from node-b\n";
  std::string upload = PatternGen(0x5e7).bytes(200 * 1000);
  std::promise<std::string> received_p;
  auto received = received_p.get_future();
  ThreadedServer greeter(b_, "127.0.0.1", kGreeterPort, [&](int fd) {
    sendAll(fd, greeting);
    shutdown(fd, SHUT_WR);
    ReadResult rr = readUntilEof(fd, 30s);
    received_p.set_value(rr.eof ? rr.data : "read failed: " + std::string(strerror(rr.error)));
  });
  UniqueFd fd = tcpConnect(a_, "127.0.0.1", kGreeterOut);
  ASSERT_TRUE(fd);
  ReadResult r = readUntilEof(fd.get(), 20s);
  EXPECT_TRUE(r.eof) << strerror(r.error);
  EXPECT_EQ(r.data, greeting);
  ASSERT_TRUE(sendAll(fd.get(), upload)) << "send after the peer's half-close: " << strerror(errno);
  ASSERT_EQ(shutdown(fd.get(), SHUT_WR), 0);
  ASSERT_EQ(received.wait_for(30s), std::future_status::ready)
      << "server never saw the client's EOF";
  std::string got = received.get();
  EXPECT_TRUE(got == upload) << firstDifference(got, upload);
}

// SIGTERM and POST /quitquitquit both drain and exit 0; --check validates the written configs.
TEST_P(EchoTest, ConfigCheckAndCleanExit) {
  startMesh();
  Sidecar& sa = mesh_->sidecar("node-a");
  Sidecar& sb = mesh_->sidecar("node-b");
  CommandResult ok = runCommand({proxyBinary(), "--check", "-c", sa.configPath()},
                                mesh_->logPath("check-good"), "", 30s);
  EXPECT_TRUE(ok.ok()) << ok.describe();
  std::string bad_path = mesh_->dir().file("bad.yaml");
  writeFile(bad_path, readFile(sa.configPath()) + "no_such_key: 1\n");
  CommandResult bad =
      runCommand({proxyBinary(), "--check", "-c", bad_path}, mesh_->logPath("check-bad"), "", 30s);
  EXPECT_TRUE(!bad.timed_out && WIFEXITED(bad.status) && WEXITSTATUS(bad.status) == 1)
      << bad.describe();

  {
    EchoServer echo(b_, "127.0.0.1", kEchoPort);
    UniqueFd fd = tcpConnect(a_, "127.0.0.1", kEchoOut);
    ASSERT_TRUE(fd);
    ASSERT_TRUE(sendAll(fd.get(), "before shutdown"));
    EXPECT_EQ(readExactly(fd.get(), 15, 10s).data, "before shutdown");
  }
  HttpResponse q = httpRequest(b_, "POST", sb.adminUrl("/quitquitquit"));
  EXPECT_EQ(q.status, 200) << q.error;
  auto st_b = sb.process()->wait(20s);
  ASSERT_TRUE(st_b.has_value()) << "node-b still running 20 s after /quitquitquit";
  EXPECT_TRUE(WIFEXITED(*st_b) && WEXITSTATUS(*st_b) == 0) << describeWaitStatus(*st_b);
  int st_a = sa.terminate(20s);
  EXPECT_TRUE(WIFEXITED(st_a) && WEXITSTATUS(st_a) == 0) << "SIGTERM: " << describeWaitStatus(st_a);
}

RDMESH_INSTANTIATE_BACKENDS(EchoTest);

}  // namespace
}  // namespace rdmesh::it
