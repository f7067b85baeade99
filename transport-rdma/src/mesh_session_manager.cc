#include "rdmesh/transport/mesh_session_manager.h"

#include <event2/event.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "rdmesh/common/address.h"
#include "rdmesh/common/timeval.h"
#include "session_manager_base.h"

namespace rdmesh::transport {

namespace {

// -1, 0, 1 as a < b, a == b, a > b for two IPs of the same family (network byte order).
int compareIps(const std::string& a, const std::string& b) {
  auto x = InetAddress::fromIp(a, 0);
  auto y = InetAddress::fromIp(b, 0);
  if (!x || !y || x->family() != y->family()) return a.compare(b) < 0 ? -1 : a == b ? 0 : 1;
  int c = std::memcmp(x->rawIp().data(), y->rawIp().data(), x->rawIp().size());
  return c < 0 ? -1 : c > 0 ? 1 : 0;
}

class MeshSessionManager final : public SessionManagerBase {
 public:
  MeshSessionManager(event_base* base, std::unique_ptr<AgentFabric> fabric,
                     MeshSessionManagerOptions options, StatsStore& stats, AcceptHandler on_accept)
      : SessionManagerBase(
            base, stats, std::move(on_accept),
            makeSessionOptions(options.node_name, options.geometry, options.keepalive_interval),
            options.connect_timeout),
        fabric_(std::move(fabric)),
        options_(std::move(options)) {
    session_options_.idle_timeout = options_.idle_timeout;
    hello_.fabric = wire::FabricKind::kAgent;
    hello_.node_name = options_.node_name;
    hello_.geometry = options_.geometry;
    listener_state_ = &stats_.gauge("mesh.listener", "up");
    listens_total_ = &stats_.counter("mesh.listener", "connects_total");
    offers_total_ = &stats_.counter("mesh.listener", "offers_total");
    offers_refused_ = &stats_.counter("mesh.listener", "offers_refused_total");
  }

  ~MeshSessionManager() override {
    for (auto& [key, peer] : peers_) peer->session->setOnDown(nullptr);
    closeListener();
    if (relisten_ev_) event_free(relisten_ev_);
    for (auto& [key, peer] : peers_) {
      if (peer->retry_ev) event_free(peer->retry_ev);
    }
    joinBootstrapThreads();
  }

  Status start() override {
    if (options_.pod_ips.empty()) return invalidArgument("mesh mode needs the pod's IPs");
    for (std::string& ip : options_.pod_ips) {
      auto canonical = canonicalIp(ip);
      if (!canonical) return invalidArgument(fmt::format("pod IP '{}' is not an IP", ip));
      ip = *canonical;  // offers name our IP in canonical form
    }
    spdlog::info("mesh mode: pod {} on node {}, sessions through the node agent",
                 fmt::join(options_.pod_ips, ","), options_.node_name);
    listen();
    return {};
  }

  Session* session(std::string_view key) override {
    auto it = peers_.find(key);
    if (it == peers_.end()) {
      auto address = parseMeshAddress(key);
      if (!address) {
        spdlog::warn("mesh: {}", address.status().message());
        return nullptr;
      }
      if (address->toString() != key) return session(address->toString());  // canonical form
      it = peers_.emplace(std::string(key), makePeer(std::string(key))).first;
    }
    Peer& p = *it->second;
    if (!p.session->established()) dial(p);
    return p.session.get();
  }

  void setPeers(std::vector<PeerSpec> /*peers*/) override {}  // peers come from endpoints

  void drain() override {
    draining_ = true;
    closeListener();
    for (auto& [key, peer] : peers_) {
      peer->session->drain();
      setState(*peer);
    }
  }

 private:
  struct Peer {
    MeshSessionManager* owner = nullptr;
    std::string key;  // "<pod ip>@<node>"
    std::string ip;
    std::unique_ptr<SessionImpl> session;
    bool dialing = false;
    bool accepting = false;
    bool we_dialed = false;  // the established session is the one we dialed
    event* retry_ev = nullptr;
    bool retry_armed = false;
    std::chrono::milliseconds backoff = kFirstBackoff;
    std::string last_error;
  };

  std::unique_ptr<Peer> makePeer(const std::string& key) {
    auto peer = std::make_unique<Peer>();
    peer->owner = this;
    peer->key = key;
    peer->ip = key.substr(0, key.rfind('@'));
    peer->session = makeSession(key);
    Peer* raw = peer.get();
    peer->session->setOnDown([this, raw](const Status&) {
      setState(*raw);
      // Streams held through an idle close need the next session now.
      if (raw->session->activeStreams() > 0) dial(*raw);
    });
    stats_.setText("session." + key, "fabric", toString(fabric_->kind()));
    setState(*peer);
    return peer;
  }

  Peer& peerFor(const std::string& key) {
    auto it = peers_.find(key);
    if (it == peers_.end()) it = peers_.emplace(key, makePeer(key)).first;
    return *it->second;
  }

  void setState(Peer& p) {
    stats_.setText("session." + p.key, "state", toString(p.session->state()));
  }

  // Our pod IP facing `peer_ip` (same family), for the tie-break.
  std::string ourIpFacing(const std::string& peer_ip) const {
    auto peer = InetAddress::fromIp(peer_ip, 0);
    for (const std::string& ip : options_.pod_ips) {
      auto ours = InetAddress::fromIp(ip, 0);
      if (ours && peer && ours->family() == peer->family()) return ours->ipString();
    }
    return options_.pod_ips.front();
  }
  bool weAreLower(const Peer& p) const { return compareIps(ourIpFacing(p.ip), p.ip) < 0; }

  // ---- dialing ----

  void dial(Peer& p) {
    if (p.dialing || p.accepting || p.retry_armed || p.session->established() || draining_) {
      return;
    }
    p.dialing = true;
    std::string key = p.key;
    bootstrap(
        p,
        [key](AgentFabric& fabric, const Hello& hello, std::unique_ptr<MemoryRegion> region,
              Deadline until) { return fabric.connect(key, hello, std::move(region), until); },
        &MeshSessionManager::onDialed);
  }

  // Registers a region and runs `step` with it on a bootstrap thread; `done` gets the result on
  // the loop thread.
  using BootstrapStep = std::function<ConnectionResult(AgentFabric&, const Hello&,
                                                       std::unique_ptr<MemoryRegion>, Deadline)>;
  void bootstrap(Peer& p, BootstrapStep step,
                 void (MeshSessionManager::*done)(Peer&, ConnectionResult)) {
    AgentFabric* fabric = fabric_.get();
    Hello hello = hello_;
    uint64_t bytes = options_.geometry.receiveAreaBytes();
    Deadline until = bootstrapDeadline();
    std::string key = p.key;
    runBootstrap<ConnectionResult>(
        [=, step = std::move(step)]() -> ConnectionResult {
          auto region = fabric->registerRegion(bytes);
          if (!region) return region.status();
          return step(*fabric, hello, std::move(region.value()), until);
        },
        [this, key, done](ConnectionResult result) {
          (this->*done)(peerFor(key), std::move(result));
        });
  }

  void onDialed(Peer& p, ConnectionResult result) {
    p.dialing = false;
    if (p.session->established()) return;  // up through the peer's dial meanwhile: ours goes
    if (!result) {
      if (result.status().message() != p.last_error) {
        spdlog::warn("session to {}: cannot open through the node agent: {}", p.key,
                     result.status().message());
        p.last_error = result.status().message();
      }
      // The peer's own dial may be bringing the session up (we refused nothing then).
      if (!p.accepting) p.session->failPendingStreams(result.status());
      scheduleRetry(p);
      return;
    }
    attach(p, std::move(result.value()), /*we_dialed=*/true);
  }

  void attach(Peer& p, std::unique_ptr<FabricConnection> connection, bool we_dialed) {
    p.last_error.clear();
    p.backoff = kFirstBackoff;
    p.we_dialed = we_dialed;
    stats_.setText("session." + p.key, "fabric", toString(connection->kind()));
    p.session->attach(std::move(connection));
    setState(p);
  }

  // After a failure, the next dial waits for the backoff; it happens then only if streams are
  // waiting, else at the next session() call.
  void scheduleRetry(Peer& p) {
    if (draining_) return;
    if (p.retry_ev == nullptr) p.retry_ev = event_new(base_, -1, 0, &onRetry, &p);
    timeval tv = toTimeval(p.backoff);
    event_add(p.retry_ev, &tv);
    p.retry_armed = true;
    p.backoff = std::min(p.backoff * 2, options_.max_backoff);
  }

  static void onRetry(int, short, void* arg) {
    auto* p = static_cast<Peer*>(arg);
    p->retry_armed = false;
    if (p->session->activeStreams() > 0) p->owner->dial(*p);
  }

  // ---- listening and accepting ----

  void listen() {
    if (draining_ || listening_) return;
    listening_ = true;
    AgentFabric* fabric = fabric_.get();
    std::vector<std::string> ips = options_.pod_ips;
    Deadline until = bootstrapDeadline();
    runBootstrap<Result<int>>([=]() { return fabric->listenFor(ips, until); },
                              [this](Result<int> fd) { onListening(std::move(fd)); });
  }

  void onListening(Result<int> fd) {
    listening_ = false;
    if (!fd) {
      if (fd.status().message() != listen_error_) {
        spdlog::warn("mesh: cannot listen through the node agent: {} (retrying with backoff)",
                     fd.status().message());
        listen_error_ = fd.status().message();
      }
      scheduleRelisten();
      return;
    }
    if (draining_) {
      ::close(*fd);
      return;
    }
    listen_error_.clear();
    listen_backoff_ = kFirstBackoff;
    listen_fd_ = *fd;
    listen_ev_ = event_new(base_, listen_fd_, EV_READ | EV_PERSIST, &onListenReadable, this);
    event_add(listen_ev_, nullptr);
    listener_state_->set(1);
    listens_total_->inc();
    spdlog::info("mesh: listening for sessions to {} through the node agent",
                 fmt::join(options_.pod_ips, ","));
  }

  void scheduleRelisten() {
    if (draining_) return;
    if (relisten_ev_ == nullptr) {
      relisten_ev_ = event_new(
          base_, -1, 0,
          [](int, short, void* self) { static_cast<MeshSessionManager*>(self)->listen(); }, this);
    }
    timeval tv = toTimeval(listen_backoff_);
    event_add(relisten_ev_, &tv);
    listen_backoff_ = std::min(listen_backoff_ * 2, options_.max_backoff);
  }

  void closeListener() {
    if (listen_ev_) event_free(listen_ev_);
    listen_ev_ = nullptr;
    if (listen_fd_ >= 0) ::close(listen_fd_);
    listen_fd_ = -1;
    listener_state_->set(0);
  }

  static void onListenReadable(int, short, void* arg) {
    static_cast<MeshSessionManager*>(arg)->readOffers();
  }

  void readOffers() {
    auto offers = fabric_->readOffers(listen_fd_);
    if (!offers) {
      spdlog::warn("mesh: lost the node agent listener: {}", offers.status().message());
      closeListener();
      scheduleRelisten();
      return;
    }
    for (AgentOffer& offer : *offers) onOffer(std::move(offer));
  }

  void refuse(const AgentOffer& offer, const std::string& why) {
    offers_refused_->inc();
    spdlog::debug("mesh: refused session from {}@{}: {}", offer.peer_ip, offer.peer_node, why);
    if (Status s = fabric_->refuseOffer(listen_fd_, offer.offer_id, why); !s) {
      spdlog::warn("mesh: session_refuse: {}", s.message());
    }
  }

  void onOffer(AgentOffer offer) {
    offers_total_->inc();
    if (draining_) return refuse(offer, "draining");
    bool ours = std::find(options_.pod_ips.begin(), options_.pod_ips.end(), offer.destination_ip) !=
                options_.pod_ips.end();
    if (!ours) return refuse(offer, "destination " + offer.destination_ip + " is not this pod");
    Peer& p = peerFor(MeshAddress{offer.peer_ip, offer.peer_node}.toString());
    if (p.accepting) return refuse(offer, "already accepting a session from this sidecar");
    bool ours_kept = p.session->established() && p.we_dialed && !p.session->closingIdle();
    if ((p.dialing || ours_kept) && weAreLower(p)) {
      return refuse(offer, "simultaneous open: the session dialed by the lower pod IP is kept");
    }
    p.accepting = true;
    bootstrap(
        p,
        [offer = std::move(offer)](AgentFabric& fabric, const Hello& hello,
                                   std::unique_ptr<MemoryRegion> region, Deadline until) {
          return fabric.acceptOffer(offer, hello, std::move(region), until);
        },
        &MeshSessionManager::onAccepted);
  }

  void onAccepted(Peer& p, ConnectionResult result) {
    if (!result) {
      p.accepting = false;
      spdlog::warn("session from {}: accepting through the node agent failed: {}", p.key,
                   result.status().message());
      if (!p.dialing) p.session->failPendingStreams(result.status());
      return;
    }
    if (p.session->established() && p.session->closingIdle()) {
      // The peer closed the idle session and dialed again before we saw the close.
      p.session->closeIdle();
    } else if (p.session->established()) {
      // The peer dialed again: it restarted, and the old session is dead even if we have not
      // noticed yet.
      p.session->disconnect(unavailable("the peer sidecar opened a new session (restarted)"));
    }
    p.accepting = false;  // only now: the old session going down must not dial a third one
    attach(p, std::move(result.value()), /*we_dialed=*/false);
  }

  std::unique_ptr<AgentFabric> fabric_;
  MeshSessionManagerOptions options_;
  Hello hello_;
  std::map<std::string, std::unique_ptr<Peer>, std::less<>> peers_;
  int listen_fd_ = -1;
  event* listen_ev_ = nullptr;
  event* relisten_ev_ = nullptr;
  bool listening_ = false;
  std::chrono::milliseconds listen_backoff_ = kFirstBackoff;
  std::string listen_error_;
  bool draining_ = false;
  Stat* listener_state_;
  Stat* listens_total_;
  Stat* offers_total_;
  Stat* offers_refused_;
};

}  // namespace

std::unique_ptr<SessionManager> makeMeshSessionManager(event_base* base,
                                                       std::unique_ptr<AgentFabric> fabric,
                                                       MeshSessionManagerOptions options,
                                                       StatsStore& stats, AcceptHandler on_accept) {
  return std::make_unique<MeshSessionManager>(base, std::move(fabric), std::move(options), stats,
                                              std::move(on_accept));
}

}  // namespace rdmesh::transport
