#include "listen_sockets.h"

#include <fmt/format.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace rdmesh::proxy {

namespace {
constexpr int kListenBacklog = 1024;
}

ListenSockets::~ListenSockets() {
  for (int fd : fds_) {
    if (fd >= 0) ::close(fd);
  }
}

ListenSockets& ListenSockets::operator=(ListenSockets&& other) noexcept {
  if (this != &other) {
    for (int fd : fds_) {
      if (fd >= 0) ::close(fd);
    }
    fds_ = std::move(other.fds_);
    other.fds_.clear();
  }
  return *this;
}

Result<ListenSockets> ListenSockets::bind(const std::string& listener, const InetAddress& address,
                                          unsigned count) {
  ListenSockets sockets;
  InetAddress at = address;
  for (unsigned i = 0; i < count; ++i) {
    int fd = ::socket(at.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return internalError(fmt::format("socket: {}", std::strerror(errno)));
    sockets.fds_.push_back(fd);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (::bind(fd, at.sockaddrPtr(), at.sockaddrLen()) != 0 || ::listen(fd, kListenBacklog) != 0) {
      return unavailable(fmt::format("listener {}: cannot listen on {}: {}", listener,
                                     at.toString(), std::strerror(errno)));
    }
    if (i == 0 && at.port() == 0) at = InetAddress::localOf(fd).valueOr(at);
  }
  return sockets;
}

int ListenSockets::release(size_t index) {
  int fd = fds_.at(index);
  fds_[index] = -1;
  return fd;
}

}  // namespace rdmesh::proxy
