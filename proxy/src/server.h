// The sidecar process: main thread (admin endpoint, signals, drain, config updates) plus the
// workers. The configuration is a snapshot that updateConfig() replaces live: it is checked and
// its new listening sockets are bound here, so a bad update is refused before any worker sees it.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "admin_server.h"
#include "config.h"
#include "config_update.h"
#include "original_destination.h"
#include "rdmesh/common/stats.h"
#include "worker.h"

struct event;
struct event_base;

namespace rdmesh::proxy {

class Server final : public ConfigUpdater {
 public:
  explicit Server(ProxyConfig config);
  ~Server() override;

  // Binds everything and starts the workers; an error means nothing is left running.
  Status start();
  // Runs until drained (SIGTERM, SIGINT or /quitquitquit) and returns the exit code.
  int run();

  StatsStore& stats() { return stats_; }
  event_base* base() { return base_; }

  // ConfigUpdater (main thread).
  const ProxyConfig& currentConfig() const override { return *current_; }
  Status updateConfig(ProxyConfig next) override;

  // Adds keys to /config_dump: `extra` returns a JSON object (e.g. the xDS state: versions, last
  // rejection).
  void setConfigDumpExtra(std::function<std::string()> extra) { dump_extra_ = std::move(extra); }

 private:
  // Checks `next`, binds its new listeners and hands it to the workers: posted, or applied at
  // once before the workers run (`immediate`).
  Status install(ProxyConfig next, bool immediate);
  std::string configDump() const;
  Status setUpCapture();
  void beginDrain(const char* why);
  void checkDrained();
  static void onSignal(int sig, short what, void* arg);
  static void onDrainTick(int fd, short what, void* arg);

  const ProxyConfig config_;  // as started: node, admin and transport settings
  ConfigSnapshot current_;
  std::function<std::string()> dump_extra_;
  StatsStore stats_;
  event_base* base_;
  std::unique_ptr<AdminServer> admin_;
  // The capture listener's original-destination sources (getsockname, SO_ORIGINAL_DST, the
  // LD_PRELOAD registry); shared by every worker.
  ChainedOriginalDestination original_destination_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<event*> signal_events_;
  event* drain_timer_ = nullptr;
  bool started_ = false;
  bool draining_ = false;
  std::chrono::steady_clock::time_point drain_started_;
};

}  // namespace rdmesh::proxy
