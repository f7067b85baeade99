#include "server.h"

#include <event2/event.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>
#include <map>
#include <nlohmann/json.hpp>

#include "listen_sockets.h"
#include "rdmesh/transport/agent_fabric.h"
#include "rdmesh/transport/fabric.h"

namespace rdmesh::proxy {

namespace {
constexpr timeval kDrainTick{0, suseconds_t{50} * 1000};
}

Server::Server(ProxyConfig config)
    : config_(std::move(config)), current_(nullptr), base_(event_base_new()) {}

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

namespace {
std::unique_ptr<transport::Fabric> makeFabric(const TransportConfig& t) {
  using wire::FabricKind;
  FabricKind kind = FabricKind::kTcp;
  if (t.backend == FabricBackend::kShm) kind = FabricKind::kShm;
  if (t.backend == FabricBackend::kVerbs) kind = FabricKind::kVerbs;
  return transport::makeFabric(kind, {t.rdma_device, t.gid_index});
}

transport::AgentFabricOptions agentOptions(const ProxyConfig& c) {
  transport::AgentFabricOptions o;
  o.socket_path = c.node_agent->socket;
  // The completion queue holds every arrival the peer may have in flight (our recv_depth).
  uint32_t depth = transport::roundUpToPowerOfTwo(transport::SessionGeometry{}.recv_depth);
  o.region = {depth, depth, 0, c.node_agent->staging_bytes};
  o.control_timeout = c.transport.connect_timeout;
  o.exclude_outbound_ports = c.node_agent->exclude_outbound_ports;
  return o;
}

const char* fabricName(const ProxyConfig& c) {
  return c.node_agent ? "agent" : toString(c.transport.backend);
}
}  // namespace

Status Server::start() {
  stats_.setText("server", "node", config_.node.name);
  stats_.setText("server", "fabric", fabricName(config_));
  AdminServer::Handlers handlers;
  handlers.ready = [this] { return started_ && !draining_; };
  handlers.config_dump = [this] { return configDump(); };
  handlers.quit = [this] { beginDrain("/quitquitquit"); };
  admin_ = std::make_unique<AdminServer>(base_, stats_, std::move(handlers));
  if (Status s = admin_->listen(config_.admin.address); !s) return s;
  if (config_.admin.probe_address) {
    if (Status s = admin_->listenProbe(*config_.admin.probe_address); !s) return s;
  }

  auto boot = std::make_shared<const ProxyConfig>(config_);
  for (unsigned i = 0; i < config_.node.workers; ++i) {
    workers_.push_back(std::make_unique<Worker>(i, boot, stats_));
  }
  if (Status s = setUpCapture(); !s) return s;
  Worker* session_worker = workers_.front().get();
  for (auto& w : workers_) {
    w->setSessionWorker(session_worker);
    w->setOriginalDestination(&original_destination_);
  }
  if (Status s = install(config_, /*immediate=*/true); !s) return s;
  Status sessions =
      config_.node_agent
          ? session_worker->startMeshSessions(transport::makeAgentFabric(agentOptions(config_)))
          : session_worker->startSessions(makeFabric(config_.transport));
  if (!sessions) return sessions;

  for (int sig : {SIGTERM, SIGINT}) {
    event* ev = evsignal_new(base_, sig, &Server::onSignal, this);
    event_add(ev, nullptr);
    signal_events_.push_back(ev);
  }
  for (auto& w : workers_) w->start();
  started_ = true;
  spdlog::info("rdmesh-proxy {}: ready ({} worker(s), {} fabric, admin on {})", config_.node.name,
               workers_.size(), fabricName(config_), config_.admin.address.toString());
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

Status Server::updateConfig(ProxyConfig next) {
  if (draining_) return unavailable("the proxy is draining");
  return install(std::move(next), /*immediate=*/false);
}

Status Server::install(ProxyConfig next_config, bool immediate) {
  if (Status s = checkSnapshot(next_config); !s) return s;
  auto next = std::make_shared<const ProxyConfig>(std::move(next_config));
  // Sockets that are new by key and address; the others stay with the workers.
  std::map<std::string, ListenSockets> bound;
  for (const ListenerConfig& l : next->listeners) {
    for (const ListenerSocket& socket : listenerSockets(l)) {
      if (current_) {
        bool same = std::any_of(
            current_->listeners.begin(), current_->listeners.end(), [&](const ListenerConfig& old) {
              std::vector<ListenerSocket> old_sockets = listenerSockets(old);
              return std::any_of(old_sockets.begin(), old_sockets.end(), [&](const auto& o) {
                return o.key == socket.key && o.address == socket.address;
              });
            });
        if (same) continue;
      }
      auto sockets =
          ListenSockets::bind(l.name, socket.address, static_cast<unsigned>(workers_.size()));
      if (!sockets && socket.optional) {
        spdlog::warn("{}; capturing IPv4 only", sockets.status().message());
        continue;
      }
      if (!sockets) return sockets.status();  // `bound` closes what was already bound
      bound.emplace(socket.key, std::move(sockets.value()));
    }
  }
  for (size_t i = 0; i < workers_.size(); ++i) {
    std::map<std::string, int> fds;
    for (auto& [name, sockets] : bound) fds.emplace(name, sockets.release(i));
    Worker* w = workers_[i].get();
    if (immediate) {
      w->applyConfig(next, std::move(fds));
    } else {
      w->post([w, next, fds = std::move(fds)]() mutable { w->applyConfig(next, std::move(fds)); });
    }
  }
  current_ = std::move(next);
  return {};
}

Status Server::setUpCapture() {
  // The kernel's answers (eBPF's getsockname, iptables' SO_ORIGINAL_DST) cost nothing until
  // asked, so they are there for any capture listener, also one that arrives later from xDS.
  // The LD_PRELOAD registry binds a socket: only for a capture listener in the file.
  original_destination_.add(makeTransparentLocalAddress());
  original_destination_.add(makeSoOriginalDst());
  for (const ListenerConfig& l : config_.listeners) {
    if (l.direction != ListenerDirection::kCapture || l.preload_socket.empty()) continue;
    Result<std::unique_ptr<PreloadRegistry>> registry = PreloadRegistry::bind(l.preload_socket);
    if (!registry) return registry.status();
    original_destination_.add(std::move(*registry));
  }
  return {};
}

std::string Server::configDump() const {
  std::string dump = configToJson(*current_);
  if (!dump_extra_) return dump;
  using Json = nlohmann::ordered_json;
  Json merged = Json::parse(dump, nullptr, /*allow_exceptions=*/false);
  Json extra = Json::parse(dump_extra_(), nullptr, /*allow_exceptions=*/false);
  if (!merged.is_object() || !extra.is_object()) return dump;
  for (auto& [key, value] : extra.items()) merged[key] = value;
  return merged.dump(2, ' ', false, Json::error_handler_t::replace);
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
