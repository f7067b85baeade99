// Checks the integration harness itself with direct TCP between two namespaces (no proxy), so a
// failure in the proxy suites is never a harness problem in disguise.
#include "harness.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>

namespace rdmesh::it {
namespace {

TEST(HarnessParse, StatValue) {
  std::string body =
      "rdmesh.cluster.redis.upstream_cx_total: 12\n"
      "rdmesh.session.node-b.fabric: \"tcp\"\n"
      "rdmesh.session.node-b.state: \"established\"\n"
      "rdmesh.session.node-b.streams_active: 0\n";
  EXPECT_EQ(statValue(body, "rdmesh.session.node-b.state"), "established");
  EXPECT_EQ(statValue(body, "rdmesh.session.node-b.fabric"), "tcp");
  EXPECT_EQ(statInt(body, "rdmesh.cluster.redis.upstream_cx_total"), 12);
  EXPECT_EQ(statInt(body, "rdmesh.session.node-b.streams_active"), 0);
  EXPECT_EQ(statInt(body, "rdmesh.session.node-b.state", -7), -7);
  EXPECT_FALSE(statValue(body, "rdmesh.session.node-b").has_value());
  EXPECT_EQ(statsMatching(body, {"session", "node-b"}).size(), 3u);
}

TEST(HarnessParse, HasherIsChunkingIndependent) {
  PatternGen gen(42);
  std::string data = gen.bytes(100003);
  Hasher whole;
  whole.update(data.data(), data.size());
  Hasher pieces;
  size_t off = 0, step = 1;
  while (off < data.size()) {
    size_t n = std::min(step, data.size() - off);
    pieces.update(data.data() + off, n);
    off += n;
    step = step * 3 % 1021 + 1;
  }
  EXPECT_EQ(whole.digest(), pieces.digest());
  EXPECT_EQ(whole.bytes(), data.size());
  data[5000] ^= 1;
  Hasher changed;
  changed.update(data.data(), data.size());
  EXPECT_NE(whole.digest(), changed.digest());
}

class HarnessNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = netnsUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    mesh_ = std::make_unique<Mesh>("tcp", std::vector<std::string>{"node-a", "node-b"});
  }
  std::unique_ptr<Mesh> mesh_;
};

TEST_F(HarnessNetns, DirectEchoAndHalfCloseAcrossVeth) {
  const std::string a = mesh_->ns("node-a"), b = mesh_->ns("node-b");
  const std::string ip_b = mesh_->ip("node-b");
  EchoServer echo(b, ip_b, 7000);
  ASSERT_TRUE(waitForTcp(a, ip_b, 7000, 5s));

  std::string msg = PatternGen(1).bytes(64 * 1024);
  UniqueFd fd = tcpConnect(a, ip_b, 7000);
  ASSERT_TRUE(fd);
  ASSERT_TRUE(sendAll(fd.get(), msg));
  ReadResult r = readExactly(fd.get(), msg.size(), 10s);
  ASSERT_EQ(r.error, 0);
  EXPECT_EQ(r.data, msg);
  // half-close: the rest still flows back, then EOF
  ASSERT_TRUE(sendAll(fd.get(), msg));
  ASSERT_EQ(shutdown(fd.get(), SHUT_WR), 0);
  r = readUntilEof(fd.get(), 10s);
  EXPECT_TRUE(r.eof) << r.error;
  EXPECT_EQ(r.data, msg);
}

TEST_F(HarnessNetns, NamespacesAreIsolated) {
  const std::string a = mesh_->ns("node-a"), b = mesh_->ns("node-b");
  EchoServer echo(b, "127.0.0.1", 7001);
  EXPECT_TRUE(waitForTcp(b, "127.0.0.1", 7001, 5s));
  int err = 0;
  UniqueFd fd = tcpConnect(a, "127.0.0.1", 7001, 1s, &err);
  EXPECT_FALSE(fd) << "node A reached node B's loopback";
  EXPECT_EQ(err, ECONNREFUSED);
  CommandResult ip = runCommand({"ip", "-4", "addr"}, mesh_->logPath("ip-addr"), b, 10s);
  ASSERT_TRUE(ip.ok()) << ip.describe();
  EXPECT_NE(ip.output.find(mesh_->ip("node-b")), std::string::npos) << ip.output;
}

TEST_F(HarnessNetns, SinkAndSourceHashes) {
  const std::string a = mesh_->ns("node-a"), b = mesh_->ns("node-b");
  const std::string ip_b = mesh_->ip("node-b");
  SinkServer sink(b, ip_b, 7002);
  SourceServer source(b, ip_b, 7003, 8 << 20);

  UniqueFd up = tcpConnect(a, ip_b, 7002);
  ASSERT_TRUE(up);
  PatternGen gen(7);
  Hasher sent;
  std::vector<char> buf(1 << 20);
  for (int i = 0; i < 16; ++i) {
    gen.fill(buf.data(), buf.size());
    sent.update(buf.data(), buf.size());
    ASSERT_TRUE(sendAll(up.get(), buf.data(), buf.size()));
  }
  shutdown(up.get(), SHUT_WR);
  ReadResult reply = readUntilEof(up.get(), 10s);
  ASSERT_EQ(reply.data.size(), 16u);
  uint64_t got[2];
  memcpy(got, reply.data.data(), 16);
  EXPECT_EQ(got[0], sent.bytes());
  EXPECT_EQ(got[1], sent.digest());

  UniqueFd down = tcpConnect(a, ip_b, 7003);
  ASSERT_TRUE(down);
  shutdown(down.get(), SHUT_WR);
  Hasher recvd;
  ReadResult all = readUntilEof(down.get(), 10s, 16 << 20);
  ASSERT_TRUE(all.eof);
  recvd.update(all.data.data(), all.data.size());
  ASSERT_TRUE(waitFor([&] { return source.results().size() == 1; }, 5s));
  EXPECT_EQ(source.results()[0].bytes, recvd.bytes());
  EXPECT_EQ(source.results()[0].hash, recvd.digest());
}

TEST_F(HarnessNetns, HttpClientAndProcess) {
  const std::string a = mesh_->ns("node-a"), b = mesh_->ns("node-b");
  ThreadedServer http(b, mesh_->ip("node-b"), 7004, [](int fd) {
    readExactly(fd, 4, 5s);  // "GET "
    std::string resp =
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nrdmesh.x.state: \"up\"\n";
    sendAll(fd, resp);
  });
  std::string url = "http://" + mesh_->ip("node-b") + ":7004/stats";
  ASSERT_TRUE(waitForHttp(a, url, 200, 5s));
  HttpResponse r = httpGet(a, url);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(statValue(r.body, "rdmesh.x.state"), "up");

  Process sleeper("sleep", {"sleep", "30"}, mesh_->logPath("sleep"), a);
  EXPECT_TRUE(sleeper.running());
  int st = sleeper.terminate(5s);
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM) << describeWaitStatus(st);
}

}  // namespace
}  // namespace rdmesh::it
