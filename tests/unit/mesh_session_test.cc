// Mesh mode sessions end to end in one process: two sidecars' MeshSessionManagers (pods
// 10.0.0.1 and 10.0.0.2) on one event_base, attached to an in-test node agent over a real
// node.sock. Sessions are dialed on demand per remote sidecar, carried by the agent (or brokered
// to shm), lost when the agent closes them or goes away, and redialed when a stream needs them.
#include <event2/event.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>

#include "fake_session_agent.h"
#include "rdmesh/common/stats.h"
#include "rdmesh/transport/mesh_session_manager.h"
#include "stream_users.h"

namespace rdmesh::transport {
namespace {

using std::chrono::milliseconds;
using testing::FakeSessionAgent;
using namespace test_streams;  // NOLINT(google-build-using-namespace): test helpers
using Clock = std::chrono::steady_clock;

constexpr milliseconds kWait{15000};
constexpr const char* kToB = "10.0.0.2@node-a";
constexpr const char* kToA = "10.0.0.1@node-a";

class MeshSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = event_base_new();
    path_ = "/tmp/rdmesh-mesh-session-test-" + std::to_string(::getpid()) + ".sock";
    startAgent();
    geometry_.max_streams = 16;
    geometry_.ring_bytes = 64 * 1024;
    geometry_.control_ring_bytes = 64 * 1024;
    geometry_.recv_depth = 256;
    geometry_.keepalive_timeout_ms = 120000;
  }

  void TearDown() override {
    a_.reset();
    b_.reset();
    servers_.clear();
    agent_.reset();
    event_base_free(base_);
  }

  void startAgent() {
    agent_ = std::make_unique<FakeSessionAgent>(path_, "node-a");
    // The in-test agent knows sidecars by the name in their Hello (our node name here), so
    // each sidecar gets a distinct one.
    agent_->pod("node-a", "10.0.0.1");
    agent_->pod("node-a-b", "10.0.0.2");
  }

  std::unique_ptr<SessionManager> make(const std::string& hello_name, const std::string& ip,
                                       StatsStore& stats, AcceptHandler on_accept) {
    AgentFabricOptions fo;
    fo.socket_path = path_;
    fo.region = {256, roundUpToPowerOfTwo(geometry_.recv_depth), 0, 256 << 10};
    MeshSessionManagerOptions o;
    o.node_name = hello_name;
    o.pod_ips = {ip};
    o.geometry = geometry_;
    o.keepalive_interval = keepalive_interval_;
    o.idle_timeout = hello_name == "node-a" ? idle_timeout_a_ : idle_timeout_b_;
    o.connect_timeout = milliseconds(2000);
    o.max_backoff = milliseconds(100);
    auto m = makeMeshSessionManager(base_, makeAgentFabric(fo), std::move(o), stats,
                                    std::move(on_accept));
    Status s = m->start();
    EXPECT_TRUE(s.isOk()) << s.message();
    return m;
  }

  void startBoth() {
    a_ = make("node-a", "10.0.0.1", stats_a_, [this](Stream& s) { return accept(s); });
    b_ = make("node-a-b", "10.0.0.2", stats_b_, [this](Stream& s) { return accept(s); });
    ASSERT_TRUE(runUntil([&] {
      return stats_a_.gauge("mesh.listener", "up").value() == 1 &&
             stats_b_.gauge("mesh.listener", "up").value() == 1;
    })) << "listeners not up";
  }

  StreamCallbacks* accept(Stream& s) {
    servers_.push_back(std::make_unique<Server>(s, Server::Mode::kEcho));
    s.accept();
    return servers_.back().get();
  }

  void step() {
    event_base_loop(base_, EVLOOP_NONBLOCK);
    for (SessionManager* m : {a_.get(), b_.get()}) {
      if (m) m->poll();
    }
    for (SessionManager* m : {a_.get(), b_.get()}) {
      if (m) m->flush();
    }
  }

  bool runUntil(const std::function<bool()>& done, milliseconds timeout = kWait) {
    auto deadline = Clock::now() + timeout;
    while (!done()) {
      if (Clock::now() > deadline) return false;
      step();
    }
    return true;
  }

  // Echoes `bytes` from a to b (or b to a) over a new stream; true when everything came back
  // intact.
  bool echo(size_t bytes, uint32_t seed, bool from_b = false) {
    Session* s = from_b ? b_->session(kToA) : a_->session(kToB);
    if (s == nullptr) return false;
    Client client(pattern(seed, bytes));
    client.finish_when_sent = true;
    if (!client.open(*s)) return false;
    if (!runUntil([&] { return client.done(); })) return false;
    EXPECT_FALSE(client.got_reset) << "reset " << static_cast<int>(client.reset_reason);
    return !client.got_reset && firstDifference(client.received, client.toSend()) == -1;
  }

  std::string fabricStat(StatsStore& stats, const char* key) {
    auto texts = stats.snapshot().texts;
    auto it = texts.find(std::string("rdmesh.session.") + key + ".fabric");
    return it == texts.end() ? "" : it->second;
  }

  static uint64_t counter(StatsStore& stats, const char* key, const char* name) {
    return stats.counter(std::string("session.") + key, name).value();
  }
  static bool idleClosing(StatsStore& stats, const char* key) {
    return stats.gauge(std::string("session.") + key, "idle_closing").value() == 1;
  }

  // Runs the loop for `span` (for checks that something does NOT happen).
  void runFor(milliseconds span) {
    auto until = Clock::now() + span;
    while (Clock::now() < until) step();
  }

  event_base* base_ = nullptr;
  std::string path_;
  milliseconds keepalive_interval_{60000};
  milliseconds idle_timeout_a_{0};
  milliseconds idle_timeout_b_{0};
  std::unique_ptr<FakeSessionAgent> agent_;
  SessionGeometry geometry_;
  StatsStore stats_a_;
  StatsStore stats_b_;
  std::unique_ptr<SessionManager> a_;
  std::unique_ptr<SessionManager> b_;
  std::vector<std::unique_ptr<Server>> servers_;
};

TEST_F(MeshSessionTest, TheFirstStreamDialsTheSessionAndEchoesThroughTheAgent) {
  startBoth();
  EXPECT_TRUE(echo(300 * 1024, 1));
  EXPECT_EQ(agent_->activeSessions(), 1u);
  EXPECT_GT(agent_->counters().bytes_moved, 2 * 300 * 1024u);
  EXPECT_EQ(fabricStat(stats_a_, kToB), "agent");
  EXPECT_EQ(fabricStat(stats_b_, kToA), "agent");  // keyed by the offer's peer_ip@peer_node
  // A second stream reuses the session.
  EXPECT_TRUE(echo(1000, 2));
  EXPECT_EQ(agent_->counters().sessions_paired, 1u);
}

TEST_F(MeshSessionTest, SameNodePeersGoOverShmNotThroughTheAgent) {
  agent_->setShmMode(true);
  startBoth();
  EXPECT_TRUE(echo(200 * 1024, 3));
  EXPECT_EQ(agent_->counters().submissions_moved, 0u);
  EXPECT_EQ(fabricStat(stats_a_, kToB), "shm");
}

TEST_F(MeshSessionTest, SimultaneousOpenKeepsTheLowerPodIpsSession) {
  agent_->holdOffersUntilOpens(2);  // however the threads are scheduled, both dial first
  startBoth();
  Session* sa = a_->session(kToB);
  Session* sb = b_->session(kToA);
  ASSERT_TRUE(sa && sb);
  ASSERT_TRUE(runUntil([&] {
    return sa->state() == Session::State::kEstablished &&
           sb->state() == Session::State::kEstablished;
  }));
  // Let any late dial or accept finish, then check that one session is left and it works.
  ASSERT_TRUE(runUntil([&] { return agent_->ops().size() >= 6; }));  // 2 listen, 2 open, ...
  for (int i = 0; i < 50; ++i) step();
  EXPECT_EQ(agent_->activeSessions(), 1u);
  EXPECT_GE(agent_->counters().refusals, 1u) << "the lower IP refuses the higher one's offer";
  EXPECT_EQ(sa->state(), Session::State::kEstablished);
  EXPECT_EQ(sb->state(), Session::State::kEstablished);
  EXPECT_TRUE(echo(100 * 1024, 4));
}

TEST_F(MeshSessionTest, AClosedSessionResetsItsStreamsAndIsRedialedWhenNeeded) {
  startBoth();
  Session* s = a_->session(kToB);
  Client client(pattern(5, 64 * 1024));
  ASSERT_TRUE(client.open(*s));
  ASSERT_TRUE(runUntil([&] { return client.opened; }));
  agent_->closeAllSessions();
  ASSERT_TRUE(runUntil([&] { return client.got_reset; })) << "stream survived its session";
  EXPECT_EQ(client.reset_reason, ResetReason::kSessionLost);
  EXPECT_TRUE(echo(10 * 1024, 6)) << "no redial";
  EXPECT_EQ(agent_->counters().sessions_paired, 2u);
}

TEST_F(MeshSessionTest, ARestartedAgentIsReattached) {
  startBoth();
  ASSERT_TRUE(echo(10 * 1024, 7));
  agent_.reset();  // every connection hangs up
  ASSERT_TRUE(runUntil([&] {
    return stats_a_.gauge("mesh.listener", "up").value() == 0 &&
           a_->session(kToB)->state() != Session::State::kEstablished;
  }));
  startAgent();
  ASSERT_TRUE(runUntil([&] {
    return stats_a_.counter("mesh.listener", "connects_total").value() == 2 &&
           stats_b_.counter("mesh.listener", "connects_total").value() == 2;
  })) << "listeners not re-established";
  EXPECT_EQ(stats_a_.gauge("mesh.listener", "up").value(), 1u);
  EXPECT_TRUE(echo(10 * 1024, 8));
}

TEST_F(MeshSessionTest, AStreamToAPodNobodyListensForIsResetPromptly) {
  startBoth();
  Session* s = a_->session("10.0.0.9@node-a");
  ASSERT_NE(s, nullptr);
  Client client;
  ASSERT_TRUE(client.open(*s));
  auto started = Clock::now();
  ASSERT_TRUE(runUntil([&] { return client.got_reset; }));
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(3));
  EXPECT_EQ(client.reset_reason, ResetReason::kSessionLost);
  EXPECT_EQ(a_->session("not-an-address"), nullptr);
}

// ---------------------------------------------------------------- idle close (IDLE_CLOSE)

TEST_F(MeshSessionTest, AnIdleSessionIsClosedByAgreementAndRedialedForTheNextStream) {
  keepalive_interval_ = milliseconds(20);
  idle_timeout_a_ = idle_timeout_b_ = milliseconds(150);
  startBoth();
  ASSERT_TRUE(echo(64 * 1024, 11));
  ASSERT_EQ(agent_->activeSessions(), 1u);
  // Both sides may ask at once; either way the session goes, without a disconnect or a reset.
  ASSERT_TRUE(runUntil([&] {
    return agent_->activeSessions() == 0 && counter(stats_a_, kToB, "idle_closes_total") == 1 &&
           counter(stats_b_, kToA, "idle_closes_total") == 1;
  })) << "idle session kept";
  for (StatsStore* stats : {&stats_a_, &stats_b_}) {
    const char* key = stats == &stats_a_ ? kToB : kToA;
    EXPECT_EQ(counter(*stats, key, "disconnects_total"), 0u) << key;
    EXPECT_EQ(counter(*stats, key, "streams_reset_total"), 0u) << key;
    EXPECT_FALSE(idleClosing(*stats, key)) << key;
  }
  EXPECT_EQ(a_->session(kToB)->state(), Session::State::kConnecting);
  // The next stream dials a new session, from either side.
  EXPECT_TRUE(echo(32 * 1024, 12, /*from_b=*/true));
  EXPECT_EQ(agent_->counters().sessions_paired, 2u);
}

TEST_F(MeshSessionTest, ASessionWithAnOpenStreamIsNotClosedWhileIdle) {
  keepalive_interval_ = milliseconds(20);
  idle_timeout_a_ = idle_timeout_b_ = milliseconds(60);
  startBoth();
  Session* s = a_->session(kToB);
  Client client(pattern(13, 1024));
  ASSERT_TRUE(client.open(*s));
  ASSERT_TRUE(runUntil([&] { return client.opened && client.received.size() == 1024; }));
  runFor(milliseconds(400));  // many idle timeouts with a quiet but open stream
  EXPECT_EQ(counter(stats_a_, kToB, "idle_closes_total"), 0u);
  EXPECT_EQ(agent_->activeSessions(), 1u);
  EXPECT_FALSE(client.got_reset);
  client.finish_when_sent = true;
  client.pump();  // everything is sent: this finishes
  ASSERT_TRUE(runUntil([&] { return client.done(); }));
  EXPECT_FALSE(client.got_reset);
  ASSERT_TRUE(runUntil([&] { return counter(stats_a_, kToB, "idle_closes_total") == 1; }));
}

// A stream opened while its side has asked to close is held, not lost, and carried by the next
// session.
TEST_F(MeshSessionTest, AStreamOpenedByTheAskerDuringAnIdleCloseGoesOnTheNextSession) {
  keepalive_interval_ = milliseconds(20);
  idle_timeout_a_ = milliseconds(100);  // only a asks
  startBoth();
  ASSERT_TRUE(echo(1024, 14));
  ASSERT_TRUE(runUntil([&] { return idleClosing(stats_a_, kToB); }));
  EXPECT_TRUE(echo(48 * 1024, 15));
  EXPECT_EQ(counter(stats_a_, kToB, "idle_closes_total"), 1u);
  EXPECT_EQ(counter(stats_a_, kToB, "streams_reset_total"), 0u);
  EXPECT_EQ(agent_->counters().sessions_paired, 2u);
}

TEST_F(MeshSessionTest, AStreamOpenedByTheConfirmingSideDuringAnIdleCloseGoesOnTheNextSession) {
  keepalive_interval_ = milliseconds(20);
  idle_timeout_a_ = milliseconds(100);  // a asks, b confirms
  startBoth();
  ASSERT_TRUE(echo(1024, 16));
  ASSERT_TRUE(runUntil([&] { return idleClosing(stats_b_, kToA); }));
  EXPECT_TRUE(echo(48 * 1024, 17, /*from_b=*/true));
  EXPECT_EQ(counter(stats_b_, kToA, "idle_closes_total"), 1u);
  EXPECT_EQ(counter(stats_b_, kToA, "streams_reset_total"), 0u);
  EXPECT_EQ(agent_->counters().sessions_paired, 2u);
}

// Streams opened from both sides at every moment around repeated idle closes: none is lost,
// whichever of request, refusal or confirmation it meets.
TEST_F(MeshSessionTest, StreamsRacingIdleClosesAreNeverLost) {
  keepalive_interval_ = milliseconds(5);
  idle_timeout_a_ = idle_timeout_b_ = milliseconds(10);
  startBoth();
  for (uint32_t i = 0; i < 40; ++i) {
    ASSERT_TRUE(echo(512 + i * 97, 100 + i, /*from_b=*/i % 2 == 1)) << "round " << i;
    runFor(milliseconds(i % 7 * 3));  // land on different points of the close
  }
  EXPECT_GT(counter(stats_a_, kToB, "idle_closes_total"), 0u);
  EXPECT_EQ(counter(stats_a_, kToB, "streams_reset_total"), 0u);
  EXPECT_EQ(counter(stats_b_, kToA, "streams_reset_total"), 0u);
  EXPECT_EQ(counter(stats_a_, kToB, "disconnects_total"), 0u);
  EXPECT_EQ(counter(stats_b_, kToA, "disconnects_total"), 0u);
}

TEST_F(MeshSessionTest, IdleCloseAlsoEndsSameNodeShmSessions) {
  agent_->setShmMode(true);
  keepalive_interval_ = milliseconds(20);
  idle_timeout_a_ = idle_timeout_b_ = milliseconds(100);
  startBoth();
  ASSERT_TRUE(echo(16 * 1024, 18));
  ASSERT_TRUE(runUntil([&] {
    return counter(stats_a_, kToB, "idle_closes_total") == 1 &&
           counter(stats_b_, kToA, "idle_closes_total") == 1;
  }));
  EXPECT_EQ(counter(stats_a_, kToB, "disconnects_total"), 0u);
  EXPECT_TRUE(echo(16 * 1024, 19));
}

}  // namespace
}  // namespace rdmesh::transport
