// A peer sidecar dies mid-transfer. Three nodes; A dials B and C. While a bulk transfer runs A->B
// and a steady echo loop runs A->C, B's sidecar is SIGKILLed:
//  - the A->B app connection must see the reset (ECONNRESET/EPIPE or EOF) within 5 s, not hang;
//  - the A->C loop must not notice anything;
//  - once B's sidecar is back, A's session to B is re-established and new connections work.
#include <poll.h>
#include <sys/socket.h>

#include <cstring>
#include <iostream>

#include "fixture.h"

namespace rdmesh::it {
namespace {

constexpr uint16_t kBulkPort = 7300, kBulkOut = 17300;      // echo server in B
constexpr uint16_t kSteadyPort = 7301, kSteadyOut = 17301;  // echo server in C

// Pumps data both ways on an echo connection until it fails, EOFs, or stop is set.
struct BulkPump {
  std::atomic<uint64_t> sent{0}, received{0};
  std::atomic<bool> stop{false}, finished{false};
  std::string outcome;  // "EOF" or an errno text (valid once finished)
  Clock::time_point end_time;

  void run(int fd) {
    setNonBlocking(fd);
    std::vector<char> out(64 * 1024), in(256 * 1024);
    PatternGen(99).fill(out.data(), out.size());
    while (!stop.load()) {
      pollfd p{fd, POLLIN | POLLOUT, 0};
      int pr = poll(&p, 1, 100);
      if (pr < 0 && errno != EINTR) {
        outcome = std::string("poll: ") + strerror(errno);
        break;
      }
      if (pr <= 0) continue;
      if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
        ssize_t n = recv(fd, in.data(), in.size(), MSG_DONTWAIT);
        if (n == 0) {
          outcome = "EOF";
          break;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
          outcome = strerror(errno);
          break;
        }
        if (n > 0) received += static_cast<uint64_t>(n);
      }
      if (p.revents & POLLOUT) {
        ssize_t n = send(fd, out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
          outcome = strerror(errno);
          break;
        }
        if (n > 0) sent += static_cast<uint64_t>(n);
      }
    }
    if (outcome.empty()) outcome = "stopped";
    end_time = Clock::now();
    finished = true;
  }
};

// Request/response loop: 1 KiB messages, each checked.
struct SteadyLoop {
  std::atomic<uint64_t> round_trips{0};
  std::atomic<bool> stop{false}, failed{false};
  std::string error;

  void run(int fd) {
    for (uint64_t i = 0; !stop.load(); ++i) {
      std::string msg = PatternGen(i + 1).bytes(1024);
      if (!sendAll(fd, msg)) {
        error = std::string("send: ") + strerror(errno);
        break;
      }
      ReadResult r = readExactly(fd, msg.size(), 5s);
      if (r.error != 0 || r.data != msg) {
        error =
            r.error ? std::string("read: ") + strerror(r.error) : (r.eof ? "EOF" : "wrong echo");
        break;
      }
      ++round_trips;
    }
    if (!error.empty()) failed = true;
  }
};

class PeerKilledTest : public BackendTest {};

TEST_P(PeerKilledTest, KillPeerMidTransferThenRestart) {
  Mesh mesh(backend(), {"node-a", "node-b", "node-c"});
  const std::string a = mesh.ns("node-a"), b = mesh.ns("node-b"), c = mesh.ns("node-c");
  auto keepalive = [](SidecarSpec& s) {
    s.transport_options["keepalive_interval_ms"] = "300";
    s.transport_options["keepalive_timeout_ms"] = "1500";
  };
  SidecarSpec sa = mesh.baseSpec("node-a");
  keepalive(sa);
  sa.outbound("bulk-out", "127.0.0.1:" + std::to_string(kBulkOut), "bulk")
      .cluster("bulk", {{"node-b", mesh.ip("node-b") + ":" + std::to_string(kBulkPort)}})
      .outbound("steady-out", "127.0.0.1:" + std::to_string(kSteadyOut), "steady")
      .cluster("steady", {{"node-c", mesh.ip("node-c") + ":" + std::to_string(kSteadyPort)}});
  SidecarSpec sb = mesh.baseSpec("node-b");
  keepalive(sb);
  sb.inbound("bulk-in", kBulkPort, "127.0.0.1:" + std::to_string(kBulkPort));
  SidecarSpec sc = mesh.baseSpec("node-c");
  keepalive(sc);
  sc.inbound("steady-in", kSteadyPort, "127.0.0.1:" + std::to_string(kSteadyPort));
  Sidecar& sca = mesh.add(sa);
  Sidecar& scb = mesh.add(sb);
  mesh.add(sc);
  mesh.startAll();
  EchoServer bulk_server(b, "127.0.0.1", kBulkPort);
  EchoServer steady_server(c, "127.0.0.1", kSteadyPort);

  UniqueFd bulk_fd = tcpConnect(a, "127.0.0.1", kBulkOut);
  UniqueFd steady_fd = tcpConnect(a, "127.0.0.1", kSteadyOut);
  ASSERT_TRUE(bulk_fd && steady_fd);
  BulkPump pump;
  SteadyLoop steady;
  std::thread pump_thread([&] { pump.run(bulk_fd.get()); });
  std::thread steady_thread([&] { steady.run(steady_fd.get()); });
  struct Joiner {
    BulkPump& p;
    SteadyLoop& s;
    std::thread& t1;
    std::thread& t2;
    ~Joiner() {
      p.stop = true;
      s.stop = true;
      t1.join();
      t2.join();
    }
  } joiner{pump, steady, pump_thread, steady_thread};

  ASSERT_TRUE(
      waitFor([&] { return pump.received.load() >= (16u << 20) || pump.finished.load(); }, 60s))
      << "bulk transfer did not get going: " << pump.received.load() << " bytes echoed";
  ASSERT_FALSE(pump.finished.load()) << "bulk transfer ended before the kill: " << pump.outcome;
  ASSERT_TRUE(
      waitFor([&] { return steady.round_trips.load() >= 20 || steady.failed.load(); }, 30s));
  ASSERT_FALSE(steady.failed.load()) << steady.error;

  // ---- kill B's sidecar
  uint64_t rt_at_kill = steady.round_trips.load();
  uint64_t bulk_at_kill = pump.received.load();
  auto t_kill = Clock::now();
  scb.kill();
  bool noticed = waitFor([&] { return pump.finished.load(); }, 5s, 5ms);
  EXPECT_TRUE(noticed) << "A->B app connection still open 5 s after B's sidecar died (hang); "
                       << pump.received.load() - bulk_at_kill << " bytes arrived since the kill";
  if (noticed) {
    double detect = std::chrono::duration<double>(pump.end_time - t_kill).count();
    std::cout << "[metric] " << backend() << " reset seen by the app " << detect * 1000
              << " ms after the kill (" << pump.outcome << ")\n";
    EXPECT_TRUE(pump.outcome == "EOF" || pump.outcome == strerror(ECONNRESET) ||
                pump.outcome == strerror(EPIPE))
        << pump.outcome;
  }
  ASSERT_TRUE(sca.running()) << "node-a's sidecar died when its peer node-b died: "
                             << describeWaitStatus(sca.process()->status().value_or(-1));
  // The A->C loop carries on, undisturbed, for a while after the detection.
  auto t_min = Clock::now() + 2s;
  EXPECT_TRUE(waitFor(
      [&] {
        return steady.failed.load() ||
               (Clock::now() >= t_min && steady.round_trips.load() > rt_at_kill + 20);
      },
      20s));
  EXPECT_FALSE(steady.failed.load()) << "A->C echo loop broke when B died: " << steady.error;
  EXPECT_TRUE(
      waitFor([&] { return sca.stat("rdmesh.session.node-b.state") != "established"; }, 10s))
      << "A still reports the session to the dead B as established";
  EXPECT_EQ(sca.stat("rdmesh.session.node-c.state"), "established");

  // ---- restart B's sidecar
  scb.start();
  ASSERT_TRUE(scb.waitReady(30s)) << "restarted node-b sidecar not ready";
  ASSERT_TRUE(mesh.waitEstablished("node-a", "node-b", 30s))
      << "A->B session not re-established; A says "
      << sca.stat("rdmesh.session.node-b.state").value_or("(absent)");
  EXPECT_GE(sca.statInt("rdmesh.session.node-b.connects_total"), 2);
  UniqueFd fresh = tcpConnect(a, "127.0.0.1", kBulkOut);
  ASSERT_TRUE(fresh);
  std::string msg = PatternGen(0xfeed).bytes(64 * 1024);
  ASSERT_TRUE(sendAll(fresh.get(), msg));
  ReadResult r = readExactly(fresh.get(), msg.size(), 20s);
  EXPECT_EQ(r.error, 0) << strerror(r.error);
  EXPECT_TRUE(r.data == msg) << "echo through the re-established session differs";

  EXPECT_FALSE(steady.failed.load()) << steady.error;
  EXPECT_EQ(sca.statInt("rdmesh.session.node-c.connects_total"), 1)
      << "the A-C session was disturbed";
  std::cout << "[metric] " << backend()
            << " A->C round trips during the test: " << steady.round_trips.load() << "\n";
}

RDMESH_INSTANTIATE_BACKENDS(PeerKilledTest);

}  // namespace
}  // namespace rdmesh::it
