#include "stream_link.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>

#include "rdmesh/common/address.h"

namespace rdmesh::testing {

namespace {

using transport::Deadline;
using transport::LinkEvent;
using transport::RemoteMemory;

enum FrameType : uint32_t { kName = 1, kWrite = 2, kControl = 3 };
struct FrameHeader {
  uint32_t type;
  uint32_t len;
  uint32_t imm;
  uint32_t key;
  uint64_t offset;
};
static_assert(sizeof(FrameHeader) == 24);

std::string errnoText(const char* what) {
  return std::string(what) + ": " + strerror(errno);
}

// Blocking I/O on a non-blocking fd, bounded by the deadline.
Status ioAll(int fd, std::byte* p, size_t n, bool send, Deadline deadline) {
  while (n > 0) {
    ssize_t k = send ? ::send(fd, p, n, MSG_NOSIGNAL) : ::recv(fd, p, n, 0);
    if (k > 0) {
      p += k;
      n -= static_cast<size_t>(k);
      continue;
    }
    if (k == 0) return unavailable("the peer closed the bootstrap connection");
    if (errno != EAGAIN && errno != EINTR) return unavailable(errnoText(send ? "send" : "recv"));
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return {StatusCode::kTimeout, "bootstrap deadline passed"};
    pollfd pfd{fd, static_cast<short>(send ? POLLOUT : POLLIN), 0};
    ::poll(&pfd, 1, static_cast<int>(left.count()));
  }
  return {};
}

class Registry {
 public:
  uint32_t add(std::span<std::byte> bytes) {
    std::lock_guard lock(mu_);
    uint32_t key = next_++;
    regions_[key] = bytes;
    return key;
  }
  void remove(uint32_t key) {
    std::lock_guard lock(mu_);
    regions_.erase(key);
  }
  std::span<std::byte> find(uint32_t key) const {
    std::lock_guard lock(mu_);
    auto it = regions_.find(key);
    return it == regions_.end() ? std::span<std::byte>() : it->second;
  }
  size_t size() const {
    std::lock_guard lock(mu_);
    return regions_.size();
  }

 private:
  mutable std::mutex mu_;
  uint32_t next_ = 1;
  std::map<uint32_t, std::span<std::byte>> regions_;
};

class StreamMemory final : public transport::RegisteredMemory {
 public:
  StreamMemory(std::shared_ptr<Registry> registry, std::span<std::byte> bytes)
      : registry_(std::move(registry)), bytes_(bytes), key_(registry_->add(bytes)) {}
  ~StreamMemory() override { registry_->remove(key_); }
  std::span<std::byte> bytes() const override { return bytes_; }
  uint64_t pinnedBytes() const override { return 0; }
  uint32_t key() const { return key_; }

 private:
  std::shared_ptr<Registry> registry_;
  std::span<std::byte> bytes_;
  uint32_t key_;
};

class StreamLink final : public transport::PairLink {
 public:
  StreamLink(int fd, std::string peer, std::shared_ptr<Registry> registry)
      : fd_(fd), peer_(std::move(peer)), registry_(std::move(registry)) {}
  ~StreamLink() override { ::close(fd_); }

  wire::FabricKind kind() const override { return wire::FabricKind::kTcp; }
  const std::string& peerNode() const override { return peer_; }
  const std::string& fallbackReason() const override { return no_reason_; }

  RemoteMemory describe(const transport::RegisteredMemory& memory) const override {
    const auto& m = static_cast<const StreamMemory&>(memory);
    return {0, m.key(), m.bytes().size()};
  }

  Status postWrite(const transport::RegisteredMemory& src, uint64_t src_offset, uint32_t len,
                   const RemoteMemory& dst, uint64_t dst_offset, uint32_t imm,
                   uint64_t cookie) override {
    auto bytes = src.bytes();
    if (src_offset > bytes.size() || len > bytes.size() - src_offset) {
      return invalidArgument("postWrite: source range outside the registration");
    }
    if (dst_offset > dst.bytes || len > dst.bytes - dst_offset) {
      return invalidArgument("postWrite: destination range outside the peer's memory");
    }
    append({kWrite, len, imm, dst.key, dst.addr + dst_offset}, bytes.subspan(src_offset, len));
    pending_cookies_.push_back({out_.size(), cookie});
    return {};
  }

  Status sendControl(std::span<const std::byte> message) override {
    if (message.size() > transport::kMaxLinkControlBytes) {
      return invalidArgument("control message too large");
    }
    append({kControl, static_cast<uint32_t>(message.size()), 0, 0, 0}, message);
    return {};
  }

  Status flush() override {
    while (sent_ < out_.size()) {
      ssize_t n = ::send(fd_, out_.data() + sent_, out_.size() - sent_, MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
      if (n <= 0) return unavailable(errnoText("send"));
      sent_ += static_cast<size_t>(n);
    }
    // A write is "done" once the kernel has it: the payload was copied out of the source.
    while (!pending_cookies_.empty() && pending_cookies_.front().first <= sent_) {
      done_.push_back(pending_cookies_.front().second);
      pending_cookies_.pop_front();
    }
    if (sent_ == out_.size()) {
      out_.clear();
      sent_ = 0;
    }
    return {};
  }
  bool wantsWritable() const override { return sent_ < out_.size(); }

  Result<size_t> poll(std::vector<LinkEvent>& out, size_t max_events) override {
    size_t n = 0;
    while (!done_.empty() && n < max_events) {
      LinkEvent e;
      e.type = LinkEvent::Type::kWriteDone;
      e.cookie = done_.front();
      done_.pop_front();
      out.push_back(std::move(e));
      ++n;
    }
    for (;;) {
      std::byte buf[64 * 1024];
      ssize_t k = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
      if (k == 0) return unavailable("the peer closed the link");
      if (k < 0) {
        if (errno == EAGAIN || errno == EINTR) break;
        return unavailable(errnoText("recv"));
      }
      in_.insert(in_.end(), buf, buf + k);
      if (in_.size() > (8u << 20)) break;
    }
    size_t pos = 0;
    while (n < max_events && in_.size() - pos >= sizeof(FrameHeader)) {
      FrameHeader h;
      std::memcpy(&h, in_.data() + pos, sizeof(h));
      if (in_.size() - pos - sizeof(h) < h.len) break;
      std::span<const std::byte> payload(in_.data() + pos + sizeof(h), h.len);
      pos += sizeof(h) + h.len;
      if (h.type == kWrite) {
        std::span<std::byte> target = registry_->find(h.key);
        if (target.empty()) return protocolError("write into unregistered memory (key gone)");
        if (h.offset > target.size() || h.len > target.size() - h.offset) {
          return protocolError("write outside the registration");
        }
        if (h.len > 0) std::memcpy(target.data() + h.offset, payload.data(), h.len);
        LinkEvent e;
        e.type = LinkEvent::Type::kWriteArrived;
        e.imm = h.imm;
        e.byte_len = h.len;
        out.push_back(std::move(e));
      } else if (h.type == kControl) {
        LinkEvent e;
        e.type = LinkEvent::Type::kControl;
        e.control.assign(payload.begin(), payload.end());
        out.push_back(std::move(e));
      } else {
        return protocolError("unknown frame type");
      }
      ++n;
    }
    in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(pos));
    return n;
  }

  int eventFd() const override { return fd_; }
  int livenessFd() const override { return fd_; }
  bool pollsUsefully() const override { return false; }
  bool hasBufferedEvents() const override {
    if (!done_.empty()) return true;
    if (in_.size() < sizeof(FrameHeader)) return false;
    FrameHeader h;
    std::memcpy(&h, in_.data(), sizeof(h));
    return in_.size() - sizeof(h) >= h.len;
  }
  bool prepareToSleep() override { return done_.empty(); }
  void afterWakeup() override {}

 private:
  void append(FrameHeader h, std::span<const std::byte> payload) {
    const auto* p = reinterpret_cast<const std::byte*>(&h);
    out_.insert(out_.end(), p, p + sizeof(h));
    out_.insert(out_.end(), payload.begin(), payload.end());
  }

  int fd_;
  std::string peer_;
  std::shared_ptr<Registry> registry_;
  std::string no_reason_;
  std::vector<std::byte> out_;
  size_t sent_ = 0;
  std::deque<std::pair<size_t, uint64_t>> pending_cookies_;  // (end offset in out_, cookie)
  std::deque<uint64_t> done_;
  std::vector<std::byte> in_;
};

class StreamDomain final : public StreamLinkDomain {
 public:
  explicit StreamDomain(std::string name)
      : name_(std::move(name)), registry_(std::make_shared<Registry>()) {}

  wire::FabricKind kind() const override { return wire::FabricKind::kTcp; }
  const std::string& rdmaUnavailableReason() const override { return reason_; }
  const std::string& onDemandPaging() const override { return on_demand_paging_; }

  Result<std::shared_ptr<transport::RegisteredMemory>> registerMemory(
      std::span<std::byte> bytes) override {
    return std::shared_ptr<transport::RegisteredMemory>(
        std::make_shared<StreamMemory>(registry_, bytes));
  }

  Result<int> listen(const std::string& address) override {
    Result<InetAddress> addr = InetAddress::parse(address);
    if (!addr) return addr.status();
    int fd = ::socket(addr->family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, addr->sockaddrPtr(), addr->sockaddrLen()) != 0 || ::listen(fd, 64) != 0) {
      Status s = unavailable(errnoText("listen"));
      ::close(fd);
      return s;
    }
    sockaddr_storage bound{};
    socklen_t len = sizeof(bound);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
    port_ = InetAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&bound), len).port();
    return fd;
  }

  Result<std::unique_ptr<transport::PairLink>> connect(const std::string& address,
                                                       Deadline deadline) override {
    Result<InetAddress> addr = InetAddress::parse(address);
    if (!addr) return addr.status();
    int fd = ::socket(addr->family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (::connect(fd, addr->sockaddrPtr(), addr->sockaddrLen()) != 0 && errno != EINPROGRESS) {
      Status s = unavailable(errnoText("connect"));
      ::close(fd);
      return s;
    }
    pollfd pfd{fd, POLLOUT, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    int err = 0;
    socklen_t len = sizeof(err);
    if (::poll(&pfd, 1, std::max<int>(0, static_cast<int>(left.count()))) != 1 ||
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      ::close(fd);
      return unavailable(std::string("connect to ") + address + ": " +
                         (err != 0 ? strerror(err) : "timed out"));
    }
    return handshake(fd, /*dialer=*/true, deadline);
  }

  Result<std::unique_ptr<transport::PairLink>> accept(int fd, Deadline deadline) override {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    return handshake(fd, /*dialer=*/false, deadline);
  }

  uint16_t listenPort() const override { return port_; }
  size_t registrations() const override { return registry_->size(); }

  std::unique_ptr<transport::PairLink> linkOn(int fd, std::string peer) {
    return std::make_unique<StreamLink>(fd, std::move(peer), registry_);
  }
  const std::string& name() const { return name_; }

 private:
  // Each side sends its node name: [u32 length][name]; the dialer first.
  Result<std::unique_ptr<transport::PairLink>> handshake(int fd, bool dialer, Deadline deadline) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto sendName = [&]() -> Status {
      uint32_t n = static_cast<uint32_t>(name_.size());
      std::vector<std::byte> msg(4 + n);
      std::memcpy(msg.data(), &n, 4);
      std::memcpy(msg.data() + 4, name_.data(), n);
      return ioAll(fd, msg.data(), msg.size(), true, deadline);
    };
    std::string peer;
    auto recvName = [&]() -> Status {
      uint32_t n = 0;
      if (Status s = ioAll(fd, reinterpret_cast<std::byte*>(&n), 4, false, deadline); !s) return s;
      if (n == 0 || n > 253) return protocolError("bad peer name length");
      peer.resize(n);
      return ioAll(fd, reinterpret_cast<std::byte*>(peer.data()), n, false, deadline);
    };
    Status s = dialer ? sendName() : recvName();
    if (s) s = dialer ? recvName() : sendName();
    if (!s) {
      ::close(fd);
      return s;
    }
    return std::unique_ptr<transport::PairLink>(linkOn(fd, peer));
  }

  std::string name_;
  std::string reason_ = "test double: no RDMA";
  std::string on_demand_paging_ = "off: no RDMA device";
  std::shared_ptr<Registry> registry_;
  uint16_t port_ = 0;
};

}  // namespace

std::unique_ptr<StreamLinkDomain> makeStreamLinkDomain(std::string node_name) {
  return std::make_unique<StreamDomain>(std::move(node_name));
}

std::pair<std::unique_ptr<transport::PairLink>, std::unique_ptr<transport::PairLink>>
makeLoopbackLinks(StreamLinkDomain& a, StreamLinkDomain& b) {
  int pair[2];
  ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair);
  auto& da = static_cast<StreamDomain&>(a);
  auto& db = static_cast<StreamDomain&>(b);
  return {da.linkOn(pair[0], db.name()), db.linkOn(pair[1], da.name())};
}

}  // namespace rdmesh::testing
