// File-descriptor helpers for the bootstrap (control) path: blocking I/O bounded by a deadline.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "rdmesh/common/status.h"
#include "rdmesh/common/unique_fd.h"
#include "rdmesh/transport/fabric.h"

namespace rdmesh::transport {

using rdmesh::UniqueFd;

Status setNonBlocking(int fd);
// A non-blocking, close-on-exec listening socket bound to `address` (`what` names it in errors).
Result<int> listenOn(const sockaddr* address, socklen_t length, const std::string& what);
std::string errnoText(const char* what);

// Waits until fd is readable (POLLIN) or writable (POLLOUT) or the deadline passes.
Status waitFd(int fd, short events, Deadline deadline);
Status sendAll(int fd, std::span<const std::byte> bytes, Deadline deadline);
Status recvAll(int fd, std::span<std::byte> bytes, Deadline deadline);
// Sends bytes plus file descriptors (SCM_RIGHTS) in one message.
Status sendWithFds(int fd, std::span<const std::byte> bytes, std::span<const int> fds,
                   Deadline deadline);
// Receives exactly bytes.size() bytes and exactly fds_out.size() descriptors.
Status recvWithFds(int fd, std::span<std::byte> bytes, std::span<UniqueFd> fds_out,
                   Deadline deadline);

// SOCK_SEQPACKET sockets (node.sock): one message per datagram, descriptors ride with it.
struct Datagram {
  std::string bytes;
  std::vector<UniqueFd> fds;
};
// Non-blocking: nullopt when nothing is queued. An error when the peer hung up, or the datagram
// is larger than `max_bytes` or carries more than `max_fds` descriptors (all of them are closed).
Result<std::optional<Datagram>> tryRecvDatagram(int fd, size_t max_bytes, size_t max_fds);
Result<Datagram> recvDatagram(int fd, size_t max_bytes, size_t max_fds, Deadline deadline);
// A non-blocking, close-on-exec AF_UNIX SOCK_SEQPACKET connection to `path`.
Result<UniqueFd> connectSeqpacket(const std::string& path);
Result<sockaddr_un> unixAddress(const std::string& path);

// TCP bootstrap sockets (tcp and verbs backends): NODELAY and large buffers, and a dial bounded
// by the deadline.
void tuneTcpSocket(int fd);
Result<UniqueFd> dialTcp(const std::string& address, Deadline deadline);

// Sends our Hello and receives the peer's (dialer sends first), validates it and the version.
// The fabrics must match, except that a verbs peer also speaks tcp (it falls back).
struct HelloExchange {
  Hello peer;
  uint16_t version = 0;
};
Result<HelloExchange> exchangeHello(int fd, const Hello& local, bool dialer, Deadline deadline);

}  // namespace rdmesh::transport
