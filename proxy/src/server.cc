#include "server.h"

#include <event2/event.h>
#include <spdlog/spdlog.h>

#include <csignal>

#include "rdmesh/transport/fabric.h"

namespace rdmesh::proxy {

namespace {
constexpr timeval kDrainTick{0, suseconds_t{50} * 1000};
}

Server::Server(ProxyConfig config) : config_(std::move(config)), base_(event_base_new()) {}

Server::~Server() {
  for (auto& w : workers_) {
    w->post([w = w.get()] { w->stop(); });
  }
  for (auto& w : workers_) w->join();
  workers_.clear();
  admin_.reset();
  for (event* ev : signal_events_) event_free(ev);
  if (drain_timer_) event_free(drain_timer_);
  event_base_free(base_);
}

Status Server::start() {
  stats_.setText("server", "node", config_.node.name);
  stats_.setText("server", "fabric", toString(config_.transport.backend));
  AdminServer::Handlers handlers;
  handlers.ready = [this] { return started_ && !draining_; };
  handlers.config_dump = [this] { return configToJson(config_); };
  handlers.quit = [this] { beginDrain("/quitquitquit"); };
  admin_ = std::make_unique<AdminServer>(base_, stats_, std::move(handlers));
  if (Status s = admin_->listen(config_.admin.address); !s) return s;

  for (unsigned i = 0; i < config_.node.workers; ++i) {
    workers_.push_back(std::make_unique<Worker>(i, config_, stats_));
  }
  if (Status s = setUpCapture(); !s) return s;
  Worker* session_worker = workers_.front().get();
  for (auto& w : workers_) {
    w->setSessionWorker(session_worker);
    w->setOriginalDestination(&original_destination_);
    if (Status s = w->bindListeners(); !s) return s;
  }
  auto fabric = config_.transport.backend == FabricBackend::kShm ? transport::makeShmFabric()
                                                                 : transport::makeTcpFabric();
  if (Status s = session_worker->startSessions(std::move(fabric)); !s) return s;

  for (int sig : {SIGTERM, SIGINT}) {
    event* ev = evsignal_new(base_, sig, &Server::onSignal, this);
    event_add(ev, nullptr);
    signal_events_.push_back(ev);
  }
  for (auto& w : workers_) w->start();
  started_ = true;
  spdlog::info("rdmesh-proxy {}: ready ({} worker(s), {} fabric, admin on {})", config_.node.name,
               workers_.size(), toString(config_.transport.backend),
               config_.admin.address.toString());
  return {};
}

Status Server::setUpCapture() {
  for (const ListenerConfig& l : config_.listeners) {
    if (l.direction != ListenerDirection::kCapture) continue;
    original_destination_.add(makeSoOriginalDst());
    if (!l.preload_socket.empty()) {
      Result<std::unique_ptr<PreloadRegistry>> registry = PreloadRegistry::bind(l.preload_socket);
      if (!registry) return registry.status();
      original_destination_.add(std::move(*registry));
    }
  }
  return {};
}

int Server::run() {
  event_base_dispatch(base_);
  for (auto& w : workers_) {
    w->post([w = w.get()] { w->stop(); });
  }
  for (auto& w : workers_) w->join();
  spdlog::info("rdmesh-proxy {}: stopped", config_.node.name);
  return 0;
}

void Server::onSignal(int sig, short, void* arg) {
  static_cast<Server*>(arg)->beginDrain(sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

void Server::beginDrain(const char* why) {
  if (draining_) return;
  draining_ = true;
  drain_started_ = std::chrono::steady_clock::now();
  spdlog::info("draining ({}): no new connections; waiting up to {} ms for open ones", why,
               config_.drain_timeout.count());
  for (auto& w : workers_) {
    w->post([w = w.get()] { w->beginDrain(); });
  }
  drain_timer_ = event_new(base_, -1, EV_PERSIST, &Server::onDrainTick, this);
  event_add(drain_timer_, &kDrainTick);
}

void Server::onDrainTick(int, short, void* arg) {
  static_cast<Server*>(arg)->checkDrained();
}

void Server::checkDrained() {
  size_t active = 0;
  for (auto& w : workers_) active += w->activeConnections();
  bool expired = std::chrono::steady_clock::now() - drain_started_ >= config_.drain_timeout;
  if (active == 0 || expired) {
    if (active) spdlog::warn("drain timeout: closing {} connection(s)", active);
    event_base_loopexit(base_, nullptr);
  }
}

}  // namespace rdmesh::proxy
