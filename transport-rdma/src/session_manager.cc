#include "rdmesh/transport/session_manager.h"

#include <event2/event.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <map>

#include "rdmesh/common/timeval.h"
#include "session_manager_base.h"
#include "unix_fd.h"

namespace rdmesh::transport {

namespace {

constexpr std::chrono::milliseconds kFirstBackoff{100};

using ConnectionResult = Result<std::unique_ptr<FabricConnection>>;

SessionOptions sessionOptions(const SessionManagerOptions& o) {
  SessionOptions s;
  s.local_node = o.node_name;
  s.geometry = o.geometry;
  s.keepalive_interval = o.keepalive_interval;
  s.keepalive_timeout = std::chrono::milliseconds(o.geometry.keepalive_timeout_ms);
  return s;
}

class SessionManagerImpl final : public SessionManagerBase {
 public:
  SessionManagerImpl(event_base* base, std::unique_ptr<Fabric> fabric,
                     SessionManagerOptions options, StatsStore& stats, AcceptHandler on_accept)
      : SessionManagerBase(base, stats, std::move(on_accept), sessionOptions(options),
                           options.connect_timeout),
        fabric_(std::move(fabric)),
        options_(std::move(options)) {
    hello_.fabric = fabric_->kind();
    hello_.node_name = options_.node_name;
    hello_.geometry = options_.geometry;
  }

  ~SessionManagerImpl() override {
    // The sessions are torn down with peers_ below; their on-down hook must not reach back into
    // a manager that is going away (a dialer would arm a retry timer on a Peer about to be freed).
    for (auto& [name, peer] : peers_) peer->session->setOnDown(nullptr);
    if (listen_ev_) event_free(listen_ev_);
    if (listen_fd_ >= 0) ::close(listen_fd_);
    for (auto& [name, peer] : peers_) {
      if (peer->retry_ev) event_free(peer->retry_ev);
    }
    joinBootstrapThreads();
  }

  Status start() override {
    auto fd = fabric_->listen(options_.listen_address);
    if (!fd) return fd.status();
    listen_fd_ = *fd;
    listen_ev_ = event_new(base_, listen_fd_, EV_READ | EV_PERSIST, &onListen, this);
    event_add(listen_ev_, nullptr);
    spdlog::info("node {}: {} fabric listening on {}", options_.node_name,
                 toString(fabric_->kind()), options_.listen_address);
    setPeers(std::move(options_.peers));
    return {};
  }

  void setPeers(std::vector<PeerSpec> peers) override {
    for (const PeerSpec& spec : peers) {
      if (spec.name == options_.node_name) continue;  // never a peer of itself
      Peer& p = peerFor(spec.name);
      if (p.address != spec.address) {
        p.address = spec.address;
        p.backoff = kFirstBackoff;
      }
      // One connection per node pair: the node with the lower name dials.
      p.dials = options_.node_name < spec.name;
      if (p.dials) dial(p);
    }
    for (auto& [name, peer] : peers_) {
      bool listed = std::any_of(peers.begin(), peers.end(),
                                [&](const PeerSpec& spec) { return spec.name == name; });
      if (listed || !peer->dials) continue;
      peer->dials = false;
      if (peer->retry_ev) event_del(peer->retry_ev);
    }
    options_.peers = std::move(peers);
  }

  Session* session(std::string_view name) override {
    auto it = peers_.find(name);
    return it == peers_.end() ? nullptr : it->second->session.get();
  }

  void drain() override {
    draining_ = true;
    if (listen_ev_) event_del(listen_ev_);
    for (auto& [name, peer] : peers_) {
      peer->session->drain();
      setState(*peer);
    }
  }

 private:
  struct Peer {
    SessionManagerImpl* owner = nullptr;  // for the retry timer's C callback
    std::string name;
    std::string address;
    bool dials = false;
    bool dialing = false;
    std::unique_ptr<SessionImpl> session;
    event* retry_ev = nullptr;
    std::chrono::milliseconds backoff = kFirstBackoff;
    std::string last_error;
  };
  Peer& peerFor(const std::string& name) {
    auto it = peers_.find(name);
    if (it != peers_.end()) return *it->second;
    auto peer = std::make_unique<Peer>();
    peer->owner = this;
    peer->name = name;
    peer->session = makeSession(name);
    Peer* raw = peer.get();
    peer->session->setOnDown([this, raw](const Status&) { onSessionDown(*raw); });
    stats_.setText("session." + name, "fabric", toString(fabric_->kind()));
    setState(*peer);
    return *peers_.emplace(name, std::move(peer)).first->second;
  }

  void setState(Peer& p) {
    stats_.setText("session." + p.name, "state", toString(p.session->state()));
  }

  void dial(Peer& p) {
    if (!p.dials || p.dialing || p.session->established() || draining_) return;
    p.dialing = true;
    std::string address = p.address;
    Hello hello = hello_;
    Fabric* fabric = fabric_.get();
    uint64_t bytes = options_.geometry.receiveAreaBytes();
    Deadline until = bootstrapDeadline();
    std::string name = p.name;
    runBootstrap<ConnectionResult>(
        [=]() -> ConnectionResult {
          auto region = fabric->registerRegion(bytes);
          if (!region) return region.status();
          return fabric->connect(address, hello, std::move(region.value()), until);
        },
        [this, name](ConnectionResult result) { onDialed(name, std::move(result)); });
  }

  void onDialed(const std::string& name, ConnectionResult result) {
    Peer& p = peerFor(name);
    p.dialing = false;
    if (!result) {
      if (result.status().message() != p.last_error) {
        spdlog::warn("session to {}: cannot connect to {}: {} (retrying with backoff)", name,
                     p.address, result.status().message());
        p.last_error = result.status().message();
      }
      scheduleRetry(p);
      return;
    }
    if (result.value()->peerHello().node_name != name) {
      spdlog::error("session to {}: {} answered as '{}'", name, p.address,
                    result.value()->peerHello().node_name);
      scheduleRetry(p);
      return;
    }
    if (p.session->established()) return;  // already up through the other direction
    p.last_error.clear();
    p.backoff = kFirstBackoff;
    stats_.setText("session." + p.name, "fabric", toString(result.value()->kind()));
    p.session->attach(std::move(result.value()));
    setState(p);
  }

  void scheduleRetry(Peer& p) {
    if (draining_) return;
    if (p.retry_ev == nullptr) {
      p.retry_ev = event_new(base_, -1, 0, &onRetry, &p);
    }
    timeval tv = toTimeval(p.backoff);
    event_add(p.retry_ev, &tv);
    p.backoff = std::min(p.backoff * 2, options_.max_backoff);
  }

  static void onRetry(int, short, void* arg) {
    auto* p = static_cast<Peer*>(arg);
    p->owner->dial(*p);
  }

  void onSessionDown(Peer& p) {
    setState(p);
    if (p.dials) {
      p.backoff = kFirstBackoff;
      scheduleRetry(p);
    }
  }

  static void onListen(int fd, short, void* arg) {
    auto* self = static_cast<SessionManagerImpl*>(arg);
    for (;;) {
      int conn = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) return;
      self->acceptBootstrap(conn);
    }
  }

  void acceptBootstrap(int fd) {
    Hello hello = hello_;
    Fabric* fabric = fabric_.get();
    uint64_t bytes = options_.geometry.receiveAreaBytes();
    Deadline until = bootstrapDeadline();
    runBootstrap<ConnectionResult>(
        [=]() -> ConnectionResult {
          auto region = fabric->registerRegion(bytes);
          if (!region) {
            ::close(fd);
            return region.status();
          }
          return fabric->accept(fd, hello, std::move(region.value()), until);
        },
        [this](ConnectionResult result) { onAccepted(std::move(result)); });
  }

  void onAccepted(ConnectionResult result) {
    if (!result) {
      spdlog::warn("node {}: bootstrap of an incoming session failed: {}", options_.node_name,
                   result.status().message());
      return;
    }
    std::string name = result.value()->peerHello().node_name;
    if (name == options_.node_name) {
      spdlog::error("node {}: a peer claims our own name; refused", name);
      return;
    }
    Peer& p = peerFor(name);
    if (p.session->established()) {
      // The peer dialed again: it restarted, and the old connection is dead even if we have
      // not noticed yet.
      p.session->disconnect(unavailable("the peer dialed in again (restarted)"));
    }
    stats_.setText("session." + p.name, "fabric", toString(result.value()->kind()));
    p.session->attach(std::move(result.value()));
    setState(p);
  }

  std::unique_ptr<Fabric> fabric_;
  SessionManagerOptions options_;
  Hello hello_;
  int listen_fd_ = -1;
  event* listen_ev_ = nullptr;
  bool draining_ = false;
  std::map<std::string, std::unique_ptr<Peer>, std::less<>> peers_;
};

}  // namespace

std::unique_ptr<SessionManager> makeSessionManager(event_base* base, std::unique_ptr<Fabric> fabric,
                                                   SessionManagerOptions options, StatsStore& stats,
                                                   AcceptHandler on_accept) {
  return std::make_unique<SessionManagerImpl>(base, std::move(fabric), std::move(options), stats,
                                              std::move(on_accept));
}

}  // namespace rdmesh::transport
