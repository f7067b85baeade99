#include "original_destination.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace rdmesh::proxy {

namespace {

constexpr int kSoOriginalDst = 80;  // linux/netfilter_ipv4.h SO_ORIGINAL_DST, IP6T_SO_ORIGINAL_DST
// A registration is consumed by its connection; this bounds what failed connects can leave.
constexpr size_t kMaxPreloadEntries = 65536;

bool isInet(const InetAddress& a) {
  return a.family() == AF_INET || a.family() == AF_INET6;
}

class TransparentLocalAddress final : public OriginalDestination {
 public:
  Result<InetAddress> lookup(const CapturedConnection& c) override {
    Result<InetAddress> local = InetAddress::localOf(c.fd);
    if (!local) return Status(StatusCode::kNotFound, local.status().message());
    // Unanswered, an accepted socket reports the address it was accepted on: the listener's,
    // or for a wildcard listener any local address with its port.
    bool wildcard = c.listener.rawIp().find_first_not_of('\0') == std::string_view::npos;
    bool listeners = *local == c.listener || (wildcard && local->port() == c.listener.port());
    if (!isInet(*local) || listeners) {
      return Status(StatusCode::kNotFound, "local address is the listener's: not captured by eBPF");
    }
    return *local;
  }
};

class SoOriginalDst final : public OriginalDestination {
 public:
  Result<InetAddress> lookup(const CapturedConnection& c) override {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    int level = c.peer.isV4() ? SOL_IP : SOL_IPV6;
    if (::getsockopt(c.fd, level, kSoOriginalDst, &ss, &len) != 0) {
      return Status(StatusCode::kNotFound, fmt::format("SO_ORIGINAL_DST: {}", strerror(errno)));
    }
    InetAddress dst = InetAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    if (!isInet(dst)) {
      return Status(StatusCode::kNotFound, "SO_ORIGINAL_DST: no address");
    }
    return dst;
  }
};

}  // namespace

std::unique_ptr<OriginalDestination> makeTransparentLocalAddress() {
  return std::make_unique<TransparentLocalAddress>();
}

std::unique_ptr<OriginalDestination> makeSoOriginalDst() {
  return std::make_unique<SoOriginalDst>();
}

Result<PreloadEntry> parsePreloadRegistration(const void* data, size_t len) {
  if (len != sizeof(preload::Registration)) {
    return invalidArgument(
        fmt::format("registration is {} bytes, expected {}", len, sizeof(preload::Registration)));
  }
  preload::Registration r{};
  std::memcpy(&r, data, sizeof(r));
  if (ntohl(r.magic) != preload::kMagic) return invalidArgument("registration: bad magic");
  if (r.version != preload::kVersion) {
    return invalidArgument(fmt::format("registration: version {} not supported", r.version));
  }
  if ((r.source_family != 4 && r.source_family != 6) || (r.dst_family != 4 && r.dst_family != 6)) {
    return invalidArgument("registration: family must be 4 or 6");
  }
  uint16_t source_port = ntohs(r.source_port);
  uint16_t dst_port = ntohs(r.dst_port);
  if (source_port == 0 || dst_port == 0) return invalidArgument("registration: port 0");
  PreloadEntry e;
  e.source_v6 = r.source_family == 6;
  e.source_port = source_port;
  if (r.dst_family == 4) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = r.dst_port;
    std::memcpy(&sin.sin_addr, r.dst_addr, 4);
    e.destination = InetAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&sin), sizeof(sin));
  } else {
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = r.dst_port;
    std::memcpy(&sin6.sin6_addr, r.dst_addr, 16);
    e.destination = InetAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&sin6), sizeof(sin6));
  }
  return e;
}

Result<std::unique_ptr<PreloadRegistry>> PreloadRegistry::bind(const std::string& abstract_name) {
  sockaddr_un addr{};
  if (abstract_name.size() < 2 || abstract_name.front() != '@' ||
      abstract_name.size() > sizeof(addr.sun_path)) {
    return invalidArgument(fmt::format("preload socket '{}': expected '@name'", abstract_name));
  }
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return internalError(fmt::format("socket: {}", strerror(errno)));
  addr.sun_family = AF_UNIX;
  addr.sun_path[0] = '\0';
  std::memcpy(addr.sun_path + 1, abstract_name.data() + 1, abstract_name.size() - 1);
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + abstract_name.size());
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    Status s = unavailable(fmt::format("preload socket {}: {}", abstract_name, strerror(errno)));
    ::close(fd);
    return s;
  }
  return std::unique_ptr<PreloadRegistry>(new PreloadRegistry(fd));
}

PreloadRegistry::~PreloadRegistry() {
  ::close(fd_);
}

void PreloadRegistry::drainLocked() {
  preload::Registration buf{};
  for (;;) {
    ssize_t n = ::recv(fd_, &buf, sizeof(buf), MSG_TRUNC);
    if (n < 0) return;  // EAGAIN: drained
    Result<PreloadEntry> e = parsePreloadRegistration(&buf, static_cast<size_t>(n));
    if (!e) {
      ++rejected_;
      continue;
    }
    if (by_port_.size() >= kMaxPreloadEntries) by_port_.erase(by_port_.begin());
    by_port_[key(e->source_v6, e->source_port)] = e->destination;
  }
}

Result<InetAddress> PreloadRegistry::lookup(const CapturedConnection& connection) {
  const InetAddress& peer = connection.peer;
  uint32_t k = key(!peer.isV4(), peer.port());
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_port_.find(k);
  if (it == by_port_.end()) {
    drainLocked();
    it = by_port_.find(k);
    if (it == by_port_.end()) {
      return Status(StatusCode::kNotFound,
                    fmt::format("no preload registration for {}", peer.toString()));
    }
  }
  InetAddress dst = it->second;
  by_port_.erase(it);
  return dst;
}

Result<InetAddress> ChainedOriginalDestination::lookup(const CapturedConnection& connection) {
  Status last(StatusCode::kNotFound, "no original destination source configured");
  for (auto& source : sources_) {
    Result<InetAddress> dst = source->lookup(connection);
    if (dst) return dst;
    last = dst.status();
  }
  return last;
}

}  // namespace rdmesh::proxy
