// The node agent's session switch (node/src/fabric_module.*) end to end in one process: two
// agents ("node-a", "node-b") on one event loop, joined by the stream test double of PairLink
// over real TCP on 127.0.0.1, their node.sock servers on real SOCK_SEQPACKET sockets, and
// sidecars emulated with real memfd regions and eventfds (tests/common/fake_sidecar.h).
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <future>
#include <thread>

#include "../common/fake_sidecar.h"
#include "../common/stream_link.h"
#include "fabric_module.h"
#include "link_control.h"
#include "node_socket_server.h"
#include "rdmesh/common/hex.h"
#include "rdmesh/common/task_queue.h"
#include "sidecar_region.h"

namespace rdmesh::node {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::FakeRegion;
using testing::NodeSocketClient;
namespace aw = wire::agent;

bool waitUntil(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 5s) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

std::vector<std::byte> bytesOf(const std::string& s) {
  std::vector<std::byte> out(s.size());
  std::memcpy(out.data(), s.data(), s.size());
  return out;
}

std::string helloHex(const std::string& node) {
  return toHex(transport::encodeHello(testing::smallHello(node)));
}

// ---------------------------------------------------------------------------------------------
// Pure parts: region layout checks and the agent-to-agent control messages.

class RegionLayoutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = FakeRegion::create(testing::smallHello("node-a"));
    ASSERT_TRUE(r);
    good_ = (*r)->layout();
    req_ = RegionRequirements::of(testing::smallHello("node-a"));
  }
  std::string errorFor(const std::function<void(aw::RegionLayout&)>& edit) {
    aw::RegionLayout l = good_;
    edit(l);
    Status s = validateRegionLayout(l, good_.region_bytes, req_);
    return s ? std::string() : s.message();
  }
  aw::RegionLayout good_{};
  RegionRequirements req_;
};

TEST_F(RegionLayoutTest, AcceptsTheContractLayout) {
  EXPECT_EQ(errorFor([](aw::RegionLayout&) {}), "");
}

TEST_F(RegionLayoutTest, RejectsEachBrokenFieldByName) {
  EXPECT_NE(errorFor([](auto& l) { l.magic = 1; }).find("bad magic"), std::string::npos);
  EXPECT_NE(errorFor([](auto& l) { l.version = 2; }).find("version 2"), std::string::npos);
  EXPECT_NE(errorFor([](auto& l) { l.sq_depth = 100; }).find("sq_depth 100"), std::string::npos);
  EXPECT_NE(errorFor([](auto& l) { l.cq_depth = 1u << 17; }).find("cq_depth"), std::string::npos);
  EXPECT_NE(errorFor([](auto& l) { l.cq_depth = 128; }).find("smaller than the Hello's recv_depth"),
            std::string::npos);
  EXPECT_NE(errorFor([](auto& l) { l.region_bytes += 4096; }).find("but the memfd holds"),
            std::string::npos);
  EXPECT_NE(errorFor([](auto& l) { l.cq_offset += 8; }).find("not a multiple of 4096"),
            std::string::npos);
  EXPECT_NE(errorFor([](auto& l) { l.cq_offset = l.sq_offset; }).find("overlaps"),
            std::string::npos);
  EXPECT_NE(errorFor([](auto& l) { l.staging_offset = l.region_bytes; }).find("outside"),
            std::string::npos);
  EXPECT_NE(errorFor([](auto& l) { l.receive_bytes = 4096; }).find("receive_bytes 4096"),
            std::string::npos);
  EXPECT_NE(errorFor([](auto& l) { l.staging_bytes = 4096; }).find("staging_bytes"),
            std::string::npos);
  EXPECT_NE(errorFor([](auto& l) { l.sq_offset = ~0ull - 4095; }).find("outside"),
            std::string::npos);
}

TEST(LinkControlTest, RoundTripsEveryMessage) {
  SessionMemory mem{{0x1000, 7, 1 << 20}, 8192, 65536};
  std::vector<LinkMessage> messages = {
      openMessage(3, "10.1.0.2", "10.1.0.1", bytesOf("hello"), mem),
      openMessage(4, "fd00::2", "", bytesOf("h"), mem),
      acceptedMessage(3, 9, bytesOf("hello back"), mem),
      refusedMessage(3, "no sidecar listens"),
      closeMessage(9, 3),
      closeMessage(linkwire::kUnknownSession, 3),
      closeAckMessage(3),
  };
  for (const LinkMessage& m : messages) {
    auto bytes = encodeLinkMessage(m);
    ASSERT_TRUE(bytes) << toString(m.type);
    auto parsed = parseLinkMessage(*bytes);
    ASSERT_TRUE(parsed) << toString(m.type) << ": " << parsed.status().message();
    EXPECT_EQ(*parsed, m) << toString(m.type);
  }
}

TEST(LinkControlTest, RejectsMalformedMessages) {
  SessionMemory mem{{0, 7, 1 << 20}, 8192, 65536};
  auto good = *encodeLinkMessage(openMessage(3, "10.1.0.2", "", bytesOf("hello"), mem));
  auto expectError = [](std::vector<std::byte> b, const std::string& what) {
    auto parsed = parseLinkMessage(b);
    ASSERT_FALSE(parsed) << what;
    EXPECT_NE(parsed.status().message().find(what), std::string::npos) << parsed.status().message();
  };
  auto truncated = good;
  truncated.pop_back();
  expectError(truncated, "expected");
  auto magic = good;
  magic[0] = std::byte{0};
  expectError(magic, "bad magic");
  auto version = good;
  version[4] = std::byte{9};
  expectError(version, "version 9");
  auto type = good;
  type[5] = std::byte{77};
  expectError(type, "unknown type 77");
  SessionMemory outside{{0, 7, 4096}, 8192, 65536};
  expectError(*encodeLinkMessage(openMessage(3, "10.1.0.2", "", bytesOf("h"), outside)),
              "outside the 4096-byte registration");
  expectError(*encodeLinkMessage(closeAckMessage(70000)), "out of range");
  EXPECT_FALSE(encodeLinkMessage(openMessage(3, "not-an-ip", "", {}, mem)));
}

// ---------------------------------------------------------------------------------------------
// Two agents on one loop.

// Lets a test destroy an agent while the poller runs (the poller has no remove()).
struct PollSlot final : transport::Pollable {
  FabricModule* module = nullptr;
  bool poll() override { return module != nullptr && module->poll(); }
  void flush() override {
    if (module != nullptr) module->flush();
  }
  bool spinWorthwhile() const override { return module != nullptr && module->spinWorthwhile(); }
  bool prepareToSleep() override { return module == nullptr || module->prepareToSleep(); }
  void markAwake() override {
    if (module != nullptr) module->markAwake();
  }
};

struct Agent {
  PollSlot slot;
  std::string name;
  std::string socket_path;
  StatsStore stats;
  PodRegistry registry{""};
  OpTable ops;
  testing::StreamLinkDomain* domain = nullptr;
  std::unique_ptr<FabricModule> fabric;
  std::unique_ptr<NodeSocketServer> server;
};

class SessionSwitchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    evthread_use_pthreads();
    dir_ = std::filesystem::temp_directory_path() /
           ("rdmesh-switch-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    base_ = event_base_new();
    tasks_ = std::make_unique<TaskQueue>(base_);
    poller_ = std::make_unique<transport::AdaptivePoller>(base_, 20us);
    a_ = makeAgent("node-a");
    b_ = makeAgent("node-b");
    loop_ = std::thread([this] { poller_->run(); });
    onLoop([this] {
      a_->fabric->setPeers({{"node-b", "127.0.0.1:" + std::to_string(b_->domain->listenPort())}});
    });
    ASSERT_TRUE(waitUntil([&] { return stat(*a_, "node.links.up") == 1; }));
    ASSERT_TRUE(waitUntil([&] { return stat(*b_, "node.links.up") == 1; }));
  }

  void TearDown() override {
    onLoop([this] { poller_->stop(); });
    loop_.join();
    for (Agent* agent : {a_.get(), b_.get()}) {
      if (agent == nullptr) continue;
      agent->server.reset();
      agent->fabric.reset();
    }
    tasks_.reset();
    poller_.reset();
    event_base_free(base_);
    std::filesystem::remove_all(dir_);
  }

  virtual FabricOptions optionsFor(const std::string& name) {
    FabricOptions o;
    o.node_name = name;
    o.listen_address = "127.0.0.1:0";
    o.verify_caller_netns = false;
    o.offer_timeout = 2s;
    o.connect_timeout = 1s;
    return o;
  }
  virtual NetnsResolver resolver() {
    return [](const std::string&) -> Result<uint64_t> { return invalidArgument("not used"); };
  }

  std::unique_ptr<Agent> makeAgent(const std::string& name) {
    auto agent = std::make_unique<Agent>();
    agent->name = name;
    agent->socket_path = (dir_ / (name + ".sock")).string();
    auto domain = testing::makeStreamLinkDomain(name);
    agent->domain = domain.get();
    agent->fabric = std::make_unique<FabricModule>(base_, optionsFor(name), std::move(domain),
                                                   agent->registry, resolver(), agent->stats);
    EXPECT_TRUE(agent->fabric->start());
    agent->fabric->registerOps(agent->ops);
    agent->ops.add("ping", [](const RequestEnvelope&, RequestFds&) -> Result<json> {
      return json{{"pong", true}};
    });
    agent->server = std::make_unique<NodeSocketServer>(base_, agent->ops, agent->stats);
    EXPECT_TRUE(agent->server->listen(agent->socket_path));
    agent->slot.module = agent->fabric.get();
    poller_->add(&agent->slot);
    return agent;
  }

  void onLoop(const std::function<void()>& f) {
    std::promise<void> done;
    tasks_->post([&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }

  uint64_t stat(Agent& agent, const std::string& name) {
    uint64_t value = 0;
    onLoop([&] {
      if (agent.fabric) agent.fabric->refreshStats();
      for (const auto& e : agent.stats.snapshot().numbers) {
        if (e.name == "rdmesh." + name) value = e.value;
      }
    });
    return value;
  }

  NodeSocketClient connect(Agent& agent) {
    auto c = NodeSocketClient::connect(agent.socket_path);
    EXPECT_TRUE(c) << c.status().message();
    return std::move(*c);
  }

  // A listening sidecar for `ip` on `agent`.
  NodeSocketClient listen(Agent& agent, const std::string& ip) {
    NodeSocketClient c = connect(agent);
    auto reply = c.request({{"op", "session_listen"}, {"pod_ips", {ip}}});
    EXPECT_TRUE(reply && (*reply)["ok"] == true) << (reply ? reply->dump() : "");
    return c;
  }

  struct Session {
    NodeSocketClient conn;
    std::unique_ptr<FakeRegion> region;
    json reply;
  };

  // Opens a session from `from` to `ip` on `node`, accepted by `listener` (its agent `to`).
  Session open(Agent& from, const std::string& ip, const std::string& node, Agent& to,
               NodeSocketClient& listener, Session* acceptor) {
    Session s{connect(from), *FakeRegion::create(testing::smallHello(from.name)), {}};
    EXPECT_TRUE(s.conn.send({{"v", 1},
                             {"op", "session_open"},
                             {"destination_ip", ip},
                             {"node", node},
                             {"hello", helloHex(from.name)}},
                            s.region->fds()));
    auto offer = listener.receive(nullptr, 5s);
    EXPECT_TRUE(offer) << offer.status().message();
    if (!offer) return s;
    EXPECT_EQ((*offer)["event"], "offer") << offer->dump();
    EXPECT_EQ((*offer)["destination_ip"], ip);
    EXPECT_EQ((*offer)["peer_node"], from.name);
    EXPECT_EQ((*offer)["peer_hello"], helloHex(from.name));
    acceptor->conn = connect(to);
    acceptor->region = *FakeRegion::create(testing::smallHello(to.name));
    auto accepted = acceptor->conn.request({{"op", "session_accept"},
                                            {"offer_id", (*offer)["offer_id"]},
                                            {"hello", helloHex(to.name)}},
                                           acceptor->region->fds());
    EXPECT_TRUE(accepted);
    if (accepted) acceptor->reply = *accepted;
    auto reply = s.conn.receive(nullptr, 5s);
    EXPECT_TRUE(reply) << reply.status().message();
    if (reply) s.reply = *reply;
    return s;
  }

  std::filesystem::path dir_;
  event_base* base_ = nullptr;
  std::unique_ptr<TaskQueue> tasks_;
  std::unique_ptr<transport::AdaptivePoller> poller_;
  std::unique_ptr<Agent> a_, b_;
  std::thread loop_;
};

TEST_F(SessionSwitchTest, BytesCrossTheLinkIntoThePeersReceiveAreaWithTheV1Arrival) {
  NodeSocketClient listener = listen(*b_, "10.1.0.2");
  Session acceptor;
  Session opener = open(*a_, "10.1.0.2", "node-b", *b_, listener, &acceptor);
  ASSERT_EQ(opener.reply["ok"], true) << opener.reply.dump();
  EXPECT_EQ(opener.reply["mode"], "agent");
  EXPECT_EQ(opener.reply["peer_hello"], helloHex("node-b"));
  ASSERT_EQ(acceptor.reply["ok"], true) << acceptor.reply.dump();
  EXPECT_EQ(acceptor.reply["mode"], "agent");

  // a -> b
  std::string text = "bytes written once into staging";
  ASSERT_TRUE(opener.region->submit(4096, 1000, bytesOf(text), 7));
  auto arrival = acceptor.region->nextArrival(5s);
  ASSERT_TRUE(arrival);
  EXPECT_EQ(arrival->byte_len, text.size());
  EXPECT_EQ(arrival->imm, wire::encodeImm(wire::ImmType::kData, 7, text.size()));
  EXPECT_EQ(std::memcmp(acceptor.region->receiveArea().data() + 1000, text.data(), text.size()), 0);
  EXPECT_TRUE(opener.region->waitCompleted(5s));

  // b -> a, many writes (the agents sleep and are woken between them).
  for (int i = 0; i < 50; ++i) {
    std::string msg = "reply " + std::to_string(i);
    ASSERT_TRUE(acceptor.region->submit(i * 64, i * 64, bytesOf(msg), 3));
    auto back = opener.region->nextArrival(5s);
    ASSERT_TRUE(back) << i;
    EXPECT_EQ(back->imm, wire::encodeImm(wire::ImmType::kData, 3, msg.size()));
    EXPECT_EQ(std::memcmp(opener.region->receiveArea().data() + i * 64, msg.data(), msg.size()), 0);
  }
  EXPECT_EQ(stat(*a_, "node.datapath.submissions"), 1u);
  EXPECT_EQ(stat(*a_, "node.datapath.arrivals"), 50u);
  EXPECT_EQ(stat(*a_, "node.sessions.active"), 1u);
  EXPECT_EQ(stat(*b_, "node.sessions.open_fds"), 3u);
  EXPECT_EQ(stat(*b_, "node.sessions.registered_bytes"), acceptor.region->layout().region_bytes);
}

TEST_F(SessionSwitchTest, SidecarHangupClosesTheRemoteSessionAndReleasesEverything) {
  uint64_t fds_before = stat(*a_, "node.process.open_fds");
  NodeSocketClient listener = listen(*b_, "10.1.0.2");
  Session acceptor;
  Session opener = open(*a_, "10.1.0.2", "node-b", *b_, listener, &acceptor);
  ASSERT_EQ(opener.reply["ok"], true) << opener.reply.dump();
  // In-flight writes from a while b's sidecar goes away must not hit released memory (the test
  // double fails the link on a write into an unregistered key, like a QP's remote access error).
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(opener.region->submit(i * 128, i * 128, bytesOf("x")));
  acceptor.conn.close();
  EXPECT_TRUE(opener.conn.hungUp(5s));
  EXPECT_EQ(opener.region->header().closed.load(), 1u);
  ASSERT_TRUE(waitUntil([&] { return a_->domain->registrations() == 0; }));
  ASSERT_TRUE(waitUntil([&] { return b_->domain->registrations() == 0; }));
  EXPECT_EQ(stat(*a_, "node.sessions.open_fds"), 0u);
  EXPECT_EQ(stat(*a_, "node.sessions.registered_bytes"), 0u);
  EXPECT_EQ(stat(*b_, "node.sessions.open_fds"), 0u);
  EXPECT_EQ(stat(*b_, "node.sessions.registered_bytes"), 0u);
  EXPECT_EQ(stat(*a_, "node.links.up"), 1u);
  EXPECT_EQ(stat(*a_, "node.links.lost_total"), 0u);
  // Everything the agents held is closed once this process' own ends are (one process here).
  opener.conn.close();
  listener.close();
  opener.region.reset();
  acceptor.region.reset();
  EXPECT_TRUE(waitUntil([&] { return stat(*a_, "node.process.open_fds") <= fds_before; }))
      << stat(*a_, "node.process.open_fds") << " > " << fds_before;
}

TEST_F(SessionSwitchTest, BadSubmissionClosesThatSessionOnly) {
  NodeSocketClient listener = listen(*b_, "10.1.0.2");
  Session good_peer, bad_peer;
  Session good = open(*a_, "10.1.0.2", "node-b", *b_, listener, &good_peer);
  Session bad = open(*a_, "10.1.0.2", "node-b", *b_, listener, &bad_peer);
  ASSERT_EQ(bad.reply["ok"], true);
  uint64_t staging = bad.region->layout().staging_bytes;
  bad.region->submitRaw({staging - 8, 0, 16, wire::encodeImm(wire::ImmType::kData, 1, 16)});
  EXPECT_TRUE(bad.conn.hungUp(5s));
  EXPECT_TRUE(bad_peer.conn.hungUp(5s));
  EXPECT_EQ(bad_peer.region->header().closed.load(), 1u);
  EXPECT_EQ(stat(*a_, "node.sessions.bad_submissions_total"), 1u);
  // The other session on the same link carries on.
  ASSERT_TRUE(good.region->submit(0, 0, bytesOf("still here")));
  auto arrival = good_peer.region->nextArrival(5s);
  ASSERT_TRUE(arrival);
  EXPECT_EQ(arrival->byte_len, 10u);
  EXPECT_FALSE(good.conn.hungUp(50ms));
  // A remote range outside the peer's receive area is refused the same way.
  good.region->submitRaw({0, good_peer.region->layout().receive_bytes - 4, 8,
                          wire::encodeImm(wire::ImmType::kData, 1, 8)});
  EXPECT_TRUE(good.conn.hungUp(5s));
  EXPECT_EQ(stat(*a_, "node.links.up"), 1u);
}

TEST_F(SessionSwitchTest, ErrorsNameTheCause) {
  // No listener on the peer node.
  NodeSocketClient c = connect(*a_);
  auto region = *FakeRegion::create(testing::smallHello("node-a"));
  auto reply = c.request({{"op", "session_open"},
                          {"destination_ip", "10.1.0.9"},
                          {"node", "node-b"},
                          {"hello", helloHex("node-a")}},
                         region->fds());
  ASSERT_TRUE(reply);
  EXPECT_EQ((*reply)["ok"], false);
  EXPECT_NE((*reply)["error"].get<std::string>().find("no sidecar listens for 10.1.0.9"),
            std::string::npos)
      << reply->dump();
  // The connection stays usable for plain requests.
  auto pong = c.request({{"op", "ping"}});
  ASSERT_TRUE(pong);
  EXPECT_EQ((*pong)["pong"], true);
  // Unknown node, wrong fd count, bad layout, bad hello.
  NodeSocketClient d = connect(*a_);
  auto unknown = d.request({{"op", "session_open"},
                            {"destination_ip", "10.1.0.9"},
                            {"node", "node-z"},
                            {"hello", helloHex("node-a")}},
                           region->fds());
  EXPECT_NE((*unknown)["error"].get<std::string>().find("no link to node 'node-z'"),
            std::string::npos);
  auto fds = region->fds();
  auto short_fds = d.request({{"op", "session_open"},
                              {"destination_ip", "10.1.0.9"},
                              {"node", "node-b"},
                              {"hello", helloHex("node-a")}},
                             std::span<const int>(fds.data(), 2));
  EXPECT_NE((*short_fds)["error"].get<std::string>().find("expected 3 fds"), std::string::npos);
  auto broken = *FakeRegion::create(testing::smallHello("node-a"), {},
                                    [](aw::RegionLayout& l) { l.sq_depth = 100; });
  auto bad_layout = d.request({{"op", "session_open"},
                               {"destination_ip", "10.1.0.9"},
                               {"node", "node-b"},
                               {"hello", helloHex("node-a")}},
                              broken->fds());
  EXPECT_NE((*bad_layout)["error"].get<std::string>().find("region: sq_depth 100"),
            std::string::npos)
      << bad_layout->dump();
  auto bad_hello = d.request(
      {{"op", "session_open"}, {"destination_ip", "10.1.0.9"}, {"node", "node-b"}, {"hello", "zz"}},
      region->fds());
  EXPECT_NE((*bad_hello)["error"].get<std::string>().find("field 'hello'"), std::string::npos);
  EXPECT_EQ(stat(*a_, "node.sessions.open_fds"), 0u);
}

// The agent maps a sidecar's memfd whole: a region whose size the sidecar could still shrink is
// refused; one sealed as rdmesh-proxy seals it (F_SEAL_SHRINK | F_SEAL_GROW) passes the region
// checks and stays sealed.
TEST_F(SessionSwitchTest, OnlyRegionsSealedAgainstShrinkingAreTaken) {
  NodeSocketClient listener = listen(*b_, "10.1.0.2");
  json open = {{"v", 1},
               {"op", "session_open"},
               {"destination_ip", "10.1.0.2"},
               {"node", "node-b"},
               {"hello", helloHex("node-a")}};
  testing::RegionShape unsealable;
  unsealable.sealed = false;
  auto loose = *FakeRegion::create(testing::smallHello("node-a"), unsealable);
  NodeSocketClient refused = connect(*a_);
  auto reply = refused.request(open, loose->fds());
  ASSERT_TRUE(reply);
  EXPECT_EQ((*reply)["ok"], false);
  EXPECT_NE((*reply)["error"].get<std::string>().find("region: the memfd's size cannot be sealed"),
            std::string::npos)
      << reply->dump();
  EXPECT_EQ(stat(*a_, "node.sessions.open_fds"), 0u);

  auto sealed = *FakeRegion::create(testing::smallHello("node-a"));
  NodeSocketClient opener = connect(*a_);
  ASSERT_TRUE(opener.send(open, sealed->fds()));
  // Past the region checks: the peer agent offers the session to its listener.
  auto offer = listener.receive(nullptr, 5s);
  ASSERT_TRUE(offer) << "no offer reached the listener";
  EXPECT_EQ((*offer)["event"], "offer");
  int seals = ::fcntl(sealed->fds()[0], F_GET_SEALS);
  EXPECT_EQ(seals & (F_SEAL_SHRINK | F_SEAL_GROW), F_SEAL_SHRINK | F_SEAL_GROW);
  EXPECT_NE(::ftruncate(sealed->fds()[0], 4096), 0);
  ASSERT_TRUE(listener.request(
      {{"op", "session_refuse"}, {"offer_id", (*offer)["offer_id"]}, {"reason", "test over"}}));
  EXPECT_TRUE(waitUntil([&] { return a_->domain->registrations() == 0; }));
}

TEST_F(SessionSwitchTest, RefusalAndOfferTimeoutReachTheOpener) {
  NodeSocketClient listener = listen(*b_, "10.1.0.2");
  auto region = *FakeRegion::create(testing::smallHello("node-a"));
  json open = {{"v", 1},
               {"op", "session_open"},
               {"destination_ip", "10.1.0.2"},
               {"node", "node-b"},
               {"hello", helloHex("node-a")}};
  NodeSocketClient c = connect(*a_);
  ASSERT_TRUE(c.send(open, region->fds()));
  auto offer = listener.receive(nullptr, 5s);
  ASSERT_TRUE(offer);
  // The refusal answers on the listen connection itself (events and replies share it).
  auto refused = listener.request(
      {{"op", "session_refuse"}, {"offer_id", (*offer)["offer_id"]}, {"reason", "busy"}});
  ASSERT_TRUE(refused);
  EXPECT_EQ((*refused)["ok"], true);
  auto reply = c.receive(nullptr, 5s);
  ASSERT_TRUE(reply);
  EXPECT_EQ((*reply)["ok"], false);
  EXPECT_NE((*reply)["error"].get<std::string>().find("refused: busy"), std::string::npos)
      << reply->dump();
  // Nobody answers the next offer: refused at the deadline.
  NodeSocketClient c2 = connect(*a_);
  ASSERT_TRUE(c2.send(open, region->fds()));
  ASSERT_TRUE(listener.receive(nullptr, 5s));
  auto timed_out = c2.receive(nullptr, 10s);
  ASSERT_TRUE(timed_out);
  EXPECT_NE((*timed_out)["error"].get<std::string>().find("did not answer the offer"),
            std::string::npos)
      << timed_out->dump();
  EXPECT_TRUE(waitUntil([&] { return a_->domain->registrations() == 0; }));
  EXPECT_EQ(stat(*b_, "node.sessions.offers_pending"), 0u);
}

TEST_F(SessionSwitchTest, SameNodeSessionsAreBrokeredOverASocketpair) {
  NodeSocketClient listener = listen(*a_, "10.1.0.5");
  NodeSocketClient opener = connect(*a_);
  auto region = *FakeRegion::create(testing::smallHello("node-a"));
  ASSERT_TRUE(opener.send({{"v", 1},
                           {"op", "session_open"},
                           {"destination_ip", "10.1.0.5"},
                           {"node", "node-a"},
                           {"hello", helloHex("node-a")}},
                          region->fds()));
  auto offer = listener.receive(nullptr, 5s);
  ASSERT_TRUE(offer);
  EXPECT_EQ((*offer)["peer_node"], "node-a");
  NodeSocketClient acceptor = connect(*a_);
  std::vector<UniqueFd> acceptor_fds, opener_fds;
  auto accepted = acceptor.request(
      {{"op", "session_accept"}, {"offer_id", (*offer)["offer_id"]}, {"hello", helloHex("node-a")}},
      {}, &acceptor_fds);
  ASSERT_TRUE(accepted);
  EXPECT_EQ((*accepted)["mode"], "shm") << accepted->dump();
  auto reply = opener.receive(&opener_fds, 5s);
  ASSERT_TRUE(reply);
  EXPECT_EQ((*reply)["mode"], "shm") << reply->dump();
  ASSERT_EQ(acceptor_fds.size(), 1u);
  ASSERT_EQ(opener_fds.size(), 1u);
  ASSERT_EQ(::send(opener_fds[0].get(), "ping", 4, 0), 4);
  char buf[8] = {};
  pollfd pfd{acceptor_fds[0].get(), POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 5000), 1);
  ASSERT_EQ(::recv(acceptor_fds[0].get(), buf, sizeof(buf), 0), 4);
  EXPECT_STREQ(buf, "ping");
  EXPECT_EQ(stat(*a_, "node.sessions.shm_brokered_total"), 1u);
  EXPECT_EQ(stat(*a_, "node.sessions.open_fds"), 0u);  // no region kept: the agent is out of it
  EXPECT_EQ(stat(*a_, "node.datapath.submissions"), 0u);
}

TEST_F(SessionSwitchTest, DeferredRepliesKeepTheirOrderAndConnectionsCarryOneRole) {
  NodeSocketClient listener = listen(*b_, "10.1.0.2");
  // A session op on a listen connection is refused; plain ops still work there.
  auto region = *FakeRegion::create(testing::smallHello("node-b"));
  auto wrong = listener.request({{"op", "session_open"},
                                 {"destination_ip", "10.1.0.7"},
                                 {"node", "node-a"},
                                 {"hello", helloHex("node-b")}},
                                region->fds());
  ASSERT_TRUE(wrong);
  EXPECT_EQ((*wrong)["ok"], false) << wrong->dump();
  // A request sent while session_open waits is answered after the open's reply.
  NodeSocketClient c = connect(*a_);
  auto a_region = *FakeRegion::create(testing::smallHello("node-a"));
  ASSERT_TRUE(c.send({{"v", 1},
                      {"op", "session_open"},
                      {"destination_ip", "10.1.0.2"},
                      {"node", "node-b"},
                      {"hello", helloHex("node-a")}},
                     a_region->fds()));
  ASSERT_TRUE(c.send({{"v", 1}, {"op", "ping"}}));
  auto offer = listener.receive(nullptr, 5s);
  ASSERT_TRUE(offer);
  ASSERT_EQ((*offer)["event"], "offer");
  ASSERT_TRUE(listener.request({{"op", "session_refuse"}, {"offer_id", (*offer)["offer_id"]}}));
  auto first = c.receive(nullptr, 5s);
  auto second = c.receive(nullptr, 5s);
  ASSERT_TRUE(first && second);
  EXPECT_EQ((*first)["ok"], false);
  EXPECT_NE((*first)["error"].get<std::string>().find("refused"), std::string::npos);
  EXPECT_EQ((*second)["pong"], true);
}

TEST_F(SessionSwitchTest, LinkLossClosesEverySessionOnIt) {
  NodeSocketClient listener = listen(*b_, "10.1.0.2");
  Session acceptor;
  Session opener = open(*a_, "10.1.0.2", "node-b", *b_, listener, &acceptor);
  ASSERT_EQ(opener.reply["ok"], true);
  // node-b's agent goes away.
  onLoop([this] {
    b_->slot.module = nullptr;
    b_->server.reset();
    b_->fabric.reset();
  });
  EXPECT_TRUE(opener.conn.hungUp(5s));
  EXPECT_EQ(opener.region->header().closed.load(), 1u);
  EXPECT_TRUE(waitUntil([&] { return a_->domain->registrations() == 0; }));
  EXPECT_EQ(stat(*a_, "node.links.lost_total"), 1u);
  EXPECT_EQ(stat(*a_, "node.sessions.registered_bytes"), 0u);
}

// session_listen/session_accept with the netns check on: the caller (this test process) runs in
// the netns whose cookie the resolver gives for /proc/<our pid>/ns/net.
class SessionSwitchNetnsTest : public SessionSwitchTest {
 protected:
  FabricOptions optionsFor(const std::string& name) override {
    FabricOptions o = SessionSwitchTest::optionsFor(name);
    o.verify_caller_netns = true;
    return o;
  }
  NetnsResolver resolver() override {
    return [](const std::string& path) -> Result<uint64_t> {
      if (path == "/proc/" + std::to_string(getpid()) + "/ns/net") return 42;
      return invalidArgument("unexpected path " + path);
    };
  }
};

TEST_F(SessionSwitchNetnsTest, OnlyTheRegisteredPodMayListenForItsIps) {
  NodeSocketClient c = connect(*b_);
  auto unregistered = c.request({{"op", "session_listen"}, {"pod_ips", {"10.1.0.2"}}});
  ASSERT_TRUE(unregistered);
  EXPECT_NE((*unregistered)["error"].get<std::string>().find("registered pod"), std::string::npos)
      << unregistered->dump();
  PodRecord pod;
  pod.spec.container_id = "pod-b";
  pod.spec.ips = {"10.1.0.2"};
  pod.netns_cookie = 42;
  ASSERT_TRUE(b_->registry.put(pod));
  auto other_ip = c.request({{"op", "session_listen"}, {"pod_ips", {"10.1.0.3"}}});
  EXPECT_NE((*other_ip)["error"].get<std::string>().find("10.1.0.3 is not an IP of pod 'pod-b'"),
            std::string::npos)
      << other_ip->dump();
  auto own = c.request({{"op", "session_listen"}, {"pod_ips", {"10.1.0.2"}}});
  EXPECT_EQ((*own)["ok"], true) << own->dump();
}

}  // namespace
}  // namespace rdmesh::node
