#include "node_socket_server.h"

#include <event2/event.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include <fmt/format.h>

namespace rdmesh::node {

namespace {

constexpr size_t kMaxClients = 256;
constexpr size_t kMaxFdsPerRequest = 16;
constexpr int kMaxRequestsPerEvent = 32;

}  // namespace

NodeSocketServer::NodeSocketServer(event_base* base, const OpTable& ops, StatsStore& stats)
    : base_(base),
      ops_(ops),
      requests_(stats.counter("node.socket", "requests_total")),
      errors_(stats.counter("node.socket", "error_replies_total")),
      clients_(stats.gauge("node.socket", "clients_active")) {}

NodeSocketServer::~NodeSocketServer() { close(); }

Status NodeSocketServer::listen(const std::string& path) {
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return invalidArgument(fmt::format("socket path '{}': empty or too long", path));
  }
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!dir.empty() && !std::filesystem::exists(dir, ec)) {
    std::filesystem::create_directories(dir, ec);
    if (ec) return unavailable(fmt::format("mkdir {}: {}", dir.string(), ec.message()));
    ::chmod(dir.c_str(), 0755);
  }
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return internalError(fmt::format("socket: {}", strerror(errno)));
  ::unlink(path.c_str());  // a stale socket of a previous run
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::chmod(path.c_str(), 0660) != 0 || ::listen(fd, 128) != 0) {
    Status s = unavailable(fmt::format("listen on {}: {}", path, strerror(errno)));
    ::close(fd);
    return s;
  }
  path_ = path;
  listen_fd_ = fd;
  listen_ev_ = event_new(base_, fd, EV_READ | EV_PERSIST, &NodeSocketServer::onAccept, this);
  event_add(listen_ev_, nullptr);
  spdlog::info("node.sock listening on {}", path);
  return {};
}

void NodeSocketServer::close() {
  while (!connections_.empty()) drop(connections_.begin()->first);
  if (listen_ev_ != nullptr) event_free(listen_ev_);
  listen_ev_ = nullptr;
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    ::unlink(path_.c_str());
  }
  listen_fd_ = -1;
}

void NodeSocketServer::onAccept(int fd, short /*what*/, void* arg) {
  auto* self = static_cast<NodeSocketServer*>(arg);
  for (;;) {
    int c = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) return;
    if (self->connections_.size() >= kMaxClients) {
      spdlog::warn("node.sock: {} clients already; refusing one", kMaxClients);
      ::close(c);
      continue;
    }
    auto conn = std::make_unique<Connection>();
    conn->server = self;
    conn->fd = c;
    conn->ev = event_new(self->base_, c, EV_READ | EV_PERSIST, &NodeSocketServer::onReadable,
                         conn.get());
    event_add(conn->ev, nullptr);
    self->connections_[c] = std::move(conn);
    self->clients_.set(self->connections_.size());
  }
}

void NodeSocketServer::onReadable(int /*fd*/, short /*what*/, void* arg) {
  auto* c = static_cast<Connection*>(arg);
  c->server->serve(*c);
}

void NodeSocketServer::serve(Connection& c) {
  std::vector<char> buf(kMaxRequestBytes);
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerRequest)];
  for (int i = 0; i < kMaxRequestsPerEvent; ++i) {
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = ::recvmsg(c.fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {  // 0: the client hung up
      drop(c.fd);
      return;
    }
    RequestFds fds;
    for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
      if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t k = 0; k < count; ++k) {
        int passed = -1;
        std::memcpy(&passed, CMSG_DATA(cm) + k * sizeof(int), sizeof(int));
        fds.push_back(passed);
      }
    }
    requests_.inc();
    Reply reply;
    if ((msg.msg_flags & MSG_TRUNC) != 0) {
      reply.datagram = errorReply(fmt::format("request larger than {} bytes", kMaxRequestBytes));
    } else if ((msg.msg_flags & MSG_CTRUNC) != 0) {
      reply.datagram = errorReply(fmt::format("more than {} fds attached", kMaxFdsPerRequest));
    } else {
      reply = ops_.dispatch(std::string_view(buf.data(), static_cast<size_t>(n)), fds);
    }
    for (int f : fds) {
      if (f >= 0) ::close(f);
    }
    if (!reply.ok) errors_.inc();
    // Replies are small; a client that does not read them is dropped rather than buffered for.
    const std::string& out = reply.datagram;
    if (::send(c.fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT) !=
        static_cast<ssize_t>(out.size())) {
      spdlog::warn("node.sock: cannot reply ({}); dropping the client", strerror(errno));
      drop(c.fd);
      return;
    }
  }
}

void NodeSocketServer::drop(int fd) {
  auto it = connections_.find(fd);
  if (it == connections_.end()) return;
  event_free(it->second->ev);
  ::close(fd);
  connections_.erase(it);
  clients_.set(connections_.size());
}

}  // namespace rdmesh::node
