// 1000 app connections open at the same time over one session (max_streams 1024): each sends its
// own 4 KiB message and must get exactly that message back; afterwards no stream is left behind.
#include <poll.h>
#include <sys/socket.h>

#include <cstring>
#include <iostream>

#include "fixture.h"

namespace rdmesh::it {
namespace {

constexpr uint16_t kEchoPort = 7200, kEchoOut = 17200;

class ConcurrentStreamsTest : public BackendTest {};

TEST_P(ConcurrentStreamsTest, ThousandStreamsAtOnce) {
  const size_t n = envOr("RDMESH_IT_STREAMS", 1000);
  constexpr size_t kMsg = 4096;
  raiseFdLimit();
  Mesh mesh(backend(), {"node-a", "node-b"});
  const std::string a = mesh.ns("node-a"), b = mesh.ns("node-b"), ip_b = mesh.ip("node-b");
  SidecarSpec sa = mesh.baseSpec("node-a");
  sa.transport_options["max_streams"] = "1024";
  sa.outbound("echo-out", "127.0.0.1:" + std::to_string(kEchoOut), "echo")
      .cluster("echo", {{"node-b", ip_b + ":" + std::to_string(kEchoPort)}});
  SidecarSpec sb = mesh.baseSpec("node-b");
  sb.transport_options["max_streams"] = "1024";
  sb.inbound("echo-in", kEchoPort, "127.0.0.1:" + std::to_string(kEchoPort));
  Sidecar& sca = mesh.add(sa);
  Sidecar& scb = mesh.add(sb);
  mesh.startAll();
  EchoServer echo(b, "127.0.0.1", kEchoPort);

  // Open all connections first (inside node A), then talk on all of them.
  auto t0 = Clock::now();
  std::vector<UniqueFd> fds = inNetns(a, [&] {
    std::vector<UniqueFd> v;
    for (size_t i = 0; i < n; ++i) {
      int err = 0;
      UniqueFd fd = tcpConnect("", "127.0.0.1", kEchoOut, 20s, &err);
      if (!fd) {
        ADD_FAILURE() << "connect #" << i << ": " << strerror(err);
        break;
      }
      v.push_back(std::move(fd));
    }
    return v;
  });
  ASSERT_EQ(fds.size(), n);
  std::cout << "[metric] " << backend() << " opened " << n << " connections in " << secondsSince(t0)
            << " s\n";

  std::vector<std::string> want(n);
  for (size_t i = 0; i < n; ++i) {
    want[i] = PatternGen(0xc0ffee00 + i).bytes(kMsg);
    memcpy(want[i].data(), &i, sizeof i);  // distinct prefix too
    ASSERT_TRUE(sendAll(fds[i].get(), want[i]))
        << "send on connection " << i << ": " << strerror(errno);
  }
  std::vector<std::string> got(n);
  std::vector<pollfd> pfds(n);
  size_t done = 0;
  auto deadline = Clock::now() + 120s;
  std::vector<char> buf(kMsg);
  while (done < n && Clock::now() < deadline) {
    for (size_t i = 0; i < n; ++i) {
      pfds[i] = {got[i].size() < kMsg ? fds[i].get() : -1, POLLIN, 0};
    }
    int pr = poll(pfds.data(), pfds.size(), 1000);
    ASSERT_GE(pr, 0) << strerror(errno);
    for (size_t i = 0; i < n; ++i) {
      if (pfds[i].fd < 0 || !(pfds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t r = recv(fds[i].get(), buf.data(), kMsg - got[i].size(), MSG_DONTWAIT);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      ASSERT_GT(r, 0) << "connection " << i << ": " << (r == 0 ? "EOF" : strerror(errno))
                      << " after " << got[i].size() << " bytes";
      got[i].append(buf.data(), static_cast<size_t>(r));
      if (got[i].size() == kMsg) ++done;
    }
  }
  ASSERT_EQ(done, n) << "echoes complete before the deadline";
  size_t wrong = 0;
  for (size_t i = 0; i < n; ++i) {
    if (got[i] != want[i]) ++wrong;
  }
  EXPECT_EQ(wrong, 0u) << "connections whose echo differs from what they sent";
  std::cout << "[metric] " << backend() << " " << n << " echoes of 4 KiB in " << secondsSince(t0)
            << " s\n";

  // All of them are open right now, end to end.
  EXPECT_EQ(echo.active(), static_cast<int64_t>(n));
  EXPECT_EQ(sca.statInt("rdmesh.session.node-b.streams_active"), static_cast<int64_t>(n));
  EXPECT_EQ(scb.statInt("rdmesh.session.node-a.streams_active"), static_cast<int64_t>(n));
  EXPECT_EQ(sca.statInt("rdmesh.listener.echo-out.downstream_cx_active"), static_cast<int64_t>(n));

  fds.clear();
  EXPECT_TRUE(sca.waitStat("rdmesh.session.node-b.streams_active", "0", 30s))
      << sca.stat("rdmesh.session.node-b.streams_active").value_or("(absent)");
  EXPECT_TRUE(scb.waitStat("rdmesh.session.node-a.streams_active", "0", 30s))
      << scb.stat("rdmesh.session.node-a.streams_active").value_or("(absent)");
  EXPECT_TRUE(waitFor([&] { return echo.active() == 0; }, 30s))
      << echo.active() << " upstream connections left";
  EXPECT_EQ(echo.accepted(), n);
  EXPECT_EQ(sca.stat("rdmesh.session.node-b.state"), "established");

  // The session is still good for new streams.
  UniqueFd fd = tcpConnect(a, "127.0.0.1", kEchoOut);
  ASSERT_TRUE(fd);
  ASSERT_TRUE(sendAll(fd.get(), "after"));
  EXPECT_EQ(readExactly(fd.get(), 5, 10s).data, "after");
}

RDMESH_INSTANTIATE_BACKENDS(ConcurrentStreamsTest);

}  // namespace
}  // namespace rdmesh::it
