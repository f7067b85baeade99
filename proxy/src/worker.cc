#include "worker.h"

#include <event2/event.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "config_update.h"
#include "rdmesh/transport/mesh_session_manager.h"

namespace rdmesh::proxy {

namespace {

constexpr int kMaxAcceptsPerEvent = 64;

void closeWithReset(int fd) {
  linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  ::close(fd);
}

// Listeners count downstream connections, clusters upstream ones; both count connect failures.
ConnectionStats connectionStats(StatsStore& s, const std::string& scope, const char* side) {
  ConnectionStats c;
  c.cx_total = &s.counter(scope, fmt::format("{}_cx_total", side));
  c.cx_active = &s.gauge(scope, fmt::format("{}_cx_active", side));
  c.cx_reset = &s.counter(scope, fmt::format("{}_cx_reset", side));
  c.connect_fail = &s.counter(scope, "upstream_cx_connect_fail");
  c.connect_timeout = &s.counter(scope, "upstream_cx_connect_timeout");
  return c;
}

ConnectionStats listenerStats(StatsStore& s, const std::string& name) {
  return connectionStats(s, "listener." + name, "downstream");
}

ConnectionStats clusterStats(StatsStore& s, const std::string& name) {
  return connectionStats(s, "cluster." + name, "upstream");
}

}  // namespace

Worker::Worker(unsigned index, ConfigSnapshot config, StatsStore& stats)
    : index_(index),
      boot_(std::move(config)),
      config_(*boot_),
      stats_(stats),
      base_(event_base_new()),
      tasks_(base_),
      poller_(base_, config_.transport.poll_budget) {
  poller_.add(this);
}

Worker::~Worker() {
  listeners_.clear();
  live_.clear();
  finished_.clear();
  sessions_.reset();
  event_base_free(base_);
}

Worker::Listener::~Listener() {
  if (ev) event_free(ev);
  if (fd >= 0) ::close(fd);
}

void Worker::applyConfig(ConfigSnapshot next, std::map<std::string, int> new_listeners) {
  applyClusters(*next);
  applyListeners(*next, new_listeners);
  capture_router_ = CaptureRouter(next->clusters);
  inbound_by_port_.clear();
  for (const ListenerConfig& l : next->listeners) {
    if (l.direction == ListenerDirection::kInbound) {
      inbound_by_port_[l.port] = {&l, listenerStats(stats_, l.name)};
    }
  }
  if (sessions_) {
    std::vector<transport::PeerSpec> peers;
    for (const PeerConfig& p : next->transport.peers) peers.push_back({p.name, p.address});
    sessions_->setPeers(std::move(peers));
  }
  snapshot_ = std::move(next);
}

void Worker::applyClusters(const ProxyConfig& next) {
  std::unordered_map<std::string, Cluster> clusters;
  for (const ClusterConfig& c : next.clusters) {
    Cluster cluster{&c, nullptr, clusterStats(stats_, c.name)};
    // Same endpoints and policy: keep the balancer (round-robin position, active counts).
    auto old = clusters_.find(c.name);
    if (old != clusters_.end() && old->second.config->lb_policy == c.lb_policy &&
        old->second.config->endpoints == c.endpoints) {
      cluster.lb = std::move(old->second.lb);
    } else {
      cluster.lb = makeLoadBalancer(c.lb_policy, c.endpoints.size(), index_ * 7919 + 1);
    }
    clusters.emplace(c.name, std::move(cluster));
  }
  clusters_ = std::move(clusters);
}

void Worker::applyListeners(const ProxyConfig& next, std::map<std::string, int>& new_listeners) {
  decltype(listeners_) listeners;
  for (const ListenerConfig& l : next.listeners) {
    for (const ListenerSocket& socket : listenerSockets(l)) {
      auto fd = new_listeners.find(socket.key);
      if (fd == new_listeners.end()) {
        // Same key and address as before: the socket (and its backlog) carries over. None
        // at all: an optional socket that could not be bound (IPv6 off).
        auto old = listeners_.find(socket.key);
        if (old == listeners_.end()) continue;
        old->second->config = &l;
        listeners.emplace(socket.key, std::move(old->second));
        listeners_.erase(old);
        continue;
      }
      auto listener = std::make_unique<Listener>();
      listener->worker = this;
      listener->config = &l;
      listener->fd = std::exchange(fd->second, -1);
      listener->address = InetAddress::localOf(listener->fd).valueOr(socket.address);
      listener->stats = listenerStats(stats_, l.name);
      std::string scope = "listener." + l.name;
      listener->no_cluster = &stats_.counter(scope, "downstream_cx_no_cluster");
      if (l.direction == ListenerDirection::kCapture) {
        listener->capture = {&stats_.counter(scope, "capture_to_service"),
                             &stats_.counter(scope, "capture_to_endpoint"),
                             &stats_.counter(scope, "capture_passthrough"),
                             &stats_.counter(scope, "capture_rejected"),
                             &stats_.counter(scope, "capture_no_original_dst")};
      }
      if (draining_) continue;  // a draining worker takes no new listener; the destructor closes it
      listener->ev =
          event_new(base_, listener->fd, EV_READ | EV_PERSIST, &Worker::onAccept, listener.get());
      event_add(listener->ev, nullptr);
      listeners.emplace(socket.key, std::move(listener));
    }
  }
  for (auto& [key, fd] : new_listeners) {
    if (fd >= 0) ::close(fd);  // not taken above: never leak it
  }
  // Listeners that are gone (or moved): route what the kernel already queued on them, then
  // close. Their open connections are not theirs (live_ owns them) and carry on.
  for (auto& [key, old] : listeners_) {
    if (old->fd >= 0) acceptFrom(*old);
    spdlog::debug("worker {}: listener {} closed; its open connections stay", index_, key);
  }
  listeners_ = std::move(listeners);
}

namespace {
transport::SessionGeometry geometryOf(const TransportConfig& t) {
  transport::SessionGeometry g;
  g.max_streams = t.max_streams;
  g.ring_bytes = t.ring_bytes;
  g.keepalive_timeout_ms = static_cast<uint32_t>(t.keepalive_timeout.count());
  return g;
}
}  // namespace

Status Worker::startSessions(std::unique_ptr<transport::Fabric> fabric) {
  const TransportConfig& t = config_.transport;
  transport::SessionManagerOptions options;
  options.node_name = config_.node.name;
  options.listen_address = t.listen;
  const ProxyConfig& current = snapshot_ ? *snapshot_ : config_;
  for (const PeerConfig& p : current.transport.peers) options.peers.push_back({p.name, p.address});
  options.geometry = geometryOf(t);
  options.keepalive_interval = t.keepalive_interval;
  options.connect_timeout = t.connect_timeout;
  sessions_ = transport::makeSessionManager(
      base_, std::move(fabric), std::move(options), stats_,
      [this](transport::Stream& stream) { return onInboundStream(stream); });
  return sessions_->start();
}

Status Worker::startMeshSessions(std::unique_ptr<transport::AgentFabric> fabric) {
  const TransportConfig& t = config_.transport;
  transport::MeshSessionManagerOptions options;
  options.node_name = config_.node.name;
  options.pod_ips = config_.node_agent->pod_ips;
  options.geometry = geometryOf(t);
  // Mesh sessions have their own geometry: the agent pins each session's region whole.
  options.geometry.ring_bytes = config_.node_agent->ring_bytes;
  options.geometry.max_streams = config_.node_agent->max_streams;
  options.keepalive_interval = t.keepalive_interval;
  options.connect_timeout = t.connect_timeout;
  options.idle_timeout = config_.node_agent->idle_session_timeout;
  sessions_ = transport::makeMeshSessionManager(
      base_, std::move(fabric), std::move(options), stats_,
      [this](transport::Stream& stream) { return onInboundStream(stream); });
  return sessions_->start();
}

bool Worker::isLocal(const EndpointConfig& endpoint) const {
  if (!config_.node_agent) return endpoint.node == config_.node.name;
  const auto& ips = config_.node_agent->pod_ips;
  return std::find(ips.begin(), ips.end(), endpoint.address.ipString()) != ips.end();
}

std::string Worker::sessionKey(const EndpointConfig& endpoint) const {
  if (!config_.node_agent) return endpoint.node;
  return transport::MeshAddress{endpoint.address.ipString(), endpoint.node}.toString();
}

void Worker::start() {
  thread_ = std::thread([this] { run(); });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::run() {
  poller_.run();
  // Connections first: they hold streams of the sessions.
  live_.clear();
  finished_.clear();
  sessions_.reset();
}

void Worker::beginDrain() {
  draining_ = true;
  listeners_.clear();
  if (sessions_) sessions_->drain();
}

void Worker::onAccept(int /*fd*/, short /*what*/, void* arg) {
  auto* l = static_cast<Listener*>(arg);
  l->worker->acceptFrom(*l);
}

void Worker::acceptFrom(Listener& listener) {
  const bool capture = listener.config->direction == ListenerDirection::kCapture;
  for (int i = 0; i < kMaxAcceptsPerEvent && listener.fd >= 0; ++i) {
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof(peer);
    int fd = ::accept4(listener.fd, capture ? reinterpret_cast<sockaddr*>(&peer) : nullptr,
                       capture ? &peer_len : nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (capture) {
      routeCaptured(fd, InetAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&peer), peer_len),
                    listener);
    } else {
      routeOutbound(fd, listener);
    }
  }
}

void Worker::routeOutbound(int fd, Listener& listener) {
  auto found = clusters_.find(listener.config->cluster);
  if (found == clusters_.end()) {
    // A static listener whose cluster the control plane has not sent (yet).
    listener.stats.cx_total->inc();
    listener.no_cluster->inc();
    closeWithReset(fd);
    return;
  }
  forward(fd, listener, found->second, found->second.lb->pick());
}

void Worker::routeCaptured(int fd, const InetAddress& peer, Listener& listener) {
  Result<InetAddress> dst =
      original_destination_ != nullptr
          ? original_destination_->lookup({fd, peer, listener.address})
          : Result<InetAddress>(unavailable("no original destination source"));
  if (!dst) {
    // Not a connection our capture made (or its record is gone): nowhere to send it.
    spdlog::debug("capture: connection from {}: {}", peer.toString(), dst.status().message());
    listener.capture.no_original_dst->inc();
    listener.stats.cx_total->inc();
    closeWithReset(fd);
    return;
  }
  CaptureRoute route = capture_router_.route(*dst);
  if (route.kind != CaptureRoute::kUnknown) {
    Cluster& cluster = clusters_.at(snapshot_->clusters[route.cluster].name);
    if (route.kind == CaptureRoute::kService) {
      listener.capture.to_service->inc();
      forward(fd, listener, cluster, cluster.lb->pick());
    } else {
      listener.capture.to_endpoint->inc();
      forward(fd, listener, cluster, route.endpoint);
    }
    return;
  }
  if (listener.config->unknown_destination == UnknownDestination::kReject) {
    spdlog::debug("capture: {} is not in the mesh; rejected", dst->toString());
    listener.capture.rejected->inc();
    listener.stats.cx_total->inc();
    closeWithReset(fd);
    return;
  }
  // Passthrough: plain TCP from the sidecar (uid 1337, never captured) to where the app meant.
  listener.capture.passthrough->inc();
  adopt(std::make_unique<TcpRelay>(*this, std::vector<ConnectionStats>{listener.stats}, nullptr, fd,
                                   *dst, config_.transport.connect_timeout));
}

void Worker::forward(int fd, Listener& listener, Cluster& cluster, int ep) {
  if (ep < 0) {
    listener.stats.cx_total->inc();
    closeWithReset(fd);
    return;
  }
  cluster.lb->onStart(ep);
  std::vector<ConnectionStats> stats{listener.stats, cluster.stats};
  const EndpointConfig& endpoint = cluster.config->endpoints[static_cast<size_t>(ep)];
  std::chrono::milliseconds timeout = cluster.config->connect_timeout;
  std::shared_ptr<LoadBalancer> lb = cluster.lb;
  if (isLocal(endpoint)) {
    adopt(std::make_unique<TcpRelay>(
        *this, std::move(stats), [lb, ep] { lb->onFinish(ep); }, fd, endpoint.address, timeout));
    return;
  }
  if (session_worker_ == this) {
    openTunnel(
        fd, endpoint, std::move(stats), [lb, ep] { lb->onFinish(ep); }, timeout);
    return;
  }
  // Hand over to the session worker once; the load balancer's count comes back here.
  auto on_finish = [this, lb, ep] { post([lb, ep] { lb->onFinish(ep); }); };
  // The endpoint is copied: this worker may switch snapshots before the session worker runs this.
  session_worker_->post([w = session_worker_, fd, endpoint, stats = std::move(stats),
                         on_finish = std::move(on_finish), timeout]() mutable {
    w->openTunnel(fd, endpoint, std::move(stats), std::move(on_finish), timeout);
  });
}

void Worker::openTunnel(int fd, const EndpointConfig& endpoint, std::vector<ConnectionStats> stats,
                        std::function<void()> on_finish, std::chrono::milliseconds timeout) {
  auto bridge =
      std::make_unique<StreamBridge>(*this, std::move(stats), std::move(on_finish), fd, timeout);
  StreamBridge* raw = bridge.get();
  adopt(std::move(bridge));
  std::string key = sessionKey(endpoint);
  transport::Session* session = sessions_ ? sessions_->session(key) : nullptr;
  transport::Stream* stream =
      session ? session->openStream(endpoint.address, config_.node.identity, raw) : nullptr;
  if (session == nullptr) {
    spdlog::warn("no session to '{}' for {}", key, endpoint.address.toString());
  }
  raw->attach(stream);
}

transport::StreamCallbacks* Worker::onInboundStream(transport::Stream& stream) {
  if (draining_) return nullptr;
  auto it = inbound_by_port_.find(stream.destination().port());
  if (it == inbound_by_port_.end()) {
    spdlog::debug("inbound stream to {} from '{}': no inbound listener for that port",
                  stream.destination().toString(), stream.identity());
    return nullptr;
  }
  auto bridge =
      std::make_unique<StreamBridge>(*this, std::vector<ConnectionStats>{it->second.stats}, &stream,
                                     it->second.config->target, config_.transport.connect_timeout);
  StreamBridge* raw = bridge.get();
  adopt(std::move(bridge));
  return raw;
}

void Worker::adopt(std::unique_ptr<ProxyConnection> connection) {
  ProxyConnection* raw = connection.get();
  if (raw->closed()) {  // failed in its constructor
    finished_.push_back(std::move(connection));
    return;
  }
  live_.emplace(raw, std::move(connection));
  active_.fetch_add(1, std::memory_order_relaxed);
}

void Worker::onConnectionClosed(ProxyConnection& connection) {
  auto it = live_.find(&connection);
  if (it == live_.end()) return;  // closed inside its constructor: adopt() handles it
  finished_.push_back(std::move(it->second));
  live_.erase(it);
  active_.fetch_sub(1, std::memory_order_relaxed);
}

void Worker::flush() {
  if (sessions_) sessions_->flush();
  finished_.clear();
}

}  // namespace rdmesh::proxy
