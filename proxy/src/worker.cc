#include "worker.h"

#include <event2/event.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

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

Worker::CaptureStats Worker::captureStats(StatsStore& s, const std::string& name) {
  std::string scope = "listener." + name;
  return {&s.counter(scope, "capture_to_service"), &s.counter(scope, "capture_to_endpoint"),
          &s.counter(scope, "capture_passthrough"), &s.counter(scope, "capture_rejected"),
          &s.counter(scope, "capture_no_original_dst")};
}

namespace {

}  // namespace

Worker::Worker(unsigned index, const ProxyConfig& config, StatsStore& stats)
    : index_(index),
      config_(config),
      stats_(stats),
      base_(event_base_new()),
      tasks_(base_),
      poller_(base_, config.transport.poll_budget),
      capture_router_(config.clusters) {
  poller_.add(this);
  std::map<std::string, size_t> cluster_index;
  for (const ClusterConfig& c : config_.clusters) {
    cluster_index[c.name] = clusters_.size();
    clusters_.push_back({&c, makeLoadBalancer(c.lb_policy, c.endpoints.size(), index_ * 7919 + 1),
                         clusterStats(stats_, c.name)});
  }
  for (const ListenerConfig& l : config_.listeners) {
    if (l.direction == ListenerDirection::kInbound) {
      inbound_by_port_[l.port] = {&l, listenerStats(stats_, l.name)};
      continue;
    }
    auto listener = std::make_unique<Listener>();
    listener->worker = this;
    listener->config = &l;
    listener->address = l.address;
    listener->stats = listenerStats(stats_, l.name);
    if (l.direction == ListenerDirection::kCapture) {
      listener->capture = captureStats(stats_, l.name);
      if (l.has_address_v6) {
        auto v6 = std::make_unique<Listener>(*listener);
        v6->address = l.address_v6;
        v6->optional = l.address_v6.toString() == kDefaultCaptureAddressV6;
        listeners_.push_back(std::move(v6));
      }
    } else {
      listener->cluster = cluster_index.at(l.cluster);
    }
    listeners_.push_back(std::move(listener));
  }
}

Worker::~Worker() {
  for (auto& l : listeners_) {
    if (l->ev) event_free(l->ev);
    if (l->fd >= 0) ::close(l->fd);
  }
  live_.clear();
  finished_.clear();
  sessions_.reset();
  event_base_free(base_);
}

Status Worker::bindListeners() {
  for (auto& l : listeners_) {
    const InetAddress& addr = l->address;
    int fd = ::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return internalError(std::string("socket: ") + strerror(errno));
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    bool bound = ::bind(fd, addr.sockaddrPtr(), addr.sockaddrLen()) == 0;
    if (!bound && l->optional && errno == EADDRNOTAVAIL) {
      spdlog::warn("listener {}: no {} here (IPv6 off?); capturing IPv4 only", l->config->name,
                   addr.toString());
      ::close(fd);
      continue;
    }
    if (!bound || ::listen(fd, 1024) != 0) {
      Status s = unavailable(fmt::format("listener {}: cannot listen on {}: {}", l->config->name,
                                         addr.toString(), strerror(errno)));
      ::close(fd);
      return s;
    }
    l->fd = fd;
    l->ev = event_new(base_, fd, EV_READ | EV_PERSIST, &Worker::onAccept, l.get());
    event_add(l->ev, nullptr);
  }
  return {};
}

Status Worker::startSessions(std::unique_ptr<transport::Fabric> fabric) {
  const TransportConfig& t = config_.transport;
  transport::SessionManagerOptions options;
  options.node_name = config_.node.name;
  options.listen_address = t.listen;
  for (const PeerConfig& p : t.peers) options.peers.push_back({p.name, p.address});
  options.geometry.max_streams = t.max_streams;
  options.geometry.ring_bytes = t.ring_bytes;
  options.geometry.keepalive_timeout_ms = static_cast<uint32_t>(t.keepalive_timeout.count());
  options.keepalive_interval = t.keepalive_interval;
  options.connect_timeout = t.connect_timeout;
  sessions_ = transport::makeSessionManager(
      base_, std::move(fabric), std::move(options), stats_,
      [this](transport::Stream& stream) { return onInboundStream(stream); });
  return sessions_->start();
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
  for (auto& l : listeners_) {
    if (l->ev) event_del(l->ev);
    if (l->fd >= 0) ::close(l->fd);
    l->fd = -1;
  }
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
  Cluster& cluster = clusters_[listener.cluster];
  forward(fd, listener, cluster, cluster.lb->pick());
}

void Worker::routeCaptured(int fd, const InetAddress& peer, Listener& listener) {
  Result<InetAddress> dst = original_destination_ != nullptr
                                ? original_destination_->lookup(fd, peer)
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
  switch (route.kind) {
    case CaptureRoute::kService: {
      listener.capture.to_service->inc();
      Cluster& cluster = clusters_[route.cluster];
      forward(fd, listener, cluster, cluster.lb->pick());
      return;
    }
    case CaptureRoute::kEndpoint:
      listener.capture.to_endpoint->inc();
      forward(fd, listener, clusters_[route.cluster], route.endpoint);
      return;
    case CaptureRoute::kUnknown:
      break;
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
  adopt(std::make_unique<TcpRelay>(*this, std::vector<ConnectionStats>{listener.stats}, nullptr,
                                   fd, *dst, config_.transport.connect_timeout));
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
  LoadBalancer* lb = cluster.lb.get();
  if (endpoint.node == config_.node.name) {
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
  session_worker_->post([w = session_worker_, fd, &endpoint, stats = std::move(stats),
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
  transport::Session* session = sessions_ ? sessions_->session(endpoint.node) : nullptr;
  transport::Stream* stream =
      session ? session->openStream(endpoint.address, config_.node.identity, raw) : nullptr;
  if (session == nullptr) {
    spdlog::warn("no session to node '{}' for {}", endpoint.node, endpoint.address.toString());
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
