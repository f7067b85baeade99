// The sidecar process: main thread (admin endpoint, signals, drain) plus the workers.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "admin_server.h"
#include "config.h"
#include "original_destination.h"
#include "rdmesh/common/stats.h"
#include "worker.h"

struct event;
struct event_base;

namespace rdmesh::proxy {

class Server {
 public:
  explicit Server(ProxyConfig config);
  ~Server();

  // Binds everything and starts the workers; an error means nothing is left running.
  Status start();
  // Runs until drained (SIGTERM, SIGINT or /quitquitquit) and returns the exit code.
  int run();

  StatsStore& stats() { return stats_; }

 private:
  Status setUpCapture();
  void beginDrain(const char* why);
  void checkDrained();
  static void onSignal(int sig, short what, void* arg);
  static void onDrainTick(int fd, short what, void* arg);

  ProxyConfig config_;
  StatsStore stats_;
  event_base* base_;
  std::unique_ptr<AdminServer> admin_;
  // The capture listener's original-destination sources (SO_ORIGINAL_DST, then the LD_PRELOAD
  // registry); shared by every worker.
  ChainedOriginalDestination original_destination_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<event*> signal_events_;
  event* drain_timer_ = nullptr;
  bool started_ = false;
  bool draining_ = false;
  std::chrono::steady_clock::time_point drain_started_;
};

}  // namespace rdmesh::proxy
