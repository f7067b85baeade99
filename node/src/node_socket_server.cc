#include "node_socket_server.h"

#include <event2/event.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "rdmesh/common/fd_passing.h"

namespace rdmesh::node {

namespace {

constexpr size_t kMaxClients = 256;
constexpr size_t kMaxFdsPerRequest = kMaxPassedFds;
constexpr int kMaxRequestsPerEvent = 32;

}  // namespace

// Readable events while requests flow; only the hang-up (EV_CLOSED) while a deferred reply is
// pending, so that nothing is read (and answered) ahead of it.
class NodeSocketServer::Connection final : public ClientConnection {
 public:
  Connection(NodeSocketServer* server, int fd) : server_(server), fd_(fd) {
    socklen_t len = sizeof(cred_);
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred_, &len) != 0) cred_ = ucred{0, 0, 0};
    read_ev_ = event_new(server->base_, fd, EV_READ | EV_PERSIST, &onReadable, this);
    closed_ev_ = event_new(server->base_, fd, EV_CLOSED | EV_PERSIST, &onHangup, this);
    event_add(read_ev_, nullptr);
  }
  ~Connection() override { release(); }

  int fd() const { return fd_; }
  bool awaitingReply() const { return awaiting_reply_; }

  // The handler deferred its reply: stop reading, watch for the hang-up only.
  void pauseReading() {
    awaiting_reply_ = true;
    event_del(read_ev_);
    event_add(closed_ev_, nullptr);
  }

  // Called by the server when the connection goes away.
  std::function<void()> takeOnClosed() { return std::exchange(on_closed_, nullptr); }
  void release() {
    if (read_ev_ != nullptr) event_free(read_ev_);
    if (closed_ev_ != nullptr) event_free(closed_ev_);
    read_ev_ = closed_ev_ = nullptr;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    server_ = nullptr;
  }

  const ucred& peerCredentials() const override { return cred_; }

  Status replyOk(const nlohmann::json& fields, std::span<const int> fds) override {
    return deferredReply(okReply(fields), fds, true);
  }
  Status replyError(std::string_view message) override {
    return deferredReply(errorReply(message), {}, false);
  }
  Status push(const nlohmann::json& event) override {
    if (server_ == nullptr) return unavailable("the client connection is closed");
    return server_->send(*this,
                         event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), {});
  }
  void setOnClosed(std::function<void()> callback) override { on_closed_ = std::move(callback); }
  void close() override {
    on_closed_ = nullptr;
    if (server_ != nullptr) server_->drop(fd_, /*notify=*/false);
  }
  bool isOpen() const override { return server_ != nullptr; }

 private:
  Status deferredReply(const std::string& datagram, std::span<const int> fds, bool ok) {
    if (server_ == nullptr) return unavailable("the client connection is closed");
    if (!awaiting_reply_) return internalError("no reply is pending on this connection");
    awaiting_reply_ = false;
    if (!ok) server_->errors_.inc();
    NodeSocketServer* server = server_;
    if (Status s = server->send(*this, datagram, fds); !s) return s;
    event_del(closed_ev_);
    event_add(read_ev_, nullptr);
    // Requests the client sent meanwhile are waiting in the socket.
    event_active(read_ev_, EV_READ, 0);
    return {};
  }

  static void onReadable(int /*fd*/, short /*what*/, void* arg) {
    auto* c = static_cast<Connection*>(arg);
    if (c->server_ != nullptr) c->server_->serve(*c);
  }
  static void onHangup(int /*fd*/, short /*what*/, void* arg) {
    auto* c = static_cast<Connection*>(arg);
    if (c->server_ != nullptr) c->server_->drop(c->fd_, /*notify=*/true);
  }

  NodeSocketServer* server_;
  int fd_;
  ucred cred_{};
  event* read_ev_ = nullptr;
  event* closed_ev_ = nullptr;
  bool awaiting_reply_ = false;
  std::function<void()> on_closed_;
};

NodeSocketServer::NodeSocketServer(event_base* base, const OpTable& ops, StatsStore& stats)
    : base_(base),
      ops_(ops),
      requests_(stats.counter("node.socket", "requests_total")),
      errors_(stats.counter("node.socket", "error_replies_total")),
      clients_(stats.gauge("node.socket", "clients_active")) {}

NodeSocketServer::~NodeSocketServer() {
  close();
}

namespace {
constexpr gid_t kSidecarGid = 1337;  // ARCHITECTURE.md: the sidecar's user (and group) id
}  // namespace

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
  // root:1337 0660: injected sidecars run as uid/gid 1337 (runAsGroup), apps in pods do not.
  // Callers are still checked by network namespace; this keeps other processes off the socket.
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::chmod(path.c_str(), 0660) != 0 || ::listen(fd, 128) != 0) {
    Status s = unavailable(fmt::format("listen on {}: {}", path, strerror(errno)));
    ::close(fd);
    return s;
  }
  if (::chown(path.c_str(), static_cast<uid_t>(-1), kSidecarGid) != 0) {
    // Only root may hand the socket to group 1337; an agent run by hand as a user keeps its own.
    spdlog::warn(
        "node.sock: cannot give {} to group {} ({}): only this user's processes can "
        "connect",
        path, kSidecarGid, strerror(errno));
  }
  path_ = path;
  listen_fd_ = fd;
  listen_ev_ = event_new(base_, fd, EV_READ | EV_PERSIST, &NodeSocketServer::onAccept, this);
  event_add(listen_ev_, nullptr);
  spdlog::info("node.sock listening on {}", path);
  return {};
}

void NodeSocketServer::close() {
  while (!connections_.empty()) drop(connections_.begin()->first, /*notify=*/false);
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
    self->connections_[c] = std::make_shared<Connection>(self, c);
    self->clients_.set(self->connections_.size());
  }
}

void NodeSocketServer::serve(Connection& c) {
  // Keeps the connection alive while a handler runs, even if it closes the connection.
  std::shared_ptr<Connection> self = connections_.at(c.fd());
  std::vector<char> buf(kMaxRequestBytes);
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerRequest)];
  for (int i = 0; i < kMaxRequestsPerEvent && self->isOpen() && !self->awaitingReply(); ++i) {
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = ::recvmsg(self->fd(), &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {  // 0: the client hung up
      drop(self->fd(), /*notify=*/true);
      return;
    }
    RequestFds fds = passedFds(msg);
    requests_.inc();
    Reply reply;
    if ((msg.msg_flags & MSG_TRUNC) != 0) {
      reply.datagram = errorReply(fmt::format("request larger than {} bytes", kMaxRequestBytes));
    } else if ((msg.msg_flags & MSG_CTRUNC) != 0) {
      reply.datagram = errorReply(fmt::format("more than {} fds attached", kMaxFdsPerRequest));
    } else {
      reply = ops_.dispatch(std::string_view(buf.data(), static_cast<size_t>(n)), fds, self);
    }
    for (int f : fds) {
      if (f >= 0) ::close(f);
    }
    if (reply.deferred) {
      if (self->isOpen()) self->pauseReading();
      return;
    }
    if (!reply.ok) errors_.inc();
    if (!self->isOpen()) return;  // the handler ended the connection
    std::vector<int> reply_fds;
    for (const UniqueFd& f : reply.fds) reply_fds.push_back(f.get());
    if (!send(*self, reply.datagram, reply_fds)) return;
  }
}

Status NodeSocketServer::send(Connection& c, std::string_view datagram, std::span<const int> fds) {
  // Replies and events are small; a client that does not read them is dropped rather than
  // buffered for.
  if (sendDatagramWithFds(c.fd(), datagram, fds, MSG_NOSIGNAL | MSG_DONTWAIT) !=
      static_cast<ssize_t>(datagram.size())) {
    Status s = unavailable(fmt::format("cannot send to the client: {}", strerror(errno)));
    spdlog::warn("node.sock: {}; dropping the client", s.message());
    drop(c.fd(), /*notify=*/true);
    return s;
  }
  return {};
}

void NodeSocketServer::drop(int fd, bool notify) {
  auto it = connections_.find(fd);
  if (it == connections_.end()) return;
  std::shared_ptr<Connection> c = std::move(it->second);
  connections_.erase(it);
  clients_.set(connections_.size());
  std::function<void()> on_closed = c->takeOnClosed();
  c->release();
  if (notify && on_closed) on_closed();
}

}  // namespace rdmesh::node
