#include "unix_fd.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "rdmesh/common/address.h"

namespace rdmesh::transport {

std::string errnoText(const char* what) {
  return fmt::format("{}: {}", what, strerror(errno));
}

Status setNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    return internalError(errnoText("fcntl(O_NONBLOCK)"));
  }
  return {};
}

Result<int> listenOn(const sockaddr* address, socklen_t length, const std::string& what) {
  UniqueFd fd(::socket(address->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return internalError(errnoText("socket"));
  int one = 1;
  if (address->sa_family != AF_UNIX) {
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  }
  if (::bind(fd.get(), address, length) != 0) {
    return unavailable(fmt::format("bind {}: {}", what, strerror(errno)));
  }
  if (::listen(fd.get(), 128) != 0) return unavailable(errnoText("listen"));
  return fd.release();
}

void tuneTcpSocket(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  // Large buffers: one connection carries every stream between two nodes.
  int buf = 4 << 20;
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
}

Result<UniqueFd> dialTcp(const std::string& address, Deadline deadline) {
  auto addr = InetAddress::parse(address);
  if (!addr) return addr.status();
  UniqueFd fd(::socket(addr->family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return internalError(errnoText("socket"));
  tuneTcpSocket(fd.get());
  if (::connect(fd.get(), addr->sockaddrPtr(), addr->sockaddrLen()) != 0) {
    if (errno != EINPROGRESS) {
      return unavailable(fmt::format("connect {}: {}", address, strerror(errno)));
    }
    if (Status s = waitFd(fd.get(), POLLOUT, deadline); !s) return s;
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return unavailable(fmt::format("connect {}: {}", address, strerror(err)));
  }
  return fd;
}

Status waitFd(int fd, short events, Deadline deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return {StatusCode::kTimeout, "bootstrap timed out"};
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return internalError(errnoText("poll"));
    if (n == 0) continue;
    if (p.revents & (events | POLLHUP | POLLERR)) return {};
  }
}

Status sendAll(int fd, std::span<const std::byte> bytes, Deadline deadline) {
  return sendWithFds(fd, bytes, {}, deadline);
}

Status recvAll(int fd, std::span<std::byte> bytes, Deadline deadline) {
  return recvWithFds(fd, bytes, {}, deadline);
}

Status sendWithFds(int fd, std::span<const std::byte> bytes, std::span<const int> fds,
                   Deadline deadline) {
  size_t sent = 0;
  bool fds_sent = fds.empty();
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  while (sent < bytes.size()) {
    iovec iov{const_cast<std::byte*>(bytes.data() + sent), bytes.size() - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (!fds_sent) {
      msg.msg_control = control.data();
      msg.msg_controllen = control.size();
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      fds_sent = true;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (Status s = waitFd(fd, POLLOUT, deadline); !s) return s;
      continue;
    }
    return unavailable(errnoText("bootstrap send"));
  }
  return {};
}

Status recvWithFds(int fd, std::span<std::byte> bytes, std::span<UniqueFd> fds_out,
                   Deadline deadline) {
  size_t got = 0;
  size_t fds_got = 0;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * std::max<size_t>(fds_out.size(), 1)));
  while (got < bytes.size()) {
    iovec iov{bytes.data() + got, bytes.size() - got};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    ssize_t n = ::recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n > 0) {
      got += static_cast<size_t>(n);
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
          int received;
          std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
          if (fds_got < fds_out.size()) {
            fds_out[fds_got++].reset(received);
          } else {
            ::close(received);  // more than we asked for: never leak them
          }
        }
      }
      if (msg.msg_flags & MSG_CTRUNC) return protocolError("bootstrap: descriptors truncated");
      continue;
    }
    if (n == 0) return unavailable("bootstrap: peer closed the connection");
    if (errno == EAGAIN || errno == EINTR) {
      if (Status s = waitFd(fd, POLLIN, deadline); !s) return s;
      continue;
    }
    return unavailable(errnoText("bootstrap recv"));
  }
  if (fds_got != fds_out.size()) {
    return protocolError(
        fmt::format("bootstrap: expected {} descriptors, got {}", fds_out.size(), fds_got));
  }
  return {};
}

Result<sockaddr_un> unixAddress(const std::string& path) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(sun.sun_path)) {
    return invalidArgument(fmt::format("unix socket path '{}' is empty or too long", path));
  }
  std::memcpy(sun.sun_path, path.data(), path.size());
  return sun;
}

Result<UniqueFd> connectSeqpacket(const std::string& path) {
  auto sun = unixAddress(path);
  if (!sun) return sun.status();
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return internalError(errnoText("socket(AF_UNIX, SOCK_SEQPACKET)"));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sun.value()), sizeof(sockaddr_un)) != 0) {
    return unavailable(fmt::format("connect {}: {}", path, strerror(errno)));
  }
  return fd;
}

Result<std::optional<Datagram>> tryRecvDatagram(int fd, size_t max_bytes, size_t max_fds) {
  Datagram d;
  d.bytes.resize(max_bytes + 1);  // one more: a datagram that fills it was too large
  std::vector<char> control(CMSG_SPACE(sizeof(int) * std::max<size_t>(max_fds, 1)));
  iovec iov{d.bytes.data(), d.bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ssize_t n;
  do {
    n = ::recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN) return std::optional<Datagram>();
  if (n < 0) return unavailable(errnoText("recvmsg"));
  if (n == 0) return unavailable("the peer closed the connection");
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int received;
      std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      d.fds.emplace_back(received);  // owned at once: closed on every error below
    }
  }
  if (msg.msg_flags & MSG_CTRUNC || d.fds.size() > max_fds) {
    return protocolError(fmt::format("message carries more than {} descriptors", max_fds));
  }
  if (static_cast<size_t>(n) > max_bytes || msg.msg_flags & MSG_TRUNC) {
    return protocolError(fmt::format("message larger than {} bytes", max_bytes));
  }
  d.bytes.resize(static_cast<size_t>(n));
  return std::optional<Datagram>(std::move(d));
}

Result<Datagram> recvDatagram(int fd, size_t max_bytes, size_t max_fds, Deadline deadline) {
  for (;;) {
    auto d = tryRecvDatagram(fd, max_bytes, max_fds);
    if (!d) return d.status();
    if (d->has_value()) return std::move(**d);
    if (Status s = waitFd(fd, POLLIN, deadline); !s) return s;
  }
}

namespace {
Result<Hello> recvHello(int fd, Deadline deadline) {
  std::vector<std::byte> buf(sizeof(wire::HelloHeader));
  if (Status s = recvAll(fd, buf, deadline); !s) return s;
  auto size = helloSize(buf);
  if (!size) return size.status();
  size_t header = buf.size();
  buf.resize(*size);
  if (Status s = recvAll(fd, std::span(buf).subspan(header), deadline); !s) return s;
  return parseHello(buf);
}
}  // namespace

Result<HelloExchange> exchangeHello(int fd, const Hello& local, bool dialer, Deadline deadline) {
  auto encoded = encodeHello(local);
  if (dialer) {
    if (Status s = sendAll(fd, encoded, deadline); !s) return s;
  }
  auto peer = recvHello(fd, deadline);
  if (!peer) return peer.status();
  auto speaksTcp = [](wire::FabricKind k) {
    return k == wire::FabricKind::kTcp || k == wire::FabricKind::kVerbs;
  };
  if (peer->fabric != local.fabric && !(speaksTcp(peer->fabric) && speaksTcp(local.fabric))) {
    return protocolError(fmt::format("peer '{}' runs the {} fabric, we run {}", peer->node_name,
                                     toString(peer->fabric), toString(local.fabric)));
  }
  auto version = negotiateVersion(local, *peer);
  if (!version) return version.status();
  if (!dialer) {
    if (Status s = sendAll(fd, encoded, deadline); !s) return s;
  }
  return HelloExchange{std::move(peer.value()), *version};
}

}  // namespace rdmesh::transport
