// A worker: one thread, one event_base, driven by the AdaptivePoller. Accepts on its own
// SO_REUSEPORT copy of every outbound listener; connections stay on the worker that owns them.
// Exactly one worker (the session worker) owns the SessionManager, so every stream of a node
// pair shares ONE connection; other workers hand tunnelled connections to it once, at accept.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <unordered_map>
#include <vector>

#include "capture_router.h"
#include "config.h"
#include "load_balancer.h"
#include "original_destination.h"
#include "rdmesh/common/stats.h"
#include "rdmesh/common/task_queue.h"
#include "rdmesh/transport/adaptive_poller.h"
#include "rdmesh/transport/session_manager.h"
#include "tcp_proxy.h"

struct event;
struct event_base;

namespace rdmesh::proxy {

class Worker final : public ConnectionHost, public transport::Pollable {
 public:
  Worker(unsigned index, const ProxyConfig& config, StatsStore& stats);
  ~Worker() override;

  // On the main thread, before start(): bind this worker's listening sockets.
  Status bindListeners();
  // On the main thread, before start(): make this the session worker.
  Status startSessions(std::unique_ptr<transport::Fabric> fabric);
  void setSessionWorker(Worker* worker) { session_worker_ = worker; }
  // Before start(), when there is a capture listener: how it finds original destinations
  // (shared by the workers, thread-safe, owned by the server).
  void setOriginalDestination(OriginalDestination* source) { original_destination_ = source; }

  void start();
  void join();
  // Thread-safe: runs `task` on this worker's thread.
  void post(std::function<void()> task) { tasks_.post(std::move(task)); }

  // On the worker thread (via post):
  void beginDrain();
  void stop() { poller_.stop(); }

  size_t activeConnections() const { return active_.load(std::memory_order_relaxed); }

  // ConnectionHost
  event_base* base() override { return base_; }
  void onConnectionClosed(ProxyConnection& connection) override;

  // transport::Pollable: the sessions, plus deleting finished connections once per iteration.
  bool poll() override { return sessions_ && sessions_->poll(); }
  void flush() override;
  bool spinWorthwhile() const override { return sessions_ && sessions_->spinWorthwhile(); }
  bool prepareToSleep() override { return !sessions_ || sessions_->prepareToSleep(); }
  void markAwake() override {
    if (sessions_) sessions_->markAwake();
  }

 private:
  // Counters of the capture listener: where captured connections went.
  struct CaptureStats {
    Stat* to_service = nullptr;      // original destination was a service address
    Stat* to_endpoint = nullptr;     // ... an endpoint (pod IP:port) of a cluster
    Stat* passthrough = nullptr;     // ... unknown: plain TCP to it
    Stat* rejected = nullptr;        // ... unknown, and unknown_destination: reject
    Stat* no_original_dst = nullptr; // no source knew it (not captured by us): reset
  };
  struct Listener {
    Worker* worker = nullptr;
    const ListenerConfig* config = nullptr;
    InetAddress address;  // config->address, or address_v6 for a capture listener's v6 socket
    bool optional = false;  // a default v6 capture address on a host without IPv6: skip
    int fd = -1;
    event* ev = nullptr;
    size_t cluster = 0;
    ConnectionStats stats;
    CaptureStats capture;
  };
  struct Cluster {
    const ClusterConfig* config;
    std::unique_ptr<LoadBalancer> lb;
    ConnectionStats stats;
  };
  struct Inbound {
    const ListenerConfig* config = nullptr;
    ConnectionStats stats;
  };

  static CaptureStats captureStats(StatsStore& s, const std::string& name);
  static void onAccept(int fd, short what, void* arg);
  void acceptFrom(Listener& listener);
  void routeOutbound(int fd, Listener& listener);
  void routeCaptured(int fd, const InetAddress& peer, Listener& listener);
  // Sends an accepted connection to endpoint `ep` of `cluster` (local TCP or a tunnel stream).
  void forward(int fd, Listener& listener, Cluster& cluster, int ep);
  // Session worker only: open a stream for an accepted app connection.
  void openTunnel(int fd, const EndpointConfig& endpoint, std::vector<ConnectionStats> stats,
                  std::function<void()> on_finish, std::chrono::milliseconds timeout);
  transport::StreamCallbacks* onInboundStream(transport::Stream& stream);
  void adopt(std::unique_ptr<ProxyConnection> connection);
  void run();

  unsigned index_;
  const ProxyConfig& config_;
  StatsStore& stats_;
  event_base* base_;
  TaskQueue tasks_;
  transport::AdaptivePoller poller_;
  std::thread thread_;
  Worker* session_worker_ = nullptr;
  std::unique_ptr<transport::SessionManager> sessions_;
  CaptureRouter capture_router_;
  OriginalDestination* original_destination_ = nullptr;

  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<Cluster> clusters_;
  std::map<uint16_t, Inbound> inbound_by_port_;
  std::unordered_map<ProxyConnection*, std::unique_ptr<ProxyConnection>> live_;
  std::vector<std::unique_ptr<ProxyConnection>> finished_;
  std::atomic<size_t> active_{0};
  bool draining_ = false;
};

}  // namespace rdmesh::proxy
