// A worker: one thread, one event_base, driven by the AdaptivePoller. Accepts on its own
// SO_REUSEPORT copy of every outbound listener; connections stay on the worker that owns them.
// Exactly one worker (the session worker) owns the SessionManager, so every stream of a node
// pair shares ONE connection; other workers hand tunnelled connections to it once, at accept.
//
// Configuration arrives as immutable snapshots through the task queue (applyConfig): listeners
// not in the new snapshot stop accepting, new ones start, clusters swap their endpoints for new
// connections. Open connections never look at the config again (they copied what they use), so
// an update never drops them.
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
#include "rdmesh/transport/agent_fabric.h"
#include "rdmesh/transport/session_manager.h"
#include "tcp_proxy.h"

struct event;
struct event_base;

namespace rdmesh::proxy {

class Worker final : public ConnectionHost, public transport::Pollable {
 public:
  // `config` holds the settings that never change while running (node, transport).
  Worker(unsigned index, ConfigSnapshot config, StatsStore& stats);
  ~Worker() override;

  // On the main thread, before start(): make this the session worker.
  Status startSessions(std::unique_ptr<transport::Fabric> fabric);
  // Mesh mode: sessions per remote sidecar through the node agent.
  Status startMeshSessions(std::unique_ptr<transport::AgentFabric> fabric);
  void setSessionWorker(Worker* worker) { session_worker_ = worker; }
  // Before start(): where capture listeners learn each connection's original destination
  // (shared by all workers, owned by the server).
  void setOriginalDestination(OriginalDestination* source) { original_destination_ = source; }

  void start();
  void join();
  // Thread-safe: runs `task` on this worker's thread.
  void post(std::function<void()> task) { tasks_.post(std::move(task)); }

  // On the worker thread (via post):
  // Switches to `next`. `new_listeners` holds this worker's listening fd for every outbound
  // listener of `next` that is new (by name and address); the others keep their sockets.
  void applyConfig(ConfigSnapshot next, std::map<std::string, int> new_listeners);
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
  // Counters of a capture listener: where captured connections went.
  struct CaptureStats {
    Stat* to_service = nullptr;       // original destination was a service address
    Stat* to_endpoint = nullptr;      // ... an endpoint (pod IP:port) of a cluster
    Stat* passthrough = nullptr;      // ... unknown: plain TCP to it
    Stat* rejected = nullptr;         // ... unknown, and unknown_destination: reject
    Stat* no_original_dst = nullptr;  // no source knew it (not captured by us): reset
  };
  struct Listener {
    ~Listener();
    Worker* worker = nullptr;
    const ListenerConfig* config = nullptr;  // in snapshot_
    int fd = -1;
    InetAddress address;  // as bound (getsockname of the listening socket)
    event* ev = nullptr;
    ConnectionStats stats;
    Stat* no_cluster = nullptr;
    CaptureStats capture;  // capture listeners only
  };
  struct Cluster {
    const ClusterConfig* config = nullptr;  // in snapshot_
    // Shared with the open connections' finish callbacks, which may outlive this cluster.
    std::shared_ptr<LoadBalancer> lb;
    ConnectionStats stats;
  };
  struct Inbound {
    const ListenerConfig* config = nullptr;
    ConnectionStats stats;
  };

  static void onAccept(int fd, short what, void* arg);
  void acceptFrom(Listener& listener);
  void routeOutbound(int fd, Listener& listener);
  void routeCaptured(int fd, const InetAddress& peer, Listener& listener);
  // Sends an accepted connection to endpoint `ep` of `cluster` (local TCP or a tunnel stream).
  void forward(int fd, Listener& listener, Cluster& cluster, int ep);
  void applyClusters(const ProxyConfig& next);
  void applyListeners(const ProxyConfig& next, std::map<std::string, int>& new_listeners);
  void closeListener(Listener& listener);
  // Session worker only: open a stream for an accepted app connection.
  void openTunnel(int fd, const EndpointConfig& endpoint, std::vector<ConnectionStats> stats,
                  std::function<void()> on_finish, std::chrono::milliseconds timeout);
  transport::StreamCallbacks* onInboundStream(transport::Stream& stream);
  // Served by this pod without a tunnel: standalone, an endpoint on our node; mesh mode, one of
  // our own pod IPs (another pod on our node is a session away, over shm).
  bool isLocal(const EndpointConfig& endpoint) const;
  // The session that reaches `endpoint`: its node, or in mesh mode its sidecar ("ip@node").
  std::string sessionKey(const EndpointConfig& endpoint) const;
  void adopt(std::unique_ptr<ProxyConnection> connection);
  void run();

  unsigned index_;
  const ConfigSnapshot boot_;  // node and transport settings, which never change while running
  const ProxyConfig& config_;  // *boot_
  ConfigSnapshot snapshot_;    // current; holds the configs listeners_ and clusters_ point at
  StatsStore& stats_;
  event_base* base_;
  TaskQueue tasks_;
  transport::AdaptivePoller poller_;
  std::thread thread_;
  Worker* session_worker_ = nullptr;
  std::unique_ptr<transport::SessionManager> sessions_;
  OriginalDestination* original_destination_ = nullptr;
  CaptureRouter capture_router_{{}};  // from snapshot_'s clusters

  // Outbound and capture listeners, by socket key (listenerSockets() in config_update.h).
  std::map<std::string, std::unique_ptr<Listener>, std::less<>> listeners_;
  std::unordered_map<std::string, Cluster> clusters_;
  std::map<uint16_t, Inbound> inbound_by_port_;
  std::unordered_map<ProxyConnection*, std::unique_ptr<ProxyConnection>> live_;
  std::vector<std::unique_ptr<ProxyConnection>> finished_;
  std::atomic<size_t> active_{0};
  bool draining_ = false;
};

}  // namespace rdmesh::proxy
