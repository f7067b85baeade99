#include "rdmesh/capture/netns_cookie.h"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace rdmesh::capture {

namespace {

Result<uint64_t> cookieOfNewSocket() {
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return internalError(fmt::format("socket: {}", strerror(errno)));
  uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  int rc = ::getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len);
  int err = errno;
  ::close(fd);
  if (rc != 0) return internalError(fmt::format("getsockopt(SO_NETNS_COOKIE): {}", strerror(err)));
  return cookie;
}

}  // namespace

Result<uint64_t> currentNetnsCookie() { return cookieOfNewSocket(); }

Result<uint64_t> netnsCookie(const std::string& netns_path) {
  int ns = ::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (ns < 0) {
    return invalidArgument(fmt::format("netns '{}': {}", netns_path, strerror(errno)));
  }
  if (::ioctl(ns, NS_GET_NSTYPE) != CLONE_NEWNET) {
    ::close(ns);
    return invalidArgument(fmt::format("netns '{}': not a network namespace", netns_path));
  }
  // setns() changes only the calling thread; a throwaway thread keeps the caller where it is.
  Result<uint64_t> result = internalError("not run");
  std::thread([&] {
    if (::setns(ns, CLONE_NEWNET) != 0) {
      result = internalError(fmt::format("setns '{}': {}", netns_path, strerror(errno)));
      return;
    }
    result = cookieOfNewSocket();
  }).join();
  ::close(ns);
  return result;
}

}  // namespace rdmesh::capture
