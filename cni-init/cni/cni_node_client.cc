#include "cni_node_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <optional>

namespace rdmesh::cni {

namespace {

using Clock = std::chrono::steady_clock;

std::string errnoText(int err) {
  return std::strerror(err);
}

// Waits for `events` on fd until `deadline`.
Status waitFor(int fd, short events, Clock::time_point deadline, const char* what) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      return {StatusCode::kTimeout, std::string("node agent: no ") + what + " in time"};
    }
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left));
    if (n > 0) return Status::ok();
    if (n < 0 && errno != EINTR) return unavailable(std::string("poll: ") + errnoText(errno));
  }
}

}  // namespace

Result<NodeSocketConnection> NodeSocketConnection::connect(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return invalidArgument("node agent socket path '" + path + "' is empty or too long");
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return unavailable("socket(AF_UNIX): " + errnoText(errno));
  // A unix socket connect completes at once or fails (EAGAIN: the agent's backlog is full).
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    const std::string why = "cannot connect to the node agent at " + path + ": " + errnoText(err);
    if (err == ENOENT) return Status(StatusCode::kNotFound, why);
    return unavailable(why);
  }
  return NodeSocketConnection(std::move(fd));
}

Result<std::string> NodeSocketConnection::call(std::string_view request,
                                               std::chrono::milliseconds timeout) {
  if (request.size() > kMaxNodeMessageBytes) {
    return invalidArgument("request larger than " + std::to_string(kMaxNodeMessageBytes) +
                           " bytes");
  }
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const ssize_t n = ::send(fd_.get(), request.data(), request.size(), MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(request.size())) break;
    if (n >= 0) return protocolError("node agent socket sent a partial datagram");
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return unavailable("send to the node agent: " + errnoText(errno));
    if (auto s = waitFor(fd_.get(), POLLOUT, deadline, "room to send"); !s) return s;
  }
  // One byte more than the largest legal reply shows truncation without MSG_TRUNC's size games.
  std::string reply(kMaxNodeMessageBytes + 1, '\0');
  for (;;) {
    if (auto s = waitFor(fd_.get(), POLLIN, deadline, "reply"); !s) return s;
    const ssize_t n = ::recv(fd_.get(), reply.data(), reply.size(), 0);
    if (n > 0) {
      if (static_cast<size_t>(n) > kMaxNodeMessageBytes) {
        return protocolError("node agent reply larger than 64 KiB");
      }
      reply.resize(static_cast<size_t>(n));
      return reply;
    }
    if (n == 0) return unavailable("node agent closed the connection without replying");
    if (errno != EINTR && errno != EAGAIN) {
      return unavailable("recv from the node agent: " + errnoText(errno));
    }
  }
}

Result<std::string> SocketNodeAgent::call(const std::string& request) {
  if (!connection_) {
    auto c = NodeSocketConnection::connect(path_);
    if (!c) return c.status();
    connection_.emplace(std::move(c.value()));
  }
  auto reply = connection_->call(request, timeout_);
  // A connection that failed mid-call may hold a late reply: never reuse it.
  if (!reply) connection_.reset();
  return reply;
}

Result<uint64_t> SocketNodeAgent::podAdd(const PodRegistration& pod) {
  auto reply = call(encodePodAdd(pod));
  if (!reply) return reply.status();
  return decodePodAddReply(*reply);
}

Status SocketNodeAgent::podDel(std::string_view container_id) {
  auto reply = call(encodePodDel(container_id));
  if (!reply) return reply.status();
  auto decoded = decodeReply(*reply);
  return decoded ? Status::ok() : decoded.status();
}

Status SocketNodeAgent::podCheck(std::string_view container_id) {
  auto reply = call(encodePodCheck(container_id));
  if (!reply) return reply.status();
  auto decoded = decodeReply(*reply);
  return decoded ? Status::ok() : decoded.status();
}

Result<std::vector<RegisteredPod>> SocketNodeAgent::podList() {
  auto reply = call(encodePodList());
  if (!reply) return reply.status();
  return decodePodListReply(*reply);
}

}  // namespace rdmesh::cni
