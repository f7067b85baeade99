// PairLink over loopback TCP (the host has no RDMA): two LinkDomains in one process, their links
// brought up through the real bootstrap on 127.0.0.1, and hand-made peers that speak the wire
// format byte by byte to check what a broken or hostile peer gets.
#include "rdmesh/transport/pair_link.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <future>
#include <random>
#include <thread>
#include <vector>

#include "rdmesh/transport/hello.h"
#include "rdmesh/transport/link_codec.h"
#include "rdmesh/transport/link_wire.h"

namespace rdmesh::transport {
namespace {

namespace wl = wire::link;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

Deadline in(milliseconds ms) {
  return Clock::now() + ms;
}

LinkDomainOptions options(const std::string& name, uint32_t send_depth = 1024) {
  LinkDomainOptions o;
  o.node_name = name;
  o.rdma = false;
  o.send_depth = send_depth;
  return o;
}

uint16_t portOf(int fd) {
  sockaddr_in sa{};
  socklen_t len = sizeof(sa);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  return ntohs(sa.sin_port);
}

int acceptOne(int listen_fd) {
  pollfd p{listen_fd, POLLIN, 0};
  if (::poll(&p, 1, 5000) != 1) return -1;
  return ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
}

// Memory the test owns, registered in a domain.
struct Buffer {
  std::vector<std::byte> bytes;
  std::shared_ptr<RegisteredMemory> reg;
  Buffer(LinkDomain& domain, size_t size) : bytes(size) {
    auto r = domain.registerMemory(bytes);
    EXPECT_TRUE(r.isOk()) << r.status().message();
    if (r) reg = std::move(r.value());
  }
};

void fillRandom(std::span<std::byte> bytes, uint32_t seed) {
  std::mt19937 rng(seed);
  for (auto& b : bytes) b = static_cast<std::byte>(rng());
}

// Two nodes, a and b, joined by one link each way of the same connection (a dialed).
class PairLinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = makeLinkDomain(options("node-a", send_depth_));
    b_ = makeLinkDomain(options("node-b"));
    auto l = b_->listen("127.0.0.1:0");
    ASSERT_TRUE(l.isOk()) << l.status().message();
    listen_fd_ = *l;
  }
  void TearDown() override {
    if (listen_fd_ >= 0) ::close(listen_fd_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(portOf(listen_fd_)); }

  void connectPair() {
    auto accepted = std::async(std::launch::async, [&] {
      return b_->accept(acceptOne(listen_fd_), in(milliseconds(5000)));
    });
    auto dialed = a_->connect(address(), in(milliseconds(5000)));
    auto got = accepted.get();
    ASSERT_TRUE(dialed.isOk()) << dialed.status().message();
    ASSERT_TRUE(got.isOk()) << got.status().message();
    la_ = std::move(dialed.value());
    lb_ = std::move(got.value());
  }

  // Drives both links until `done` says so (or the deadline passes): flushes, polls, collects.
  template <typename Done>
  void pump(Done done, milliseconds limit = milliseconds(10000)) {
    auto deadline = in(limit);
    while (!done()) {
      ASSERT_LT(Clock::now(), deadline) << "links made no progress";
      ASSERT_TRUE(la_->flush().isOk());
      ASSERT_TRUE(lb_->flush().isOk());
      auto na = la_->poll(events_a_, 64);
      ASSERT_TRUE(na.isOk()) << na.status().message();
      auto nb = lb_->poll(events_b_, 64);
      ASSERT_TRUE(nb.isOk()) << nb.status().message();
      if (*na == 0 && *nb == 0) {
        pollfd p[2] = {{la_->eventFd(), POLLIN, 0}, {lb_->eventFd(), POLLIN, 0}};
        if (la_->wantsWritable()) p[0].events |= POLLOUT;
        ::poll(p, 2, 10);
      }
    }
  }

  // Polls b until it fails; returns that status.
  Status pollUntilError(PairLink& link, milliseconds limit = milliseconds(5000)) {
    auto deadline = in(limit);
    std::vector<LinkEvent> events;
    while (Clock::now() < deadline) {
      auto n = link.poll(events, 64);
      if (!n) return n.status();
      pollfd p{link.eventFd(), POLLIN, 0};
      ::poll(&p, 1, 10);
    }
    return internalError("no error within the deadline");
  }

  uint32_t send_depth_ = 1024;
  std::unique_ptr<LinkDomain> a_, b_;
  int listen_fd_ = -1;
  std::unique_ptr<PairLink> la_, lb_;
  std::vector<LinkEvent> events_a_, events_b_;
};

TEST_F(PairLinkTest, DomainWithoutRdmaRunsTcpAndSaysWhy) {
  EXPECT_EQ(a_->kind(), wire::FabricKind::kTcp);
  EXPECT_EQ(a_->rdmaUnavailableReason(), "RDMA is off in the configuration");
  LinkDomainOptions o = options("node-c");
  o.rdma = true;
  o.verbs.device = "no-such-rnic0";
  auto c = makeLinkDomain(o);
  EXPECT_EQ(c->kind(), wire::FabricKind::kTcp);
  // This host has no RDMA device at all; a host with one must name the device it did not find.
  const std::string& why = c->rdmaUnavailableReason();
  EXPECT_TRUE(why == "no RDMA device" || why.find("no-such-rnic0") != std::string::npos) << why;
  Buffer buf(*c, 4096);
  EXPECT_EQ(buf.reg->pinnedBytes(), 0u);
  EXPECT_EQ(buf.reg->bytes().size(), 4096u);
  EXPECT_FALSE(c->registerMemory({}).isOk());
}

TEST_F(PairLinkTest, BootstrapNamesBothNodesAndRunsTcp) {
  connectPair();
  EXPECT_EQ(la_->kind(), wire::FabricKind::kTcp);
  EXPECT_EQ(lb_->kind(), wire::FabricKind::kTcp);
  EXPECT_EQ(la_->peerNode(), "node-b");
  EXPECT_EQ(lb_->peerNode(), "node-a");
  EXPECT_EQ(la_->fallbackReason(), "");  // the domain itself has no RDMA: not a fallback
}

TEST_F(PairLinkTest, WritesLandAtTheirOffsetsWithImmediatesInOrder) {
  connectPair();
  Buffer src(*a_, 8 << 20);
  Buffer dst(*b_, 8 << 20);
  fillRandom(src.bytes, 1);
  RemoteMemory remote = lb_->describe(*dst.reg);
  EXPECT_EQ(remote.bytes, dst.bytes.size());

  // Sizes from 0 (an immediate alone) to 1 MiB (read straight into the target), at scattered
  // offsets; every write's bytes must be at its offset, its imm and length delivered in order.
  struct Sent {
    uint64_t src, dst;
    uint32_t len, imm;
  };
  std::vector<Sent> sent;
  std::mt19937 rng(7);
  const uint32_t sizes[] = {0, 1, 17, 4096, 8191, 8192, 65535, 100000, 1 << 20};
  uint64_t cookie = 0;
  for (int i = 0; i < 200; ++i) {
    uint32_t len = sizes[rng() % std::size(sizes)];
    uint64_t so = rng() % (src.bytes.size() - len);
    // Targets in disjoint 1 MiB + 64 KiB strides per write index would overlap; writes are
    // checked in order against a shadow copy instead.
    uint64_t d = rng() % (dst.bytes.size() - len);
    uint32_t imm = wire::encodeImm(wire::ImmType::kData, i % 4096, len & 0xffff);
    Status s = la_->postWrite(*src.reg, so, len, remote, d, imm, ++cookie);
    ASSERT_TRUE(s.isOk()) << s.message();
    sent.push_back({so, d, len, imm});
  }
  size_t arrived = 0;
  uint64_t done = 0;
  std::vector<std::byte> shadow(dst.bytes.size());
  pump([&] {
    for (; arrived < events_b_.size(); ++arrived) {
      const LinkEvent& e = events_b_[arrived];
      EXPECT_EQ(e.type, LinkEvent::Type::kWriteArrived);
      const Sent& s = sent[arrived];
      EXPECT_EQ(e.imm, s.imm) << "write " << arrived;
      EXPECT_EQ(e.byte_len, s.len) << "write " << arrived;
      std::memcpy(shadow.data() + s.dst, src.bytes.data() + s.src, s.len);
    }
    for (const LinkEvent& e : events_a_) {
      EXPECT_EQ(e.type, LinkEvent::Type::kWriteDone);
      EXPECT_GT(e.cookie, done) << "kWriteDone cookies increase";
      done = e.cookie;
    }
    events_a_.clear();
    return arrived == sent.size() && done == cookie;
  });
  EXPECT_EQ(std::memcmp(shadow.data(), dst.bytes.data(), shadow.size()), 0)
      << "target memory differs from the writes applied in order";
}

TEST_F(PairLinkTest, ControlMessagesInterleaveInOrderWithWrites) {
  connectPair();
  Buffer src(*a_, 1 << 20);
  Buffer dst(*b_, 1 << 20);
  fillRandom(src.bytes, 2);
  RemoteMemory remote = lb_->describe(*dst.reg);
  std::vector<LinkEvent> expected;
  uint64_t cookie = 0;
  for (int i = 0; i < 300; ++i) {
    if (i % 3 == 0) {
      std::vector<std::byte> msg(1 + (i * 131) % kMaxLinkControlBytes);
      fillRandom(msg, i);
      ASSERT_TRUE(la_->sendControl(msg).isOk());
      expected.push_back(LinkEvent::controlMessage(msg));
    } else {
      uint32_t len = (i * 977) % 20000;
      uint32_t imm = wire::encodeImm(wire::ImmType::kControl, i, len & 0xffff);
      ASSERT_TRUE(la_->postWrite(*src.reg, 0, len, remote, i * 1000, imm, ++cookie).isOk());
      expected.push_back(LinkEvent::writeArrived(imm, len));
    }
  }
  pump([&] { return events_b_.size() >= expected.size(); });
  ASSERT_EQ(events_b_.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(events_b_[i].type, expected[i].type) << "event " << i;
    EXPECT_EQ(events_b_[i].imm, expected[i].imm) << "event " << i;
    EXPECT_EQ(events_b_[i].byte_len, expected[i].byte_len) << "event " << i;
    EXPECT_EQ(events_b_[i].control, expected[i].control) << "event " << i;
  }
  // And the other way, on the same connection.
  std::vector<std::byte> reply(100, std::byte{0x5a});
  ASSERT_TRUE(lb_->sendControl(reply).isOk());
  pump([&] {
    for (const auto& e : events_a_) {
      if (e.type == LinkEvent::Type::kControl) return e.control == reply;
    }
    return false;
  });
}

TEST_F(PairLinkTest, CallerMistakesAreRejectedWithoutHarm) {
  connectPair();
  Buffer src(*a_, 4096);
  Buffer foreign(*b_, 4096);  // registered in the other domain
  Buffer dst(*b_, 4096);
  RemoteMemory remote = lb_->describe(*dst.reg);
  auto code = [](const Status& s) { return s.code(); };
  EXPECT_EQ(code(la_->postWrite(*foreign.reg, 0, 10, remote, 0, 1, 1)),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(la_->postWrite(*src.reg, 4090, 10, remote, 0, 1, 1)),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(la_->postWrite(*src.reg, 0, 10, remote, 4090, 1, 1)),
            StatusCode::kInvalidArgument);
  uint32_t reserved = wl::encodeLinkInternalImm(wl::LinkImmKind::kControl, 0);
  EXPECT_EQ(code(la_->postWrite(*src.reg, 0, 10, remote, 0, reserved, 1)),
            StatusCode::kInvalidArgument);
  ASSERT_TRUE(la_->postWrite(*src.reg, 0, 10, remote, 0, 1, 5).isOk());
  EXPECT_EQ(code(la_->postWrite(*src.reg, 0, 10, remote, 0, 1, 5)), StatusCode::kInvalidArgument)
      << "cookies must increase";
  EXPECT_EQ(code(la_->sendControl({})), StatusCode::kInvalidArgument);
  std::vector<std::byte> big(kMaxLinkControlBytes + 1);
  EXPECT_EQ(code(la_->sendControl(big)), StatusCode::kInvalidArgument);
  // The link still works.
  pump([&] { return events_b_.size() == 1; });
  EXPECT_EQ(events_b_[0].byte_len, 10u);
}

class SmallQueueTest : public PairLinkTest {
 protected:
  SmallQueueTest() { send_depth_ = 16; }
};

TEST_F(SmallQueueTest, FullSendQueueSaysUnavailableUntilWritesComplete) {
  connectPair();
  Buffer src(*a_, 4096);
  Buffer dst(*b_, 4096);
  RemoteMemory remote = lb_->describe(*dst.reg);
  uint64_t cookie = 0;
  for (int i = 0; i < 16; ++i) {
    ASSERT_TRUE(la_->postWrite(*src.reg, 0, 64, remote, 0, 1, ++cookie).isOk());
  }
  Status full = la_->postWrite(*src.reg, 0, 64, remote, 0, 1, cookie + 1);
  EXPECT_EQ(full.code(), StatusCode::kUnavailable) << full.message();
  pump([&] {
    for (const auto& e : events_a_) {
      if (e.type == LinkEvent::Type::kWriteDone && e.cookie == cookie) return true;
    }
    return false;
  });
  EXPECT_TRUE(la_->postWrite(*src.reg, 0, 64, remote, 0, 1, ++cookie).isOk());
}

TEST_F(PairLinkTest, PeerHangUpEndsTheLink) {
  connectPair();
  la_.reset();
  Status s = pollUntilError(*lb_);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("closed"), std::string::npos) << s.message();
  EXPECT_FALSE(lb_->flush().isOk() && lb_->poll(events_b_, 1).isOk());
}

TEST_F(PairLinkTest, ReleasedRegistrationIsAnUnknownKeyNotAStrayWrite) {
  connectPair();
  Buffer src(*a_, 4096);
  auto dst = std::make_unique<Buffer>(*b_, 4096);
  RemoteMemory remote = lb_->describe(*dst->reg);
  dst.reset();  // b releases its memory; a still holds the description
  ASSERT_TRUE(la_->postWrite(*src.reg, 0, 100, remote, 0, 1, 1).isOk());
  ASSERT_TRUE(la_->flush().isOk());
  Status s = pollUntilError(*lb_);
  EXPECT_EQ(s.code(), StatusCode::kProtocolError);
  EXPECT_NE(s.message().find("unknown registration"), std::string::npos) << s.message();
}

// A hand-made peer on a raw socket: dials b and speaks the link wire format itself.
class RawPeerTest : public PairLinkTest {
 protected:
  // Dials b; returns the raw socket once b's accept() is under way.
  int dialRaw() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(portOf(listen_fd_));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
    return fd;
  }
  static void sendBytes(int fd, std::span<const std::byte> bytes) {
    ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }
  static void sendHello(int fd, const LinkHello& hello) { sendBytes(fd, encodeLinkHello(hello)); }
  static LinkHello helloOf(const std::string& name) {
    LinkHello h;
    h.node_name = name;
    return h;
  }
  // b accepts a raw peer that sends a good hello; returns b's link and the raw socket.
  std::unique_ptr<PairLink> acceptRaw(int* raw) {
    *raw = dialRaw();
    sendHello(*raw, helloOf("evil-node"));
    auto link = b_->accept(acceptOne(listen_fd_), in(milliseconds(5000)));
    EXPECT_TRUE(link.isOk()) << link.status().message();
    std::vector<std::byte> hello(sizeof(wl::LinkHelloHeader) + 6);
    EXPECT_EQ(::recv(*raw, hello.data(), hello.size(), MSG_WAITALL),
              static_cast<ssize_t>(hello.size()));
    EXPECT_TRUE(parseLinkHello(hello).isOk());
    return link ? std::move(link.value()) : nullptr;
  }
  static void sendFrame(int fd, wl::LinkFrameHeader h, std::span<const std::byte> payload = {}) {
    std::vector<std::byte> bytes(sizeof(h) + payload.size());
    std::memcpy(bytes.data(), &h, sizeof(h));
    if (!payload.empty()) std::memcpy(bytes.data() + sizeof(h), payload.data(), payload.size());
    sendBytes(fd, bytes);
  }
};

TEST_F(RawPeerTest, WriteToUnknownKeyKillsTheLinkWithAClearError) {
  Buffer dst(*b_, 4096);
  int raw = -1;
  auto link = acceptRaw(&raw);
  ASSERT_TRUE(link);
  RemoteMemory remote = link->describe(*dst.reg);
  std::vector<std::byte> payload(16, std::byte{1});
  sendFrame(raw, {1, 0, 0, 7, remote.key + 1000, 16, 0}, payload);
  Status s = pollUntilError(*link);
  EXPECT_EQ(s.code(), StatusCode::kProtocolError);
  EXPECT_NE(s.message().find("unknown registration"), std::string::npos) << s.message();
  for (std::byte b : dst.bytes) ASSERT_EQ(b, std::byte{0});
  ::close(raw);
}

TEST_F(RawPeerTest, WriteOutOfBoundsKillsTheLinkAndTouchesNothing) {
  Buffer dst(*b_, 4096);
  Buffer neighbour(*b_, 4096);
  int raw = -1;
  auto link = acceptRaw(&raw);
  ASSERT_TRUE(link);
  RemoteMemory remote = link->describe(*dst.reg);
  // A good write first: it must land; the bad one after it must not.
  std::vector<std::byte> good(8, std::byte{0x11});
  sendFrame(raw, {1, 0, 0, 9, remote.key, 8, 100}, good);
  std::vector<std::byte> bad(64, std::byte{0x22});
  sendFrame(raw, {1, 0, 0, 9, remote.key, 64, 4090}, bad);
  std::vector<LinkEvent> events;
  Status s;
  auto deadline = in(milliseconds(5000));
  while (Clock::now() < deadline) {
    auto n = link->poll(events, 64);
    if (!n) {
      s = n.status();
      break;
    }
    pollfd p{link->eventFd(), POLLIN, 0};
    ::poll(&p, 1, 10);
  }
  EXPECT_EQ(s.code(), StatusCode::kProtocolError);
  EXPECT_NE(s.message().find("outside registration"), std::string::npos) << s.message();
  EXPECT_EQ(dst.bytes[100], std::byte{0x11});
  for (size_t i = 4000; i < dst.bytes.size(); ++i) ASSERT_EQ(dst.bytes[i], std::byte{0});
  for (std::byte b : neighbour.bytes) ASSERT_EQ(b, std::byte{0});
  ::close(raw);
}

TEST_F(RawPeerTest, MalformedFrameKillsTheLink) {
  int raw = -1;
  auto link = acceptRaw(&raw);
  ASSERT_TRUE(link);
  sendFrame(raw, {9, 0, 0, 0, 0, 1, 0}, std::vector<std::byte>(1));
  Status s = pollUntilError(*link);
  EXPECT_EQ(s.code(), StatusCode::kProtocolError);
  EXPECT_NE(s.message().find("unknown type 9"), std::string::npos) << s.message();
  ::close(raw);
}

TEST_F(RawPeerTest, BadHellosGetClearErrors) {
  struct Case {
    std::vector<std::byte> bytes;
    const char* says;
  };
  Hello session_hello;
  session_hello.node_name = "sidecar";
  LinkHello future = helloOf("future-node");
  future.version_min = future.version_max = 9;
  std::vector<Case> cases = {
      {encodeHello(session_hello), "sidecar session Hello"},
      {encodeLinkHello(future), "no common link version"},
      {std::vector<std::byte>(64, std::byte{0x41}), "bad magic"},
  };
  for (const Case& c : cases) {
    int raw = dialRaw();
    sendBytes(raw, c.bytes);
    auto link = b_->accept(acceptOne(listen_fd_), in(milliseconds(5000)));
    ASSERT_FALSE(link.isOk());
    EXPECT_EQ(link.status().code(), StatusCode::kProtocolError);
    EXPECT_NE(link.status().message().find(c.says), std::string::npos) << link.status().message();
    ::close(raw);
  }
}

TEST_F(RawPeerTest, BootstrapRespectsTheDeadlineWhenThePeerNeverAnswers) {
  // a dials b's port, but nobody runs b's side: the kernel accepts, no Hello ever comes back.
  auto t0 = Clock::now();
  auto link = a_->connect(address(), t0 + milliseconds(300));
  auto took = Clock::now() - t0;
  ASSERT_FALSE(link.isOk());
  EXPECT_EQ(link.status().code(), StatusCode::kTimeout) << link.status().message();
  EXPECT_GE(took, milliseconds(290));  // waitFd rounds the time left down to milliseconds
  EXPECT_LT(took, milliseconds(3000));
  ::close(acceptOne(listen_fd_));  // a's abandoned connection
  // And the acceptor side: a peer that connects and says nothing.
  int raw = dialRaw();
  t0 = Clock::now();
  auto accepted = b_->accept(acceptOne(listen_fd_), in(milliseconds(300)));
  ASSERT_FALSE(accepted.isOk());
  EXPECT_EQ(accepted.status().code(), StatusCode::kTimeout);
  EXPECT_LT(Clock::now() - t0, milliseconds(3000));
  ::close(raw);
}

TEST(LinkCodecTest, HelloRoundTripsAndFrameHeadersAreChecked) {
  LinkHello h;
  h.node_name = "node-1.example";
  h.fabric = wire::FabricKind::kVerbs;
  auto bytes = encodeLinkHello(h);
  auto parsed = parseLinkHello(bytes);
  ASSERT_TRUE(parsed.isOk()) << parsed.status().message();
  EXPECT_EQ(parsed->node_name, h.node_name);
  EXPECT_EQ(parsed->fabric, wire::FabricKind::kVerbs);
  bytes[8] = std::byte{2};  // fabric kind shm: not a link
  EXPECT_FALSE(parseLinkHello(bytes).isOk());

  EXPECT_TRUE(checkLinkFrameHeader({1, 0, 0, 5, 1, 100, 0}).isOk());
  EXPECT_TRUE(checkLinkFrameHeader({2, 0, 0, 0, 0, 100, 0}).isOk());
  EXPECT_FALSE(checkLinkFrameHeader({2, 0, 0, 0, 0, 0, 0}).isOk()) << "empty control message";
  EXPECT_FALSE(checkLinkFrameHeader({2, 0, 0, 1, 0, 10, 0}).isOk()) << "control with an imm";
  EXPECT_FALSE(checkLinkFrameHeader({1, 1, 0, 5, 1, 100, 0}).isOk()) << "reserved bits";
  EXPECT_FALSE(checkLinkFrameHeader({1, 0, 0, 0xf0000000, 1, 1, 0}).isOk()) << "reserved imm";
  EXPECT_FALSE(checkLinkFrameHeader({1, 0, 0, 5, 1, wl::kMaxWriteBytes + 1, 0}).isOk());
}

}  // namespace
}  // namespace rdmesh::transport
