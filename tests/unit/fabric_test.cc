// Fabric backends (tcp and shm), in one process: bootstrap, WRITE WITH IMMEDIATE and its
// completion, ordering, bounds, peer loss, doorbells, and bootstrap failures.
#include "rdmesh/transport/fabric.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "rdmesh/transport/hello.h"
#include "rdmesh/transport/wire.h"

namespace rdmesh::transport {
namespace {

using std::chrono::milliseconds;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kBootstrapTimeout{5000};

// ---------------------------------------------------------------- helpers

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    reset(std::exchange(o.fd_, -1));
    return *this;
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

bool waitReadable(int fd, milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  int n;
  do {
    n = ::poll(&p, 1, static_cast<int>(timeout.count()));
  } while (n < 0 && errno == EINTR);
  return n == 1;
}

SessionGeometry smallGeometry() {
  SessionGeometry g;
  g.max_streams = 4;
  g.ring_bytes = 4096;
  g.control_ring_bytes = 16384;
  g.recv_depth = 64;
  g.keepalive_timeout_ms = 1000;
  return g;
}

Hello helloFor(wire::FabricKind kind, std::string name) {
  Hello h;
  h.fabric = kind;
  h.node_name = std::move(name);
  h.geometry = smallGeometry();
  return h;
}

// Blocking send/recv on a raw bootstrap socket (the test's hand-made peer).
void sendRaw(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) {
      pollfd pf{fd, POLLOUT, 0};
      ::poll(&pf, 1, 1000);
      continue;
    }
    ASSERT_GT(w, 0) << strerror(errno);
    p += w;
    n -= static_cast<size_t>(w);
  }
}

std::vector<std::byte> recvRaw(int fd, size_t n) {
  std::vector<std::byte> out(n);
  size_t got = 0;
  auto deadline = Clock::now() + kBootstrapTimeout;
  while (got < n && Clock::now() < deadline) {
    if (!waitReadable(fd, milliseconds(100))) continue;
    ssize_t r = ::recv(fd, out.data() + got, n - got, MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return out;
}

// Reads one Hello from a raw socket.
Result<Hello> recvHelloRaw(int fd) {
  auto header = recvRaw(fd, sizeof(wire::HelloHeader));
  auto size = helloSize(header);
  if (!size) return size.status();
  auto rest = recvRaw(fd, *size - header.size());
  header.insert(header.end(), rest.begin(), rest.end());
  return parseHello(header);
}

struct Backend {
  std::string name;
  std::function<std::unique_ptr<Fabric>()> make;
};

std::string backendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param.name;
}

class FabricTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    fabric_ = GetParam().make();
    kind_ = fabric_->kind();
    char tmpl[] = "/tmp/rdmesh-fabric-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  bool isShm() const { return kind_ == wire::FabricKind::kShm; }

  // Starts a listener; address_ is what a dialer passes to connect().
  void listen() {
    std::string address = isShm() ? dir_ + "/listen.sock" : "127.0.0.1:0";
    auto fd = fabric_->listen(address);
    ASSERT_TRUE(fd.isOk()) << fd.status().message();
    listen_fd_.reset(*fd);
    if (isShm()) {
      address_ = address;
    } else {
      sockaddr_in sin{};
      socklen_t len = sizeof(sin);
      ASSERT_EQ(::getsockname(listen_fd_.get(), reinterpret_cast<sockaddr*>(&sin), &len), 0);
      address_ = "127.0.0.1:" + std::to_string(ntohs(sin.sin_port));
    }
  }

  // The accepted bootstrap socket (what onListen gets from accept4).
  Fd acceptRaw() {
    EXPECT_TRUE(waitReadable(listen_fd_.get(), kBootstrapTimeout)) << "nobody dialed";
    return Fd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  }

  // A plain socket connected to the listener: the test plays a (misbehaving) peer.
  Fd dialRaw() {
    if (isShm()) {
      Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
      sockaddr_un sun{};
      sun.sun_family = AF_UNIX;
      std::strncpy(sun.sun_path, address_.c_str(), sizeof(sun.sun_path) - 1);
      EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun)), 0)
          << strerror(errno);
      return fd;
    }
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port =
        htons(static_cast<uint16_t>(std::stoi(address_.substr(address_.rfind(':') + 1))));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof(sin)), 0)
        << strerror(errno);
    return fd;
  }

  std::unique_ptr<MemoryRegion> region(const Hello& hello) {
    auto r = fabric_->registerRegion(hello.geometry.receiveAreaBytes());
    EXPECT_TRUE(r.isOk()) << r.status().message();
    return r.isOk() ? std::move(r.value()) : nullptr;
  }

  Result<std::unique_ptr<FabricConnection>> acceptWith(Fd fd, const Hello& hello,
                                                       milliseconds timeout = kBootstrapTimeout) {
    return fabric_->accept(fd.release(), hello, region(hello), Clock::now() + timeout);
  }

  // Dials on a thread and accepts on this one, as the session manager does.
  struct DialAccept {
    Result<std::unique_ptr<FabricConnection>> dialer = Status{StatusCode::kInternal, "unset"};
    Result<std::unique_ptr<FabricConnection>> acceptor = Status{StatusCode::kInternal, "unset"};
  };
  DialAccept dialAndAccept(const Hello& dialer_hello, const Hello& acceptor_hello) {
    DialAccept out;
    std::thread dialer([&] {
      out.dialer = fabric_->connect(address_, dialer_hello, region(dialer_hello),
                                    Clock::now() + kBootstrapTimeout);
    });
    out.acceptor = acceptWith(acceptRaw(), acceptor_hello);
    dialer.join();
    return out;
  }

  void connectPair() {
    listen();
    auto r = dialAndAccept(helloFor(kind_, "node-a"), helloFor(kind_, "node-b"));
    ASSERT_TRUE(r.dialer.isOk()) << r.dialer.status().message();
    ASSERT_TRUE(r.acceptor.isOk()) << r.acceptor.status().message();
    a_ = std::move(r.dialer.value());
    b_ = std::move(r.acceptor.value());
  }

  // Polls `conn` until `want` completions arrived or the deadline passed.
  std::vector<Completion> pollFor(FabricConnection& conn, size_t want,
                                  milliseconds timeout = milliseconds(5000)) {
    std::vector<Completion> got;
    auto deadline = Clock::now() + timeout;
    Completion buf[64];
    while (got.size() < want && Clock::now() < deadline) {
      auto n = conn.poll(buf);
      EXPECT_TRUE(n.isOk()) << n.status().message();
      if (!n.isOk()) break;
      got.insert(got.end(), buf, buf + *n);
      if (*n == 0 && !conn.pollsUsefully()) waitReadable(conn.eventFd(), milliseconds(10));
    }
    return got;
  }

  // Stages, fills with `bytes`, posts and flushes one write.
  void write(FabricConnection& conn, uint64_t offset, std::span<const std::byte> bytes,
             uint32_t imm) {
    auto span = conn.stageWrite(offset, bytes.size());
    ASSERT_EQ(span.size(), bytes.size());
    std::memcpy(span.data(), bytes.data(), bytes.size());
    conn.postWriteWithImm(bytes.size(), imm);
  }

  // Polls until the connection reports an error (or the deadline passes).
  Status pollUntilError(FabricConnection& conn, milliseconds timeout = milliseconds(5000)) {
    auto deadline = Clock::now() + timeout;
    Completion buf[16];
    while (Clock::now() < deadline) {
      auto n = conn.poll(buf);
      if (!n.isOk()) return n.status();
      if (*n == 0) waitReadable(conn.eventFd(), milliseconds(10));
    }
    return {};
  }

  std::unique_ptr<Fabric> fabric_;
  wire::FabricKind kind_{};
  std::string dir_;
  Fd listen_fd_;
  std::string address_;
  std::unique_ptr<FabricConnection> a_;  // dialer, "node-a"
  std::unique_ptr<FabricConnection> b_;  // acceptor, "node-b"
};

std::string kindMessage(const std::string& peer, wire::FabricKind theirs, wire::FabricKind ours) {
  return "peer '" + peer + "' runs the " + toString(theirs) + " fabric, we run " + toString(ours);
}

std::vector<std::byte> pattern(size_t n, uint32_t seed) {
  std::vector<std::byte> out(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& b : out) {
    x = x * 1103515245u + 12345u;
    b = static_cast<std::byte>(x >> 24);
  }
  return out;
}

// ---------------------------------------------------------------- connected pair

TEST_P(FabricTest, BootstrapExchangesHellos) {
  connectPair();
  ASSERT_TRUE(a_ && b_);
  EXPECT_EQ(a_->kind(), kind_);
  EXPECT_EQ(b_->kind(), kind_);
  EXPECT_EQ(a_->peerHello().node_name, "node-b");
  EXPECT_EQ(b_->peerHello().node_name, "node-a");
  EXPECT_EQ(a_->peerHello().geometry.ring_bytes, smallGeometry().ring_bytes);
  EXPECT_EQ(a_->version(), wire::kVersionMax);
  EXPECT_EQ(b_->version(), wire::kVersionMax);
  EXPECT_EQ(a_->receiveArea().size(), smallGeometry().receiveAreaBytes());
  EXPECT_EQ(b_->receiveArea().size(), smallGeometry().receiveAreaBytes());
  EXPECT_EQ(a_->pollsUsefully(), isShm());
  EXPECT_EQ(a_->eventFdIsDoorbell(), isShm());
  EXPECT_GE(a_->eventFd(), 0);
  if (isShm()) {
    EXPECT_GE(a_->livenessFd(), 0);
  } else {
    EXPECT_EQ(a_->livenessFd(), -1);
  }
}

TEST_P(FabricTest, WriteWithImmLandsAtOffsetWithItsCompletion) {
  connectPair();
  ASSERT_TRUE(a_ && b_);
  for (auto [from, to] : {std::pair{a_.get(), b_.get()}, std::pair{b_.get(), a_.get()}}) {
    auto area = to->receiveArea();
    std::fill(area.begin(), area.end(), std::byte{0});
    const uint64_t offset = 16384 + 100;
    auto bytes = pattern(50, 7);
    // Stage more than is posted: only the posted bytes travel.
    auto span = from->stageWrite(offset, 64);
    ASSERT_EQ(span.size(), 64u);
    std::memcpy(span.data(), bytes.data(), bytes.size());
    uint32_t imm = wire::encodeImm(wire::ImmType::kData, 2, 50);
    from->postWriteWithImm(50, imm);
    ASSERT_TRUE(from->flush().isOk());
    EXPECT_FALSE(from->wantsWritable());

    auto got = pollFor(*to, 1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].imm, imm);
    EXPECT_EQ(got[0].byte_len, 50u);
    EXPECT_EQ(std::memcmp(area.data() + offset, bytes.data(), bytes.size()), 0);
    for (size_t i = 0; i < area.size(); ++i) {
      if (i >= offset && i < offset + 50) continue;
      ASSERT_EQ(area[i], std::byte{0}) << "stray byte at " << i;
    }
    // Nothing more.
    Completion more[4];
    auto n = to->poll(more);
    ASSERT_TRUE(n.isOk());
    EXPECT_EQ(*n, 0u);
  }
}

TEST_P(FabricTest, ReleasedReceiveMemoryReadsZeroAndTakesNewWrites) {
  connectPair();
  ASSERT_TRUE(a_ && b_);
  auto area = b_->receiveArea();
  const uint64_t offset = 16384;  // page aligned, as stream rings are
  const size_t len = 8192;
  auto bytes = pattern(len, 3);
  write(*a_, offset, bytes, wire::encodeImm(wire::ImmType::kData, 1, len));
  ASSERT_TRUE(a_->flush().isOk());
  ASSERT_EQ(pollFor(*b_, 1).size(), 1u);
  ASSERT_EQ(std::memcmp(area.data() + offset, bytes.data(), len), 0);

  b_->releaseReceiveMemory(offset, len);
  for (size_t i = 0; i < len; ++i) ASSERT_EQ(area[offset + i], std::byte{0}) << "byte " << i;

  // The released range is usable again: the peer's next write lands there.
  auto again = pattern(len, 9);
  write(*a_, offset, again, wire::encodeImm(wire::ImmType::kData, 1, len));
  ASSERT_TRUE(a_->flush().isOk());
  ASSERT_EQ(pollFor(*b_, 1).size(), 1u);
  EXPECT_EQ(std::memcmp(area.data() + offset, again.data(), len), 0);
}

TEST_P(FabricTest, CancelledStageSendsNothing) {
  connectPair();
  ASSERT_TRUE(a_ && b_);
  auto span = a_->stageWrite(0, 16);
  ASSERT_EQ(span.size(), 16u);
  a_->postWriteWithImm(0, 0);
  auto bytes = pattern(8, 1);
  write(*a_, 8, bytes, wire::encodeImm(wire::ImmType::kControl, 0, 8));
  ASSERT_TRUE(a_->flush().isOk());
  auto got = pollFor(*b_, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].byte_len, 8u);
  EXPECT_EQ(wire::immType(got[0].imm), wire::ImmType::kControl);
}

TEST_P(FabricTest, TenThousandWritesArriveInOrder) {
  connectPair();
  ASSERT_TRUE(a_ && b_);
  // Batches no larger than the receive queue (recv_depth); within a batch, writes go to
  // disjoint offsets so every one can be checked after the batch arrived.
  constexpr int kWrites = 10000;
  constexpr int kBatch = 32;
  constexpr size_t kStride = 1024;
  auto area = b_->receiveArea();
  ASSERT_GE(area.size(), kBatch * kStride);
  int next_expected = 0;
  for (int first = 0; first < kWrites; first += kBatch) {
    int last = std::min(first + kBatch, kWrites);
    for (int i = first; i < last; ++i) {
      size_t len = 1 + static_cast<size_t>(i) % 1000;
      auto bytes = pattern(len, static_cast<uint32_t>(i));
      write(*a_, (i - first) * kStride, bytes,
            wire::encodeImm(wire::ImmType::kData, static_cast<uint32_t>(i) % wire::kMaxSlots,
                            static_cast<uint32_t>(len)));
    }
    ASSERT_TRUE(a_->flush().isOk());
    auto got = pollFor(*b_, last - first);
    ASSERT_EQ(got.size(), static_cast<size_t>(last - first)) << "batch at " << first;
    for (int i = first; i < last; ++i) {
      const Completion& c = got[i - first];
      size_t len = 1 + static_cast<size_t>(i) % 1000;
      ASSERT_EQ(wire::immSlot(c.imm), static_cast<uint32_t>(i) % wire::kMaxSlots)
          << "completion " << i << " out of order";
      ASSERT_EQ(c.byte_len, len);
      auto bytes = pattern(len, static_cast<uint32_t>(i));
      ASSERT_EQ(std::memcmp(area.data() + (i - first) * kStride, bytes.data(), len), 0)
          << "payload of write " << i;
      ++next_expected;
    }
  }
  EXPECT_EQ(next_expected, kWrites);
}

TEST_P(FabricTest, PeerClosingIsReported) {
  connectPair();
  ASSERT_TRUE(a_ && b_);
  b_.reset();
  if (isShm()) {
    // The completion queue cannot tell; the bootstrap socket's hang-up does.
    ASSERT_TRUE(waitReadable(a_->livenessFd(), milliseconds(5000)));
    char c;
    EXPECT_EQ(::recv(a_->livenessFd(), &c, 1, MSG_DONTWAIT), 0);
  } else {
    Status s = pollUntilError(*a_);
    ASSERT_FALSE(s.isOk()) << "poll() never reported the closed peer";
    EXPECT_EQ(s.code(), StatusCode::kUnavailable);
    EXPECT_THAT(s.message(), HasSubstr("closed"));
  }
}

TEST_P(FabricTest, OutOfBoundsWriteIsRefused) {
  if (isShm()) {
    connectPair();
    ASSERT_TRUE(a_ && b_);
    const uint64_t size = smallGeometry().receiveAreaBytes();
    EXPECT_TRUE(a_->stageWrite(size - 10, 11).empty());
    EXPECT_TRUE(a_->stageWrite(size, 1).empty());
    EXPECT_TRUE(a_->stageWrite(size + 1, 0).empty());
    EXPECT_TRUE(a_->stageWrite(~uint64_t{0}, 1).empty());
    EXPECT_TRUE(a_->stageWrite(~uint64_t{0} - 4, 8).empty());  // offset + len wraps
    // Exactly up to the end is fine.
    auto span = a_->stageWrite(size - 10, 10);
    EXPECT_EQ(span.size(), 10u);
    a_->postWriteWithImm(0, 0);
    return;
  }
  // tcp: the sender cannot check the peer's bounds; the receiver must refuse the frame.
  struct BadFrame {
    const char* what;
    uint64_t offset;
    uint32_t length;
    uint32_t imm_length;
  };
  const uint64_t size = smallGeometry().receiveAreaBytes();
  const BadFrame frames[] = {
      {"past the end", size - 8, 16, 16},       {"at the end", size, 1, 1},
      {"far beyond", 1ull << 40, 4, 4},         {"offset+length wraps", ~uint64_t{0} - 4, 16, 16},
      {"length disagrees with imm", 0, 16, 15}, {"empty", 0, 0, 0},
  };
  listen();
  for (const BadFrame& f : frames) {
    SCOPED_TRACE(f.what);
    Fd raw = dialRaw();
    Hello hello = helloFor(kind_, "raw-peer");
    auto encoded = encodeHello(hello);
    sendRaw(raw.get(), encoded.data(), encoded.size());
    auto conn = acceptWith(acceptRaw(), helloFor(kind_, "node-b"));
    ASSERT_TRUE(conn.isOk()) << conn.status().message();
    auto their_hello = recvHelloRaw(raw.get());
    ASSERT_TRUE(their_hello.isOk()) << their_hello.status().message();

    wire::TcpFrameHeader h{wire::encodeImm(wire::ImmType::kData, 0, f.imm_length), f.length,
                           f.offset};
    std::vector<std::byte> frame(sizeof(h) + f.length, std::byte{0xAB});
    std::memcpy(frame.data(), &h, sizeof(h));
    sendRaw(raw.get(), frame.data(), frame.size());
    Status s = pollUntilError(*conn.value());
    ASSERT_FALSE(s.isOk()) << "the bad frame was accepted";
    EXPECT_EQ(s.code(), StatusCode::kProtocolError) << s.message();
    EXPECT_THAT(s.message(), HasSubstr("tcp frame"));
    // Nothing landed.
    auto area = conn.value()->receiveArea();
    EXPECT_EQ(std::count(area.begin(), area.end(), std::byte{0xAB}), 0);
  }
}

// Tests of one backend only.
class TcpFabricTest : public FabricTest {};
class ShmFabricTest : public FabricTest {};

// Large payloads that arrive in pieces are read straight into the receive area (readv), and the
// frames around them still come out whole and in order.
TEST_P(TcpFabricTest, LargeFramesInPiecesAmongSmallOnesArriveIntactAndInOrder) {
  listen();
  Fd raw = dialRaw();
  auto encoded = encodeHello(helloFor(kind_, "raw-peer"));
  sendRaw(raw.get(), encoded.data(), encoded.size());
  auto conn = acceptWith(acceptRaw(), helloFor(kind_, "node-b"));
  ASSERT_TRUE(conn.isOk()) << conn.status().message();
  struct Piece {
    uint32_t length;
    uint64_t offset;
    uint8_t seed;
  };
  // Disjoint places in the 32 KiB test area; three payloads above the direct-read threshold.
  const std::vector<Piece> pieces = {
      {300, 0, 1}, {12000, 512, 2}, {100, 12600, 3}, {9000, 12800, 4}, {10000, 22000, 5}};
  std::vector<std::byte> stream;
  for (const Piece& p : pieces) {
    wire::TcpFrameHeader h{wire::encodeImm(wire::ImmType::kData, 1, p.length), p.length, p.offset};
    const auto* hb = reinterpret_cast<const std::byte*>(&h);
    stream.insert(stream.end(), hb, hb + sizeof(h));
    auto bytes = pattern(p.length, p.seed);
    stream.insert(stream.end(), bytes.begin(), bytes.end());
  }
  std::vector<Completion> got;
  Completion buf[8];
  for (size_t at = 0; at < stream.size(); at += 777) {
    sendRaw(raw.get(), stream.data() + at, std::min<size_t>(777, stream.size() - at));
    ASSERT_TRUE(waitReadable(conn.value()->eventFd(), milliseconds(5000)));
    auto n = conn.value()->poll(buf);
    ASSERT_TRUE(n.isOk()) << n.status().message();
    got.insert(got.end(), buf, buf + *n);
  }
  for (int i = 0; i < 100 && got.size() < pieces.size(); ++i) {
    auto n = conn.value()->poll(buf);
    ASSERT_TRUE(n.isOk()) << n.status().message();
    got.insert(got.end(), buf, buf + *n);
  }
  ASSERT_EQ(got.size(), pieces.size());
  auto area = conn.value()->receiveArea();
  for (size_t i = 0; i < pieces.size(); ++i) {
    EXPECT_EQ(got[i].byte_len, pieces[i].length) << i;
    auto bytes = pattern(pieces[i].length, pieces[i].seed);
    EXPECT_EQ(std::memcmp(area.data() + pieces[i].offset, bytes.data(), bytes.size()), 0) << i;
  }
}

TEST_P(TcpFabricTest, FrameSplitAcrossSegmentsIsReassembled) {
  listen();
  Fd raw = dialRaw();
  auto encoded = encodeHello(helloFor(kind_, "raw-peer"));
  sendRaw(raw.get(), encoded.data(), encoded.size());
  auto conn = acceptWith(acceptRaw(), helloFor(kind_, "node-b"));
  ASSERT_TRUE(conn.isOk()) << conn.status().message();
  auto bytes = pattern(300, 3);
  wire::TcpFrameHeader h{wire::encodeImm(wire::ImmType::kData, 1, 300), 300, 5000};
  std::vector<std::byte> frame(sizeof(h));
  std::memcpy(frame.data(), &h, sizeof(h));
  frame.insert(frame.end(), bytes.begin(), bytes.end());
  Completion buf[4];
  // Byte-sized pieces, polling in between: no completion until the last byte.
  for (size_t i = 0; i < frame.size(); ++i) {
    sendRaw(raw.get(), frame.data() + i, 1);
    ASSERT_TRUE(waitReadable(conn.value()->eventFd(), milliseconds(5000)));
    auto n = conn.value()->poll(buf);
    ASSERT_TRUE(n.isOk()) << n.status().message();
    if (i + 1 < frame.size()) {
      ASSERT_EQ(*n, 0u) << "completion before the frame was whole, at byte " << i;
    } else {
      ASSERT_EQ(*n, 1u);
      EXPECT_EQ(buf[0].byte_len, 300u);
    }
  }
  EXPECT_EQ(std::memcmp(conn.value()->receiveArea().data() + 5000, bytes.data(), 300), 0);
}

// Watches a doorbell the way the session does: edge-triggered, nothing read back. Each ring
// (eventfd write) is one edge.
class EdgeWatcher {
 public:
  explicit EdgeWatcher(int fd) : ep_(::epoll_create1(EPOLL_CLOEXEC)) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    ev.data.fd = fd;
    EXPECT_EQ(::epoll_ctl(ep_.get(), EPOLL_CTL_ADD, fd, &ev), 0) << strerror(errno);
  }
  // Whether the doorbell rang since the last call.
  bool rang(milliseconds timeout) {
    epoll_event ev;
    int n;
    do {
      n = ::epoll_wait(ep_.get(), &ev, 1, static_cast<int>(timeout.count()));
    } while (n < 0 && errno == EINTR);
    return n == 1;
  }

 private:
  Fd ep_;
};

TEST_P(ShmFabricTest, DoorbellRingsOnlyASleepingPeer) {
  connectPair();
  ASSERT_TRUE(a_ && b_);
  EXPECT_TRUE(b_->eventFdIsDoorbell());
  auto bytes = pattern(32, 9);
  const uint32_t imm = wire::encodeImm(wire::ImmType::kData, 0, 32);
  EdgeWatcher doorbell(b_->eventFd());

  // Idle: b may sleep, and its doorbell is quiet.
  ASSERT_TRUE(b_->prepareToSleep());
  EXPECT_FALSE(waitReadable(b_->eventFd(), milliseconds(0)));
  EXPECT_FALSE(doorbell.rang(milliseconds(0)));
  // a posts and flushes: b's doorbell rings.
  write(*a_, 16384, bytes, imm);
  ASSERT_TRUE(a_->flush().isOk());
  ASSERT_TRUE(waitReadable(b_->eventFd(), milliseconds(5000))) << "sleeping peer not woken";
  EXPECT_TRUE(doorbell.rang(milliseconds(5000)));
  b_->afterWakeup();
  EXPECT_EQ(pollFor(*b_, 1).size(), 1u);

  // b is awake (it never announced sleep since): a's flush rings nothing.
  write(*a_, 16384, bytes, imm);
  ASSERT_TRUE(a_->flush().isOk());
  EXPECT_FALSE(doorbell.rang(milliseconds(0))) << "an awake peer was rung";
  // A completion is pending: b must not sleep.
  EXPECT_FALSE(b_->prepareToSleep());
  EXPECT_EQ(pollFor(*b_, 1).size(), 1u);
  // ... and having said so, it is not marked sleeping either.
  write(*a_, 16384, bytes, imm);
  ASSERT_TRUE(a_->flush().isOk());
  EXPECT_FALSE(doorbell.rang(milliseconds(0))) << "refused sleep left the mark set";
  EXPECT_EQ(pollFor(*b_, 1).size(), 1u);

  // Announced sleep, then came back (markAwake): no doorbell either.
  ASSERT_TRUE(b_->prepareToSleep());
  b_->markAwake();
  write(*a_, 16384, bytes, imm);
  ASSERT_TRUE(a_->flush().isOk());
  EXPECT_FALSE(doorbell.rang(milliseconds(0)));
  EXPECT_EQ(pollFor(*b_, 1).size(), 1u);

  // A flush with nothing posted rings nothing, even for a sleeper.
  ASSERT_TRUE(b_->prepareToSleep());
  ASSERT_TRUE(a_->flush().isOk());
  EXPECT_FALSE(doorbell.rang(milliseconds(0)));

  // Several writes batched into one flush ring a sleeper once, and all of them arrive.
  for (int i = 0; i < 5; ++i) write(*a_, 16384, bytes, imm);
  ASSERT_TRUE(a_->flush().isOk());
  EXPECT_TRUE(doorbell.rang(milliseconds(5000)));
  b_->afterWakeup();
  EXPECT_EQ(pollFor(*b_, 5).size(), 5u);
  // The ring cleared the mark: the next flush does not ring again.
  write(*a_, 16384, bytes, imm);
  ASSERT_TRUE(a_->flush().isOk());
  EXPECT_FALSE(doorbell.rang(milliseconds(0)));
  EXPECT_EQ(pollFor(*b_, 1).size(), 1u);
}

TEST_P(ShmFabricTest, CompletionQueueOverrunIsAnError) {
  connectPair();
  ASSERT_TRUE(a_ && b_);
  auto bytes = pattern(4, 1);
  const uint32_t depth = smallGeometry().recv_depth;
  for (uint32_t i = 0; i < depth; ++i) {
    write(*a_, 0, bytes, wire::encodeImm(wire::ImmType::kData, 0, 4));
  }
  ASSERT_TRUE(a_->flush().isOk()) << "a full queue is fine";
  write(*a_, 0, bytes, wire::encodeImm(wire::ImmType::kData, 0, 4));
  Status s = a_->flush();
  ASSERT_FALSE(s.isOk()) << "posting beyond the peer's queue must be reported";
  EXPECT_THAT(s.message(), HasSubstr("overrun"));
}

// ---------------------------------------------------------------- bootstrap failures

TEST_P(FabricTest, MismatchedFabricKindFailsBothSides) {
  listen();
  wire::FabricKind other = isShm() ? wire::FabricKind::kTcp : wire::FabricKind::kShm;
  // The dialer announces the other kind (as a misconfigured peer would).
  auto r = dialAndAccept(helloFor(other, "node-a"), helloFor(kind_, "node-b"));
  ASSERT_FALSE(r.acceptor.isOk());
  EXPECT_EQ(r.acceptor.status().code(), StatusCode::kProtocolError);
  EXPECT_THAT(r.acceptor.status().message(), HasSubstr(kindMessage("node-a", other, kind_)));
  ASSERT_FALSE(r.dialer.isOk()) << "the dialer must not come up alone";

  // The other way round: a raw acceptor answers with the other kind.
  std::thread dialer;
  Result<std::unique_ptr<FabricConnection>> dialed = Status{StatusCode::kInternal, "unset"};
  dialer = std::thread([&] {
    dialed = fabric_->connect(address_, helloFor(kind_, "node-a"), region(helloFor(kind_, "x")),
                              Clock::now() + kBootstrapTimeout);
  });
  Fd raw = acceptRaw();
  auto their = recvHelloRaw(raw.get());
  ASSERT_TRUE(their.isOk());
  auto encoded = encodeHello(helloFor(other, "node-b"));
  sendRaw(raw.get(), encoded.data(), encoded.size());
  dialer.join();
  ASSERT_FALSE(dialed.isOk());
  EXPECT_EQ(dialed.status().code(), StatusCode::kProtocolError);
  EXPECT_THAT(dialed.status().message(), HasSubstr(kindMessage("node-b", other, kind_)));
}

TEST_P(FabricTest, BadMagicFailsWithAClearError) {
  listen();
  Fd raw = dialRaw();
  const char request[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n12345";  // >= 32 bytes
  sendRaw(raw.get(), request, sizeof(request));
  auto conn = acceptWith(acceptRaw(), helloFor(kind_, "node-b"));
  ASSERT_FALSE(conn.isOk());
  EXPECT_EQ(conn.status().code(), StatusCode::kProtocolError);
  EXPECT_THAT(conn.status().message(), HasSubstr("bad magic"));
  EXPECT_THAT(conn.status().message(), HasSubstr("not an rdmesh peer"));
}

TEST_P(FabricTest, InvalidHelloFailsWithAClearError) {
  listen();
  Fd raw = dialRaw();
  Hello bad = helloFor(kind_, "node-a");
  bad.geometry.ring_bytes = 5000;
  auto encoded = encodeHello(bad);
  sendRaw(raw.get(), encoded.data(), encoded.size());
  auto conn = acceptWith(acceptRaw(), helloFor(kind_, "node-b"));
  ASSERT_FALSE(conn.isOk());
  EXPECT_THAT(conn.status().message(), HasSubstr("ring_bytes 5000"));
}

TEST_P(FabricTest, NoCommonVersionFails) {
  listen();
  Fd raw = dialRaw();
  Hello future = helloFor(kind_, "node-a");
  future.version_min = wire::kVersionMax + 1;
  future.version_max = wire::kVersionMax + 2;
  auto encoded = encodeHello(future);
  sendRaw(raw.get(), encoded.data(), encoded.size());
  auto conn = acceptWith(acceptRaw(), helloFor(kind_, "node-b"));
  ASSERT_FALSE(conn.isOk());
  EXPECT_THAT(conn.status().message(), HasSubstr("no common protocol version"));
}

TEST_P(FabricTest, PeerHangingUpDuringBootstrapFails) {
  listen();
  Fd raw = dialRaw();
  auto encoded = encodeHello(helloFor(kind_, "node-a"));
  sendRaw(raw.get(), encoded.data(), 10);  // a partial Hello, then gone
  raw.reset();
  auto start = Clock::now();
  auto conn = acceptWith(acceptRaw(), helloFor(kind_, "node-b"));
  ASSERT_FALSE(conn.isOk());
  EXPECT_EQ(conn.status().code(), StatusCode::kUnavailable) << conn.status().message();
  EXPECT_LT(Clock::now() - start, milliseconds(2000)) << "a hang-up must not wait the deadline";
}

TEST_P(FabricTest, SilentPeerTimesOutAtTheDeadline) {
  listen();
  Fd raw = dialRaw();  // connects, never says anything
  const milliseconds timeout(300);
  auto start = Clock::now();
  auto conn = acceptWith(acceptRaw(), helloFor(kind_, "node-b"), timeout);
  auto took = Clock::now() - start;
  ASSERT_FALSE(conn.isOk());
  EXPECT_EQ(conn.status().code(), StatusCode::kTimeout) << conn.status().message();
  EXPECT_GE(took, timeout - milliseconds(50));
  EXPECT_LT(took, timeout + milliseconds(2000));
}

TEST_P(FabricTest, ConnectToNothingFailsWithinTheDeadline) {
  // Nobody listening at all: refused at once.
  std::string nothing;
  if (isShm()) {
    nothing = dir_ + "/nobody.sock";
  } else {
    // A port that was free a moment ago.
    Fd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(probe.get(), reinterpret_cast<sockaddr*>(&sin), sizeof(sin)), 0);
    socklen_t len = sizeof(sin);
    ::getsockname(probe.get(), reinterpret_cast<sockaddr*>(&sin), &len);
    nothing = "127.0.0.1:" + std::to_string(ntohs(sin.sin_port));
  }
  const milliseconds timeout(300);
  Hello hello = helloFor(kind_, "node-a");
  auto start = Clock::now();
  auto conn = fabric_->connect(nothing, hello, region(hello), Clock::now() + timeout);
  ASSERT_FALSE(conn.isOk());
  EXPECT_EQ(conn.status().code(), StatusCode::kUnavailable) << conn.status().message();
  EXPECT_LT(Clock::now() - start, timeout + milliseconds(2000));

  // A listener that never accepts nor answers: the deadline ends the wait.
  listen();
  start = Clock::now();
  conn = fabric_->connect(address_, hello, region(hello), Clock::now() + timeout);
  auto took = Clock::now() - start;
  ASSERT_FALSE(conn.isOk());
  EXPECT_EQ(conn.status().code(), StatusCode::kTimeout) << conn.status().message();
  EXPECT_LT(took, timeout + milliseconds(2000));

  // Unparseable addresses fail at once.
  auto bad = fabric_->connect(isShm() ? "" : "not-an-address", hello, region(hello),
                              Clock::now() + timeout);
  EXPECT_FALSE(bad.isOk());
}

INSTANTIATE_TEST_SUITE_P(Backends, FabricTest,
                         ::testing::Values(Backend{"tcp", makeTcpFabric},
                                           Backend{"shm", makeShmFabric}),
                         backendName);
INSTANTIATE_TEST_SUITE_P(Backends, TcpFabricTest, ::testing::Values(Backend{"tcp", makeTcpFabric}),
                         backendName);
INSTANTIATE_TEST_SUITE_P(Backends, ShmFabricTest, ::testing::Values(Backend{"shm", makeShmFabric}),
                         backendName);

}  // namespace
}  // namespace rdmesh::transport
