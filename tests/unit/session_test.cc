// Sessions end to end, in one process: two SessionManagers ("a" dials "b") on one libevent
// event_base, over the shm and tcp fabrics. The loop is driven by hand (non-blocking
// event_base_loop plus poll()/flush()) until a condition holds or a deadline passes.
#include "rdmesh/transport/session.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "rdmesh/common/address.h"
#include "rdmesh/common/stats.h"
#include "rdmesh/transport/control_codec.h"
#include "rdmesh/transport/session_manager.h"
#include "stream_users.h"

namespace rdmesh::transport {
namespace {

using std::chrono::milliseconds;
using wire::ResetReason;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kWait{15000};
using namespace test_streams;  // NOLINT(google-build-using-namespace): test helpers

// ---------------------------------------------------------------- fixture

struct FabricParam {
  const char* name;
  wire::FabricKind kind;
};

void PrintTo(const FabricParam& param, std::ostream* os) {
  *os << param.name;
}

class SessionTest : public ::testing::TestWithParam<FabricParam> {
 protected:
  void SetUp() override {
    base_ = event_base_new();
    ASSERT_NE(base_, nullptr);
    char tmpl[] = "/tmp/rdmesh-session-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    if (isShm()) {
      address_a_ = dir_ + "/a.sock";
      address_b_ = dir_ + "/b.sock";
    } else {
      address_a_ = "127.0.0.1:" + std::to_string(freePort());
      address_b_ = "127.0.0.1:" + std::to_string(freePort());
    }
    geometry_.max_streams = 16;
    geometry_.ring_bytes = 4096;
    geometry_.control_ring_bytes = 64 * 1024;
    geometry_.recv_depth = 1024;
    geometry_.keepalive_timeout_ms = 120000;
  }

  void TearDown() override {
    a_.reset();
    b_.reset();
    servers_.clear();
    if (base_) event_base_free(base_);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  bool isShm() const { return GetParam().kind == wire::FabricKind::kShm; }

  static uint16_t freePort() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)), 0);
    socklen_t len = sizeof(sin);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &len);
    ::close(fd);
    return ntohs(sin.sin_port);
  }

  std::unique_ptr<Fabric> makeFabric() const { return isShm() ? makeShmFabric() : makeTcpFabric(); }

  SessionManagerOptions options(const std::string& self, const std::string& listen,
                                const std::string& peer, const std::string& peer_address) {
    SessionManagerOptions o;
    o.node_name = self;
    o.listen_address = listen;
    o.peers = {{peer, peer_address}};
    o.geometry = geometry_;
    // No keepalive traffic during a test: a stall must not be rescued by a ping.
    o.keepalive_interval = milliseconds(60000);
    o.connect_timeout = milliseconds(2000);
    o.max_backoff = milliseconds(100);
    return o;
  }

  void startA() {
    a_ = makeSessionManager(base_, makeFabric(), options("a", address_a_, "b", address_b_),
                            stats_a_, [](Stream&) -> StreamCallbacks* { return nullptr; });
    Status s = a_->start();
    ASSERT_TRUE(s.isOk()) << s.message();
  }

  void startB() {
    auto o = options("b", address_b_, "a", address_a_);
    if (b_max_streams_) o.geometry.max_streams = b_max_streams_;
    b_ = makeSessionManager(base_, makeFabric(), std::move(o), *stats_b_,
                            [this](Stream& s) { return acceptOnB(s); });
    Status s = b_->start();
    ASSERT_TRUE(s.isOk()) << s.message();
  }

  // Both up and established to each other.
  void startBoth() {
    startB();
    startA();
    ASSERT_TRUE(runUntil([&] { return established(); })) << "sessions did not come up";
  }

  bool established() {
    Session* sa = a_ ? a_->session("b") : nullptr;
    Session* sb = b_ ? b_->session("a") : nullptr;
    return sa && sb && sa->state() == Session::State::kEstablished &&
           sb->state() == Session::State::kEstablished;
  }

  StreamCallbacks* acceptOnB(Stream& s) {
    ++accepted_;
    if (refuse_) return nullptr;
    servers_.push_back(std::make_unique<Server>(s, server_mode_));
    Server* server = servers_.back().get();
    server->read_automatically = server_reads_;
    s.accept();
    return server;
  }

  void step() {
    if (sleep_when_idle_) {
      sleepOrSpin();
    } else {
      event_base_loop(base_, EVLOOP_NONBLOCK);
    }
    if (a_) a_->poll();
    if (b_) b_->poll();
    if (a_) a_->flush();
    if (b_) b_->flush();
  }

  // As the AdaptivePoller does it when its spin window closed: announce sleep and block in the
  // loop until a doorbell or socket fires. A watchdog timer catches a lost wake-up.
  void sleepOrSpin() {
    // What the test did since the last step (open, write, reset from outside any callback) goes
    // out first, as the poller's flush follows whatever a loop callback did.
    if (a_) a_->flush();
    if (b_) b_->flush();
    bool may_sleep = true;
    if (a_) may_sleep &= a_->prepareToSleep();
    if (b_) may_sleep &= b_->prepareToSleep();
    if (!may_sleep) {
      event_base_loop(base_, EVLOOP_NONBLOCK);
    } else {
      bool fired = false;
      event* watchdog = evtimer_new(
          base_, [](int, short, void* arg) { *static_cast<bool*>(arg) = true; }, &fired);
      timeval tv{1, 0};
      evtimer_add(watchdog, &tv);
      event_base_loop(base_, EVLOOP_ONCE);
      event_free(watchdog);
      if (fired) ++lost_wakeups_;
    }
    if (a_) a_->markAwake();
    if (b_) b_->markAwake();
  }

  bool runUntil(const std::function<bool()>& done, milliseconds timeout = kWait,
                const std::function<void()>& each_step = {}) {
    auto deadline = Clock::now() + timeout;
    while (!done()) {
      if (Clock::now() > deadline) return false;
      step();
      if (each_step) each_step();
    }
    return true;
  }

  // Runs `n` iterations (for "nothing happens" checks).
  void runSteps(int n) {
    for (int i = 0; i < n; ++i) step();
  }

  uint64_t statA(const char* name) { return stats_a_.gauge("session.b", name).value(); }
  uint64_t statB(const char* name) { return stats_b_->gauge("session.a", name).value(); }
  uint64_t counterA(const char* name) { return stats_a_.counter("session.b", name).value(); }
  uint64_t counterB(const char* name) { return stats_b_->counter("session.a", name).value(); }

  void expectNoActiveStreams() {
    bool idle = runUntil(
        [&] { return statA("streams_active") == 0 && (!b_ || statB("streams_active") == 0); });
    EXPECT_TRUE(idle) << "streams_active: a " << statA("streams_active") << ", b "
                      << (b_ ? statB("streams_active") : 0);
    EXPECT_EQ(a_->activeStreams(), 0u);
    if (b_) {
      EXPECT_EQ(b_->activeStreams(), 0u);
    }
  }

  Session& sessionA() { return *a_->session("b"); }

  event_base* base_ = nullptr;
  std::string dir_;
  std::string address_a_, address_b_;
  SessionGeometry geometry_;
  uint32_t b_max_streams_ = 0;  // 0: as geometry_
  StatsStore stats_a_;
  std::unique_ptr<StatsStore> stats_b_ = std::make_unique<StatsStore>();
  std::unique_ptr<SessionManager> a_;
  std::unique_ptr<SessionManager> b_;
  std::vector<std::unique_ptr<Server>> servers_;
  Server::Mode server_mode_ = Server::Mode::kEcho;
  bool server_reads_ = true;
  bool refuse_ = false;
  bool sleep_when_idle_ = false;
  int lost_wakeups_ = 0;
  int accepted_ = 0;
};

// ---------------------------------------------------------------- tests

TEST_P(SessionTest, EchoOneMebibyteThroughSmallRings) {
  startBoth();
  Client client(pattern(1, 1 << 20));
  client.finish_when_sent = true;
  ASSERT_TRUE(client.open(sessionA(), 8080, "spiffe://cluster.local/ns/x/sa/client"));
  ASSERT_TRUE(runUntil([&] { return client.done(); }))
      << "echo stalled: sent " << client.sent() << ", back " << client.received.size();
  EXPECT_FALSE(client.got_reset) << toString(client.reset_reason);
  EXPECT_TRUE(client.eof);
  ASSERT_EQ(client.received.size(), client.toSend().size());
  EXPECT_EQ(firstDifference(client.received, client.toSend()), -1);
  ASSERT_EQ(servers_.size(), 1u);
  EXPECT_EQ(servers_[0]->echoed, size_t{1} << 20);
  EXPECT_TRUE(servers_[0]->closed);
  EXPECT_EQ(counterA("bytes_sent"), size_t{1} << 20);
  EXPECT_EQ(counterA("bytes_received"), size_t{1} << 20);
  // 1 MiB through 4 KiB rings: at least 256 wrap-arounds, so many credit stalls.
  EXPECT_GE(counterA("writes_posted"), 256u);
  expectNoActiveStreams();
}

TEST_P(SessionTest, AcceptorSeesDestinationAndIdentity) {
  startBoth();
  Stream* accepted = nullptr;
  server_mode_ = Server::Mode::kSink;
  Client client;
  client.finish_when_sent = true;
  ASSERT_TRUE(client.open(sessionA(), 4242, "spiffe://cluster.local/ns/x/sa/me"));
  ASSERT_TRUE(runUntil([&] { return client.opened; }));
  ASSERT_EQ(servers_.size(), 1u);
  accepted = servers_[0]->stream;
  ASSERT_NE(accepted, nullptr);
  EXPECT_EQ(accepted->destination().toString(), "10.0.0.1:4242");
  EXPECT_EQ(accepted->identity(), "spiffe://cluster.local/ns/x/sa/me");
  EXPECT_EQ(client.stream->destination().toString(), "10.0.0.1:4242");
  // Finish both ways and close.
  ASSERT_TRUE(runUntil([&] { return servers_[0]->eof; }));
  accepted->finish();
  accepted->close();
  servers_[0]->stream = nullptr;
  ASSERT_TRUE(runUntil([&] { return client.done(); }));
  EXPECT_FALSE(client.got_reset);
  expectNoActiveStreams();
}

TEST_P(SessionTest, CreditsStopTheSenderUntilTheReceiverConsumes) {
  startBoth();
  server_mode_ = Server::Mode::kSink;
  server_reads_ = false;  // the receiver's app is stuck
  Client client(pattern(2, 64 * 1024));
  ASSERT_TRUE(client.open(sessionA()));
  ASSERT_TRUE(runUntil([&] { return client.opened; }));
  ASSERT_EQ(servers_.size(), 1u);
  Server& server = *servers_[0];

  // The sender fills exactly the receiver's ring and stops.
  ASSERT_TRUE(runUntil([&] { return server.stream->readable().size() == geometry_.ring_bytes; }))
      << "receiver has " << server.stream->readable().size();
  runSteps(200);
  EXPECT_EQ(client.sent(), geometry_.ring_bytes);
  EXPECT_TRUE(client.stream->writable().empty()) << "sender not stopped by credit";
  EXPECT_EQ(server.stream->readable().size(), geometry_.ring_bytes);
  EXPECT_EQ(client.writable_events, 0);
  EXPECT_GT(counterA("credit_stalls_total"), 0u);

  // Consuming less than half a ring returns no credit (credits are lazy).
  auto r = server.stream->readable();
  server.received.insert(server.received.end(), r.begin(), r.begin() + 1000);
  server.stream->consume(1000);
  runSteps(200);
  EXPECT_EQ(client.writable_events, 0);
  EXPECT_EQ(client.sent(), geometry_.ring_bytes);

  // Past half a ring: credit goes back, the sender hears onStreamWritable and resumes.
  r = server.stream->readable();
  server.received.insert(server.received.end(), r.begin(), r.begin() + 1100);
  server.stream->consume(1100);
  ASSERT_TRUE(runUntil([&] { return client.writable_events > 0; })) << "no onStreamWritable";
  ASSERT_TRUE(runUntil([&] { return client.sent() == geometry_.ring_bytes + 2100; }))
      << "sent " << client.sent();
  runSteps(100);
  EXPECT_EQ(client.sent(), geometry_.ring_bytes + 2100) << "wrote beyond its credit";

  // Now let the receiver read everything; the whole transfer completes intact.
  server.read_automatically = true;
  server.read();
  client.finish_when_sent = true;
  client.pump();
  ASSERT_TRUE(runUntil([&] { return server.eof; })) << "received " << server.received.size();
  EXPECT_EQ(firstDifference(server.received, client.toSend()), -1);
  server.stream->finish();
  server.stream->close();
  server.stream = nullptr;
  ASSERT_TRUE(runUntil([&] { return client.done(); }));
  EXPECT_FALSE(client.got_reset);
  expectNoActiveStreams();
}

TEST_P(SessionTest, HalfCloseDeliversEofAfterAllDataAndKeepsTheOtherDirection) {
  startBoth();
  server_mode_ = Server::Mode::kSink;
  Client client(pattern(3, 20000));  // several ring wraps before the FIN
  client.finish_when_sent = true;
  client.close_at_eof = false;
  ASSERT_TRUE(client.open(sessionA()));
  ASSERT_TRUE(runUntil([&] { return !servers_.empty() && servers_[0]->eof; }));
  Server& server = *servers_[0];
  EXPECT_EQ(server.received_at_eof, 20000u) << "EOF before the last byte";
  EXPECT_EQ(firstDifference(server.received, client.toSend()), -1);
  EXPECT_TRUE(server.stream->atEof());
  EXPECT_FALSE(client.eof);

  // The other direction still works after the FIN: the acceptor answers.
  auto reply = pattern(4, 30000);
  size_t written = 0;
  ASSERT_TRUE(runUntil([&] { return client.received.size() == reply.size(); }, kWait,
                       [&] {
                         if (written < reply.size() && server.stream) {
                           written += server.write(std::span(reply).subspan(written));
                         }
                       }))
      << "reply stalled at " << client.received.size();
  EXPECT_EQ(firstDifference(client.received, reply), -1);
  EXPECT_FALSE(client.eof);
  server.stream->finish();
  ASSERT_TRUE(runUntil([&] { return client.eof; }));
  EXPECT_EQ(client.received.size(), reply.size());
  // Writing after finish() is refused.
  EXPECT_TRUE(server.stream->writable().empty());
  EXPECT_TRUE(client.stream->writable().empty());

  client.stream->close();
  client.stream = nullptr;
  server.stream->close();
  server.stream = nullptr;
  expectNoActiveStreams();
}

TEST_P(SessionTest, ResetReachesThePeerInBothDirections) {
  startBoth();
  server_mode_ = Server::Mode::kSink;
  // The opener resets.
  {
    Client client(pattern(5, 3000));
    ASSERT_TRUE(client.open(sessionA()));
    ASSERT_TRUE(
        runUntil([&] { return !servers_.empty() && servers_.back()->received.size() == 3000; }));
    client.stream->reset(ResetReason::kLocalReset);
    client.stream = nullptr;
    Server& server = *servers_.back();
    ASSERT_TRUE(runUntil([&] { return server.got_reset; }));
    EXPECT_EQ(server.reset_reason, ResetReason::kLocalReset);
    EXPECT_FALSE(client.got_reset) << "no callbacks after the user's own reset()";
  }
  expectNoActiveStreams();
  // The acceptor resets.
  {
    Client client(pattern(6, 3000));
    ASSERT_TRUE(client.open(sessionA()));
    ASSERT_TRUE(
        runUntil([&] { return servers_.size() == 2 && servers_.back()->received.size() == 3000; }));
    Server& server = *servers_.back();
    server.stream->reset(ResetReason::kUpstreamRefused);
    server.stream = nullptr;
    ASSERT_TRUE(runUntil([&] { return client.got_reset; }));
    EXPECT_EQ(client.reset_reason, ResetReason::kUpstreamRefused);
    EXPECT_FALSE(server.got_reset);
  }
  expectNoActiveStreams();
  // Each side reset one stream itself.
  EXPECT_EQ(counterA("streams_reset_total"), 1u);
  EXPECT_EQ(counterB("streams_reset_total"), 1u);
}

TEST_P(SessionTest, SlotsAreReusedAfterResetAndClose) {
  geometry_.max_streams = 8;
  startBoth();
  // 3 * max_streams streams one after the other, ending in turn by opener reset, acceptor reset
  // and graceful close: with slots leaking, the 9th open would fail.
  for (int i = 0; i < 3 * 8; ++i) {
    SCOPED_TRACE("stream " + std::to_string(i));
    Client client(pattern(100 + i, 500 + i));
    client.finish_when_sent = (i % 3 == 2);
    ASSERT_TRUE(client.open(sessionA())) << "no free slot on the opener";
    size_t servers_before = servers_.size();
    if (i % 3 == 2) {
      ASSERT_TRUE(runUntil([&] { return client.done(); }));
      ASSERT_FALSE(client.got_reset) << toString(client.reset_reason);
    } else {
      ASSERT_TRUE(runUntil([&] { return client.received.size() == client.toSend().size(); }))
          << "got " << client.received.size() << ", reset " << client.got_reset << " "
          << toString(client.reset_reason);
      ASSERT_EQ(servers_.size(), servers_before + 1);
      Server& server = *servers_.back();
      if (i % 3 == 0) {
        client.stream->reset(ResetReason::kLocalReset);
        client.stream = nullptr;
        ASSERT_TRUE(runUntil([&] { return server.got_reset; }));
      } else {
        server.stream->reset(ResetReason::kLocalReset);
        server.stream = nullptr;
        ASSERT_TRUE(runUntil([&] { return client.got_reset; }));
      }
    }
    EXPECT_EQ(firstDifference(client.received, client.toSend()), -1);
  }
  EXPECT_EQ(accepted_, 24);
  expectNoActiveStreams();
}

TEST_P(SessionTest, RefusedStreamIsResetWithNoRoute) {
  startBoth();
  refuse_ = true;
  for (int i = 0; i < 3; ++i) {
    Client client(pattern(7, 100));
    ASSERT_TRUE(client.open(sessionA()));
    ASSERT_TRUE(runUntil([&] { return client.got_reset; }));
    EXPECT_EQ(client.reset_reason, ResetReason::kNoRoute);
    EXPECT_FALSE(client.opened);
  }
  EXPECT_EQ(accepted_, 3);
  expectNoActiveStreams();
}

TEST_P(SessionTest, OpenerGivingUpBeforeTheAckFreesBothSides) {
  startBoth();
  Client client(pattern(8, 100));
  ASSERT_TRUE(client.open(sessionA()));
  // Reset before the OPEN_ACK could have arrived.
  client.stream->reset(ResetReason::kLocalReset);
  client.stream = nullptr;
  ASSERT_TRUE(runUntil([&] { return !servers_.empty() && servers_[0]->got_reset; }));
  EXPECT_EQ(servers_[0]->reset_reason, ResetReason::kLocalReset);
  expectNoActiveStreams();
}

TEST_P(SessionTest, StreamsExhaustedOnEitherSide) {
  geometry_.max_streams = 8;
  b_max_streams_ = 4;
  startBoth();
  server_mode_ = Server::Mode::kSink;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 5; ++i) {
    clients.push_back(std::make_unique<Client>());
    ASSERT_TRUE(clients.back()->open(sessionA()));
  }
  // b has 4 slots: four streams open, the fifth is refused.
  ASSERT_TRUE(runUntil([&] {
    return std::all_of(clients.begin(), clients.end(),
                       [](auto& c) { return c->opened || c->got_reset; });
  }));
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(clients[i]->opened) << i;
  EXPECT_TRUE(clients[4]->got_reset);
  EXPECT_EQ(clients[4]->reset_reason, ResetReason::kStreamsExhausted);
  EXPECT_EQ(counterB("streams_refused_total"), 1u);

  // a has 8 slots, 4 in use: four more opens are taken locally, the ninth is not.
  std::vector<std::unique_ptr<Client>> more;
  for (int i = 0; i < 4; ++i) {
    more.push_back(std::make_unique<Client>());
    ASSERT_TRUE(more.back()->open(sessionA())) << i;
  }
  Client extra;
  EXPECT_FALSE(extra.open(sessionA()));
  EXPECT_EQ(counterA("streams_refused_total"), 1u);
  ASSERT_TRUE(runUntil(
      [&] { return std::all_of(more.begin(), more.end(), [](auto& c) { return c->got_reset; }); }));
  for (auto& c : more) EXPECT_EQ(c->reset_reason, ResetReason::kStreamsExhausted);

  for (int i = 0; i < 4; ++i) {
    clients[i]->stream->reset(ResetReason::kLocalReset);
    clients[i]->stream = nullptr;
  }
  ASSERT_TRUE(runUntil([&] {
    return std::all_of(servers_.begin(), servers_.end(), [](auto& s) { return s->got_reset; });
  }));
  expectNoActiveStreams();
}

TEST_P(SessionTest, ManyConcurrentStreamsStayIntactAndInOrder) {
  geometry_.max_streams = 256;
  startBoth();
  constexpr int kStreams = 200;
  constexpr size_t kBytes = 16 * 1024;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < kStreams; ++i) {
    clients.push_back(std::make_unique<Client>(pattern(1000 + i, kBytes)));
    clients.back()->finish_when_sent = true;
    // Small, odd-sized chunks so that the streams' writes interleave on the fabric.
    clients.back()->max_chunk = 97 + i % 50;
    ASSERT_TRUE(clients.back()->open(sessionA(), static_cast<uint16_t>(10000 + i)));
  }
  auto all_done = [&] {
    return std::all_of(clients.begin(), clients.end(), [](auto& c) { return c->done(); });
  };
  bool finished = runUntil(all_done, kWait, [&] {
    for (auto& c : clients) c->pump(/*once=*/true);
  });
  int incomplete = 0;
  for (int i = 0; i < kStreams; ++i) {
    Client& c = *clients[i];
    if (!c.done()) ++incomplete;
    EXPECT_FALSE(c.got_reset) << "stream " << i << ": " << toString(c.reset_reason);
    EXPECT_EQ(c.received.size(), kBytes) << "stream " << i;
    EXPECT_EQ(firstDifference(c.received, c.toSend()), -1) << "stream " << i;
  }
  ASSERT_TRUE(finished) << incomplete << " of " << kStreams << " streams did not finish";
  EXPECT_EQ(accepted_, kStreams);
  for (int i = 0; i < kStreams; ++i) {
    EXPECT_EQ(servers_[i]->echoed, kBytes);
  }
  expectNoActiveStreams();
}

TEST_P(SessionTest, ManySmallWritesInOneIteration) {
  // Thousands of tiny writes posted in one loop iteration: the receiver must drain all of
  // them even when no further bytes arrive to wake it.
  constexpr int kStreams = 64;
  constexpr size_t kBytes = 256;
  geometry_.max_streams = kStreams;
  geometry_.recv_depth = 32768;
  startBoth();
  server_mode_ = Server::Mode::kSink;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < kStreams; ++i) {
    clients.push_back(std::make_unique<Client>(pattern(2000 + i, kBytes)));
    clients.back()->max_chunk = 1;
    ASSERT_TRUE(clients.back()->open(sessionA()));
  }
  ASSERT_TRUE(runUntil([&] {
    return std::all_of(clients.begin(), clients.end(), [](auto& c) { return c->opened; });
  }));
  // The OPEN_ACKs arrive together, and each onStreamOpened() writes its whole payload one byte
  // per write: thousands of small frames in one flush.
  ASSERT_TRUE(runUntil(
      [&] {
        return servers_.size() == kStreams &&
               std::all_of(servers_.begin(), servers_.end(),
                           [](auto& s) { return s->received.size() == kBytes; });
      },
      milliseconds(3000)))
      << "not every byte arrived (frames left buffered with nothing to wake the loop?)";
  for (int i = 0; i < kStreams; ++i) {
    EXPECT_EQ(firstDifference(servers_[i]->received, clients[i]->toSend()), -1);
  }
  for (auto& c : clients) {
    c->stream->reset(ResetReason::kLocalReset);
    c->stream = nullptr;
  }
  ASSERT_TRUE(runUntil([&] {
    return std::all_of(servers_.begin(), servers_.end(), [](auto& s) { return s->got_reset; });
  }));
  expectNoActiveStreams();
}

TEST_P(SessionTest, PeerGoneResetsStreamsWithSessionLost) {
  startBoth();
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<Client>(pattern(i, 1000)));
    ASSERT_TRUE(clients.back()->open(sessionA()));
  }
  ASSERT_TRUE(runUntil([&] {
    return std::all_of(clients.begin(), clients.end(),
                       [](auto& c) { return c->received.size() == 1000; });
  }));
  EXPECT_EQ(statA("streams_active"), 3u);
  uint64_t disconnects = counterA("disconnects_total");

  b_.reset();  // node b goes away
  ASSERT_TRUE(runUntil([&] {
    return std::all_of(clients.begin(), clients.end(), [](auto& c) { return c->got_reset; });
  })) << "streams on a did not hear that b is gone";
  for (auto& c : clients) EXPECT_EQ(c->reset_reason, ResetReason::kSessionLost);
  EXPECT_NE(sessionA().state(), Session::State::kEstablished);
  EXPECT_EQ(counterA("disconnects_total"), disconnects + 1);
  EXPECT_EQ(statA("streams_active"), 0u);
  EXPECT_EQ(a_->activeStreams(), 0u);
  expectNoActiveStreams();
}

TEST_P(SessionTest, ReconnectsAfterThePeerComesBack) {
  startBoth();
  {
    Client client(pattern(9, 2000));
    client.finish_when_sent = true;
    ASSERT_TRUE(client.open(sessionA()));
    ASSERT_TRUE(runUntil([&] { return client.done(); }));
    EXPECT_FALSE(client.got_reset);
  }
  Client doomed(pattern(10, 10));
  ASSERT_TRUE(doomed.open(sessionA()));
  ASSERT_TRUE(runUntil([&] { return doomed.received.size() == 10; }));

  b_.reset();
  servers_.clear();
  ASSERT_TRUE(runUntil([&] { return doomed.got_reset; }));
  EXPECT_EQ(doomed.reset_reason, ResetReason::kSessionLost);
  EXPECT_NE(sessionA().state(), Session::State::kEstablished);

  // A new b at the same address: a dials again and the session comes back.
  stats_b_ = std::make_unique<StatsStore>();
  startB();
  ASSERT_TRUE(runUntil([&] { return established(); })) << "a did not reconnect";
  EXPECT_EQ(counterA("connects_total"), 2u);

  Client client(pattern(11, 100000));
  client.finish_when_sent = true;
  ASSERT_TRUE(client.open(sessionA()));
  ASSERT_TRUE(runUntil([&] { return client.done(); }));
  EXPECT_FALSE(client.got_reset) << toString(client.reset_reason);
  EXPECT_EQ(firstDifference(client.received, client.toSend()), -1);
  expectNoActiveStreams();
}

TEST_P(SessionTest, StreamOpenedBeforeTheSessionIsUpGoesOutOnConnect) {
  startA();  // b is not there yet
  Client client(pattern(12, 5000));
  client.finish_when_sent = true;
  ASSERT_TRUE(client.open(sessionA()));
  EXPECT_NE(sessionA().state(), Session::State::kEstablished);
  startB();
  ASSERT_TRUE(runUntil([&] { return client.done(); }));
  EXPECT_FALSE(client.got_reset) << toString(client.reset_reason);
  EXPECT_EQ(firstDifference(client.received, client.toSend()), -1);
  expectNoActiveStreams();
}

TEST_P(SessionTest, SleepingLoopLosesNoWakeups) {
  startBoth();
  sleep_when_idle_ = true;
  // One long echo, then many streams at once, with the loop blocking whenever it may.
  Client big(pattern(14, 256 * 1024));
  big.finish_when_sent = true;
  ASSERT_TRUE(big.open(sessionA()));
  ASSERT_TRUE(runUntil([&] { return big.done(); }));
  EXPECT_FALSE(big.got_reset);
  EXPECT_EQ(firstDifference(big.received, big.toSend()), -1);

  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 12; ++i) {
    clients.push_back(std::make_unique<Client>(pattern(3000 + i, 10000 + 777 * i)));
    clients.back()->finish_when_sent = true;
    clients.back()->max_chunk = 300;
    ASSERT_TRUE(clients.back()->open(sessionA()));
  }
  ASSERT_TRUE(runUntil([&] {
    return std::all_of(clients.begin(), clients.end(), [](auto& c) { return c->done(); });
  }));
  for (auto& c : clients) {
    EXPECT_FALSE(c->got_reset);
    EXPECT_EQ(firstDifference(c->received, c->toSend()), -1);
  }
  EXPECT_EQ(lost_wakeups_, 0) << "the loop slept with work pending (rescued by the watchdog)";
  expectNoActiveStreams();
}

TEST_P(SessionTest, DestroyedManagersLeaveNoEventsBehind) {
  startBoth();
  Client client(pattern(13, 1000));
  ASSERT_TRUE(client.open(sessionA()));
  ASSERT_TRUE(runUntil([&] { return client.received.size() == 1000; }));
  // The dialer goes first, with its session up: nothing of it may stay armed on the loop (a
  // retry timer left behind would fire into freed memory).
  a_.reset();
  EXPECT_FALSE(client.got_reset) << "no callbacks from a manager being destroyed";
  ASSERT_TRUE(runUntil([&] { return b_->session("a")->state() != Session::State::kEstablished; }));
  b_.reset();
  servers_.clear();
  EXPECT_EQ(event_base_get_num_events(base_, EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE), 0);
}

INSTANTIATE_TEST_SUITE_P(Fabrics, SessionTest,
                         ::testing::Values(FabricParam{"shm", wire::FabricKind::kShm},
                                           FabricParam{"tcp", wire::FabricKind::kTcp}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace rdmesh::transport
