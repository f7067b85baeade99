// The sidecar's agent fabric (mesh mode) against an in-test node agent over a real node.sock
// (SOCK_SEQPACKET, fds over SCM_RIGHTS): region layout, the agent's replies (good and bad), the
// SQ/CQ data path with its sleep/doorbell protocol, and the shm mode the agent brokers.
#include "rdmesh/transport/agent_fabric.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <future>
#include <thread>

#include "fake_session_agent.h"

namespace rdmesh::transport {
namespace {

using testing::FakeSessionAgent;
using ::testing::HasSubstr;
namespace agentwire = wire::agent;
using Clock = std::chrono::steady_clock;

SessionGeometry smallGeometry() {
  SessionGeometry g;
  g.max_streams = 4;
  g.ring_bytes = 64 * 1024;
  g.control_ring_bytes = 16 * 1024;
  g.recv_depth = 64;
  return g;
}

Hello helloFor(const std::string& name) {
  Hello h;
  h.fabric = wire::FabricKind::kAgent;
  h.node_name = name;
  h.geometry = smallGeometry();
  return h;
}

// ---- region layout ----

TEST(AgentRegionLayout, SectionsAreAlignedInOrderAndFitTheRegion) {
  AgentRegionSizes sizes{128, 256, smallGeometry().receiveAreaBytes(), 64 << 10};
  auto l = buildAgentRegionLayout(sizes);
  ASSERT_TRUE(l.isOk()) << l.status().message();
  EXPECT_EQ(l->magic, agentwire::kRegionMagic);
  EXPECT_EQ(l->sq_offset, agentwire::kRegionHeaderBytes);
  EXPECT_GE(l->cq_offset, l->sq_offset + 128 * sizeof(agentwire::Submission));
  EXPECT_GE(l->receive_offset, l->cq_offset + 256 * sizeof(agentwire::Arrival));
  EXPECT_GE(l->staging_offset, l->receive_offset + l->receive_bytes);
  for (uint64_t off : {l->sq_offset, l->cq_offset, l->receive_offset, l->staging_offset}) {
    EXPECT_EQ(off % agentwire::kSectionAlign, 0u);
  }
  EXPECT_EQ(l->region_bytes, l->staging_offset + l->staging_bytes);
  EXPECT_TRUE(validateAgentRegionLayout(*l, l->region_bytes).isOk());
}

TEST(AgentRegionLayout, BuilderRejectsSizesOutOfRange) {
  auto bad = [](AgentRegionSizes s) { return buildAgentRegionLayout(s).status().message(); };
  uint64_t area = smallGeometry().receiveAreaBytes();
  EXPECT_THAT(bad({100, 64, area, 64 << 10}), HasSubstr("sq_depth 100"));
  EXPECT_THAT(bad({64, 32, area, 64 << 10}), HasSubstr("cq_depth 32"));
  EXPECT_THAT(bad({64, 1u << 17, area, 64 << 10}), HasSubstr("cq_depth"));
  EXPECT_THAT(bad({64, 64, area, 4096}), HasSubstr("staging_bytes 4096"));
  EXPECT_THAT(bad({64, 64, area, (64 << 10) + 1}), HasSubstr("staging_bytes"));
  EXPECT_THAT(bad({64, 64, 0, 64 << 10}), HasSubstr("receive area of 0 bytes"));
  EXPECT_THAT(bad({64, 64, 5ull << 30, 64 << 10}), HasSubstr("receive area"));
}

TEST(AgentRegionLayout, ValidatorRejectsWhatACreatorCouldGetWrong) {
  auto good = *buildAgentRegionLayout({64, 64, smallGeometry().receiveAreaBytes(), 64 << 10});
  auto check = [&](auto mutate) {
    agentwire::RegionLayout l = good;
    mutate(l);
    return validateAgentRegionLayout(l, good.region_bytes);
  };
  EXPECT_THAT(check([](auto& l) { l.magic = 0; }).message(), HasSubstr("magic"));
  EXPECT_THAT(check([](auto& l) { l.version = 2; }).message(), HasSubstr("version 2"));
  EXPECT_THAT(check([](auto& l) { l.sq_depth = 63; }).message(), HasSubstr("sq_depth"));
  EXPECT_THAT(check([](auto& l) { l.region_bytes += 4096; }).message(), HasSubstr("memfd has"));
  EXPECT_THAT(check([](auto& l) { l.cq_offset = l.sq_offset; }).message(),
              HasSubstr("completion queue"));
  EXPECT_THAT(check([](auto& l) { l.receive_offset += 8; }).message(), HasSubstr("receive area"));
  EXPECT_THAT(check([](auto& l) { l.staging_offset = ~uint64_t{0} & ~uint64_t{4095}; }).message(),
              HasSubstr("send staging"));
  EXPECT_THAT(check([](auto& l) { l.receive_bytes = ~uint64_t{0}; }).message(),
              HasSubstr("receive area"));
  EXPECT_EQ(check([](auto& l) { l.magic = 0; }).code(), StatusCode::kProtocolError);
  Hello hello = helloFor("a");
  EXPECT_TRUE(checkAgentRegionForHello(good, hello).isOk());
  hello.geometry.recv_depth = 128;
  EXPECT_THAT(checkAgentRegionForHello(good, hello).message(), HasSubstr("recv_depth 128"));
  hello.geometry.max_streams = 8;
  EXPECT_THAT(checkAgentRegionForHello(good, hello).message(), HasSubstr("receive area"));
}

// ---- messages ----

TEST(AgentMessages, RequestsCarryTheContractFields) {
  auto open = nlohmann::json::parse(encodeSessionOpen("10.0.0.2", "node-b", helloFor("a")));
  EXPECT_EQ(open["v"], 1);
  EXPECT_EQ(open["op"], "session_open");
  EXPECT_EQ(open["destination_ip"], "10.0.0.2");
  EXPECT_EQ(open["node"], "node-b");
  auto hello = fromHex(open["hello"].get<std::string>());
  ASSERT_TRUE(hello.isOk());
  EXPECT_EQ(parseHello(*hello)->node_name, "a");
  auto listen = nlohmann::json::parse(encodeSessionListen({"10.0.0.1", "fd00::1"}));
  EXPECT_EQ(listen["pod_ips"], nlohmann::json({"10.0.0.1", "fd00::1"}));
  EXPECT_FALSE(listen.contains("exclude_outbound_ports"));
  auto excluding = nlohmann::json::parse(encodeSessionListen({"10.0.0.1"}, {5432, 6379}));
  EXPECT_EQ(excluding["exclude_outbound_ports"], nlohmann::json({5432, 6379}));
  auto refuse = nlohmann::json::parse(encodeSessionRefuse(7, "busy"));
  EXPECT_EQ(refuse["offer_id"], 7);
}

TEST(AgentMessages, ParsesOffersAndRejectsBadOnesWithTheField) {
  std::string hex = toHex(encodeHello(helloFor("b")));
  nlohmann::json offer{{"event", "offer"},
                       {"offer_id", 9},
                       {"peer_node", "node-b"},
                       {"peer_ip", "fd00:0::7"},
                       {"destination_ip", "10.0.0.1"},
                       {"peer_hello", hex}};
  auto m = parseAgentMessage(offer.dump());
  ASSERT_TRUE(m.isOk()) << m.status().message();
  EXPECT_EQ(m->kind, AgentMessage::Kind::kOffer);
  EXPECT_EQ(m->offer.offer_id, 9u);
  EXPECT_EQ(m->offer.peer_ip, "fd00::7");  // canonical
  EXPECT_EQ(m->offer.peer_hello.node_name, "b");
  auto without = [&](const char* key) {
    auto o = offer;
    o.erase(key);
    return parseAgentMessage(o.dump()).status().message();
  };
  for (const char* key : {"offer_id", "peer_node", "peer_ip", "destination_ip", "peer_hello"}) {
    EXPECT_THAT(without(key), HasSubstr(key));
  }
  auto with = [&](const char* key, nlohmann::json v) {
    auto o = offer;
    o[key] = v;
    return parseAgentMessage(o.dump()).status().message();
  };
  EXPECT_THAT(with("offer_id", -1), HasSubstr("offer_id"));
  EXPECT_THAT(with("peer_ip", "10.0.0.300"), HasSubstr("peer_ip"));
  EXPECT_THAT(with("peer_node", "Node_B"), HasSubstr("peer_node"));
  EXPECT_THAT(with("peer_hello", "abc"), HasSubstr("odd length"));
  EXPECT_THAT(with("peer_hello", "ABCD"), HasSubstr("hex"));
  EXPECT_THAT(with("peer_hello", "00112233"), HasSubstr("peer_hello"));
  EXPECT_THAT(parseAgentMessage("[1]").status().message(), HasSubstr("not a JSON object"));
  EXPECT_THAT(parseAgentMessage("{}").status().message(), HasSubstr("neither"));
  EXPECT_THAT(parseAgentMessage(R"({"ok":"yes"})").status().message(), HasSubstr("'ok'"));
  EXPECT_THAT(parseAgentMessage(R"({"ok":true,"mode":"rdma"})").status().message(),
              HasSubstr("unknown mode 'rdma'"));
  auto unknown = parseAgentMessage(R"({"event":"drain"})");
  ASSERT_TRUE(unknown.isOk());
  EXPECT_EQ(unknown->kind, AgentMessage::Kind::kUnknownEvent);
  auto refused = parseAgentMessage(R"({"ok":false})");
  ASSERT_TRUE(refused.isOk());
  EXPECT_FALSE(refused->reply.ok);
  EXPECT_EQ(refused->reply.error, "the agent gave no reason");
}

TEST(AgentMessages, MeshAddresses) {
  auto a = parseMeshAddress("10.1.2.3@node-b");
  ASSERT_TRUE(a.isOk());
  EXPECT_EQ(a->ip, "10.1.2.3");
  EXPECT_EQ(a->node, "node-b");
  EXPECT_EQ(parseMeshAddress("fd00:0:0::1@n1")->toString(), "fd00::1@n1");
  EXPECT_FALSE(parseMeshAddress("10.1.2.3").isOk());
  EXPECT_FALSE(parseMeshAddress("10.1.2.3@").isOk());
  EXPECT_FALSE(parseMeshAddress("host@node").isOk());
}

// ---- against the in-test agent ----

class AgentFabricTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = "/tmp/rdmesh-agent-fabric-test-" + std::to_string(::getpid()) + ".sock";
    agent_ = std::make_unique<FakeSessionAgent>(path_, "node-a");
    agent_->pod("a", "10.0.0.1");
    agent_->pod("b", "10.0.0.2");
  }

  AgentFabricOptions options(uint64_t staging = 64 << 10) {
    AgentFabricOptions o;
    o.socket_path = path_;
    o.region = {64, 64, 0, staging};
    return o;
  }

  struct Pair {
    std::unique_ptr<FabricConnection> a, b;  // a dialed b
  };

  // Sidecar b listens for 10.0.0.2; sidecar a dials it.
  Pair connectPair(AgentFabric& fa, AgentFabric& fb) {
    auto listener = fb.listenFor({"10.0.0.2"}, Clock::now() + std::chrono::seconds(5));
    EXPECT_TRUE(listener.isOk()) << listener.status().message();
    if (!listener) return {};
    UniqueFd listen_fd(*listener);
    auto dial = std::async(std::launch::async, [&] {
      auto region = fa.registerRegion(smallGeometry().receiveAreaBytes());
      return fa.connect("10.0.0.2@node-a", helloFor("a"), std::move(region.value()),
                        Clock::now() + std::chrono::seconds(5));
    });
    pollfd p{listen_fd.get(), POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 5000), 1);
    auto offers = fb.readOffers(listen_fd.get());
    EXPECT_TRUE(offers.isOk()) << offers.status().message();
    EXPECT_EQ(offers->size(), 1u);
    if (!offers || offers->empty()) return {};
    const AgentOffer& offer = offers->front();
    EXPECT_EQ(offer.peer_ip, "10.0.0.1");
    EXPECT_EQ(offer.destination_ip, "10.0.0.2");
    EXPECT_EQ(offer.peer_node, "node-a");
    EXPECT_EQ(offer.peer_hello.node_name, "a");
    auto region = fb.registerRegion(smallGeometry().receiveAreaBytes());
    auto b = fb.acceptOffer(offer, helloFor("b"), std::move(region.value()),
                            Clock::now() + std::chrono::seconds(5));
    auto a = dial.get();
    EXPECT_TRUE(a.isOk()) << a.status().message();
    EXPECT_TRUE(b.isOk()) << b.status().message();
    if (!a || !b) return {};
    return {std::move(a.value()), std::move(b.value())};
  }

  // Polls `c` until `want` completions arrived (bounded).
  std::vector<Completion> pollFor(FabricConnection& c, size_t want) {
    std::vector<Completion> got;
    auto until = Clock::now() + std::chrono::seconds(5);
    while (got.size() < want && Clock::now() < until) {
      Completion batch[16];
      auto n = c.poll(batch);
      EXPECT_TRUE(n.isOk()) << n.status().message();
      if (!n) break;
      got.insert(got.end(), batch, batch + *n);
      if (*n == 0) std::this_thread::yield();
    }
    return got;
  }

  static void write(FabricConnection& c, uint64_t offset, size_t len, char fill,
                    uint32_t slot = 1) {
    auto span = c.stageWrite(offset, len);
    ASSERT_EQ(span.size(), len);
    std::memset(span.data(), fill, len);
    c.postWriteWithImm(len, wire::encodeImm(wire::ImmType::kData, slot, len));
  }

  std::string path_;
  std::unique_ptr<FakeSessionAgent> agent_;
};

TEST_F(AgentFabricTest, WritesCrossThroughTheAgentIntoThePeersReceiveArea) {
  auto fa = makeAgentFabric(options());
  auto fb = makeAgentFabric(options());
  Pair p = connectPair(*fa, *fb);
  ASSERT_TRUE(p.a && p.b);
  EXPECT_EQ(p.a->kind(), wire::FabricKind::kAgent);
  EXPECT_EQ(p.a->peerHello().node_name, "b");
  EXPECT_EQ(p.b->peerHello().node_name, "a");  // from the offer: the accept reply has no Hello
  EXPECT_EQ(agent_->activeSessions(), 1u);

  write(*p.a, 4096, 1000, 'x', 3);
  write(*p.a, 8192, 24, 'y', 2);
  ASSERT_TRUE(p.a->flush().isOk());
  auto got = pollFor(*p.b, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].imm, wire::encodeImm(wire::ImmType::kData, 3, 1000));
  EXPECT_EQ(got[1].byte_len, 24u);
  auto area = p.b->receiveArea();
  EXPECT_EQ(area[4096], std::byte{'x'});
  EXPECT_EQ(area[4096 + 999], std::byte{'x'});
  EXPECT_EQ(area[4096 + 1000], std::byte{0});
  EXPECT_EQ(area[8192 + 23], std::byte{'y'});

  // And back.
  write(*p.b, 0, 64, 'z', 0);
  ASSERT_TRUE(p.b->flush().isOk());
  ASSERT_EQ(pollFor(*p.a, 1).size(), 1u);
  EXPECT_EQ(p.a->receiveArea()[63], std::byte{'z'});
}

TEST_F(AgentFabricTest, ASleepingSidecarIsWokenByItsDoorbellAndAnAwakeOneIsNot) {
  auto fa = makeAgentFabric(options());
  auto fb = makeAgentFabric(options());
  Pair p = connectPair(*fa, *fb);
  ASSERT_TRUE(p.a && p.b);
  ASSERT_TRUE(p.b->eventFdIsDoorbell());

  // Awake receiver: data arrives, no doorbell is rung for it.
  uint64_t rings_before = agent_->counters().doorbells_to_sidecar;
  write(*p.a, 0, 100, 'a');
  ASSERT_TRUE(p.a->flush().isOk());
  ASSERT_EQ(pollFor(*p.b, 1).size(), 1u);
  EXPECT_EQ(agent_->counters().doorbells_to_sidecar, rings_before);

  // Sleeping receiver: the arrival rings its doorbell.
  ASSERT_TRUE(p.b->prepareToSleep());
  write(*p.a, 0, 100, 'b');
  ASSERT_TRUE(p.a->flush().isOk());
  pollfd pfd{p.b->eventFd(), POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 5000), 1) << "the doorbell never rang";
  p.b->afterWakeup();
  ASSERT_EQ(pollFor(*p.b, 1).size(), 1u);
  EXPECT_GT(agent_->counters().doorbells_to_sidecar, rings_before);

  // Arrivals already queued: prepareToSleep() refuses to sleep.
  write(*p.a, 0, 100, 'c');
  ASSERT_TRUE(p.a->flush().isOk());
  auto until = Clock::now() + std::chrono::seconds(5);
  while (agent_->counters().submissions_moved < 3 && Clock::now() < until)
    std::this_thread::yield();
  EXPECT_FALSE(p.b->prepareToSleep());
  EXPECT_EQ(pollFor(*p.b, 1).size(), 1u);
}

TEST_F(AgentFabricTest, ABatchOfWritesCostsTheSleepingAgentOneDoorbellAtMost) {
  auto fa = makeAgentFabric(options());
  auto fb = makeAgentFabric(options());
  Pair p = connectPair(*fa, *fb);
  ASSERT_TRUE(p.a && p.b);
  // The agent counts rings when it next passes its loop, so a round's ring may be counted in a
  // later round: assert over all rounds (late counting can only undercount the upper bound).
  constexpr uint64_t kRounds = 5;
  uint64_t before = agent_->counters().doorbells_to_agent;
  for (uint64_t round = 0; round < kRounds; ++round) {
    for (int i = 0; i < 10; ++i) write(*p.a, 1024 * i, 512, 'q');
    ASSERT_TRUE(p.a->flush().isOk());
    ASSERT_TRUE(p.a->flush().isOk());  // nothing new: no second ring
    ASSERT_EQ(pollFor(*p.b, 10).size(), 10u);
  }
  auto until = Clock::now() + std::chrono::seconds(5);
  while (agent_->counters().doorbells_to_agent == before && Clock::now() < until) {
    std::this_thread::yield();
  }
  uint64_t rings = agent_->counters().doorbells_to_agent - before;
  EXPECT_GE(rings, 1u) << "the sleeping agent was never rung";
  EXPECT_LE(rings, kRounds) << "50 writes in 5 flushed batches rang the agent " << rings
                            << " times";
}

TEST_F(AgentFabricTest, FullStagingBlocksAndResumesWhenTheAgentCompletes) {
  auto fa = makeAgentFabric(options(64 << 10));
  auto fb = makeAgentFabric(options());
  Pair p = connectPair(*fa, *fb);
  ASSERT_TRUE(p.a && p.b);
  // b does not poll: its completion queue (64) fills, then a's SQ (64) and staging back up.
  size_t posted = 0;
  for (; posted < 1000; ++posted) {
    auto span = p.a->stageWrite(0, 4096);
    if (span.empty()) break;
    p.a->postWriteWithImm(4096, wire::encodeImm(wire::ImmType::kData, 1, 4096));
    ASSERT_TRUE(p.a->flush().isOk());
  }
  ASSERT_LT(posted, 1000u) << "staging never filled";
  EXPECT_FALSE(p.a->resumedSending());
  // b drains: the agent moves the rest and completes a's submissions.
  auto got = pollFor(*p.b, posted);
  EXPECT_EQ(got.size(), posted);
  auto until = Clock::now() + std::chrono::seconds(5);
  bool resumed = false;
  while (!resumed && Clock::now() < until) {
    Completion c[4];
    ASSERT_TRUE(p.a->poll(c).isOk());
    resumed = p.a->resumedSending();
  }
  EXPECT_TRUE(resumed);
  EXPECT_FALSE(p.a->stageWrite(0, 4096).empty());
  p.a->postWriteWithImm(0, 0);
}

TEST_F(AgentFabricTest, AClosedSessionIsLostOnBothSides) {
  auto fa = makeAgentFabric(options());
  auto fb = makeAgentFabric(options());
  Pair p = connectPair(*fa, *fb);
  ASSERT_TRUE(p.a && p.b);
  ASSERT_TRUE(p.b->prepareToSleep());
  agent_->closeAllSessions();
  pollfd pfd{p.b->eventFd(), POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 5000), 1) << "a sleeping sidecar must be woken by the close";
  for (FabricConnection* c : {p.a.get(), p.b.get()}) {
    Completion out[4];
    auto n = c->poll(out);
    ASSERT_FALSE(n.isOk());
    EXPECT_THAT(n.status().message(), HasSubstr("closed the session"));
    pollfd live{c->livenessFd(), POLLIN, 0};
    ASSERT_EQ(::poll(&live, 1, 5000), 1);
    char byte;
    EXPECT_EQ(::recv(c->livenessFd(), &byte, 1, MSG_DONTWAIT), 0) << "hang-up expected";
  }
}

TEST_F(AgentFabricTest, SameNodePeersRunTheShmBackendOverTheBrokeredSocketpair) {
  agent_->setShmMode(true);
  auto fa = makeAgentFabric(options());
  auto fb = makeAgentFabric(options());
  Pair p = connectPair(*fa, *fb);
  ASSERT_TRUE(p.a && p.b);
  EXPECT_EQ(p.a->kind(), wire::FabricKind::kShm);
  EXPECT_EQ(p.b->kind(), wire::FabricKind::kShm);
  EXPECT_EQ(p.a->peerHello().node_name, "b");
  uint64_t moved = agent_->counters().submissions_moved;
  write(*p.a, 512, 300, 's');
  ASSERT_TRUE(p.a->flush().isOk());
  ASSERT_EQ(pollFor(*p.b, 1).size(), 1u);
  EXPECT_EQ(p.b->receiveArea()[512 + 299], std::byte{'s'});
  EXPECT_EQ(agent_->counters().submissions_moved, moved) << "shm traffic went through the agent";
  EXPECT_EQ(agent_->activeSessions(), 0u);
}

class AgentRepliesTest : public AgentFabricTest {
 protected:
  // Dials with `how` in effect; a listener exists so only the misbehaviour can fail it.
  Status dialWith(FakeSessionAgent::Misbehaviour how, std::chrono::milliseconds budget) {
    auto fb = makeAgentFabric(options());
    auto listener = fb->listenFor({"10.0.0.2"}, Clock::now() + std::chrono::seconds(5));
    EXPECT_TRUE(listener.isOk());
    UniqueFd keep(*listener);
    agent_->misbehave(how);
    auto fa = makeAgentFabric(options());
    auto region = fa->registerRegion(smallGeometry().receiveAreaBytes());
    auto started = Clock::now();
    auto conn =
        fa->connect("10.0.0.2@node-a", helloFor("a"), std::move(region.value()), started + budget);
    elapsed_ = Clock::now() - started;
    EXPECT_FALSE(conn.isOk());
    return conn.status();
  }
  Clock::duration elapsed_{};
};

TEST_F(AgentRepliesTest, EveryBadReplyIsAClearErrorWithinTheDeadline) {
  using M = FakeSessionAgent::Misbehaviour;
  const std::chrono::milliseconds budget{2000};
  EXPECT_THAT(dialWith(M::kRefuse, budget).message(), HasSubstr("no listener for the destination"));
  EXPECT_THAT(dialWith(M::kGarbage, budget).message(), HasSubstr("not a JSON object"));
  EXPECT_THAT(dialWith(M::kNoMode, budget).message(), HasSubstr("no 'mode'"));
  EXPECT_THAT(dialWith(M::kBadHello, budget).message(), HasSubstr("peer_hello"));
  EXPECT_THAT(dialWith(M::kShmWithoutFd, budget).message(), HasSubstr("exactly one descriptor"));
  EXPECT_THAT(dialWith(M::kCloseConnection, budget).message(), HasSubstr("closed"));
  Status silent = dialWith(M::kSilent, std::chrono::milliseconds(300));
  EXPECT_EQ(silent.code(), StatusCode::kTimeout) << silent.message();
  EXPECT_LT(elapsed_, std::chrono::seconds(3));
}

TEST_F(AgentFabricTest, NoListenerForTheDestinationIsTheAgentsError) {
  auto fa = makeAgentFabric(options());
  auto region = fa->registerRegion(smallGeometry().receiveAreaBytes());
  auto conn = fa->connect("10.0.0.9@node-a", helloFor("a"), std::move(region.value()),
                          Clock::now() + std::chrono::seconds(2));
  ASSERT_FALSE(conn.isOk());
  EXPECT_THAT(conn.status().message(), HasSubstr("no sidecar listens for 10.0.0.9"));
}

TEST_F(AgentFabricTest, NoAgentAtTheSocketIsUnavailableNamingThePath) {
  AgentFabricOptions o = options();
  o.socket_path = path_ + ".missing";
  auto fa = makeAgentFabric(o);
  auto region = fa->registerRegion(smallGeometry().receiveAreaBytes());
  auto conn = fa->connect("10.0.0.2@node-a", helloFor("a"), std::move(region.value()),
                          Clock::now() + std::chrono::seconds(2));
  ASSERT_FALSE(conn.isOk());
  EXPECT_EQ(conn.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(conn.status().message(), HasSubstr(o.socket_path));
  EXPECT_FALSE(fa->listen("10.0.0.1").isOk());
}

TEST_F(AgentFabricTest, ARegionTooSmallForTheHelloIsRefusedBeforeDialing) {
  AgentFabricOptions o = options();
  auto fa = makeAgentFabric(o);
  auto region = fa->registerRegion(smallGeometry().receiveAreaBytes());
  Hello big = helloFor("a");
  big.geometry.recv_depth = 4096;  // more than the region's completion queue (64)
  auto conn = fa->connect("10.0.0.2@node-a", big, std::move(region.value()),
                          Clock::now() + std::chrono::seconds(2));
  ASSERT_FALSE(conn.isOk());
  EXPECT_THAT(conn.status().message(), HasSubstr("recv_depth"));
  EXPECT_TRUE(agent_->ops().empty()) << "nothing must reach the agent";
}

TEST(NodeSocketPath, EnvironmentOverridesTheConfiguredPath) {
  ::unsetenv(kNodeSocketEnv);
  EXPECT_EQ(nodeSocketPath(""), kDefaultNodeSocket);
  EXPECT_EQ(nodeSocketPath("/run/x.sock"), "/run/x.sock");
  ::setenv(kNodeSocketEnv, "/run/env.sock", 1);
  EXPECT_EQ(nodeSocketPath("/run/x.sock"), "/run/env.sock");
  ::unsetenv(kNodeSocketEnv);
}

}  // namespace
}  // namespace rdmesh::transport
