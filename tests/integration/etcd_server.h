// Test helpers for the control plane's high-availability tests: a real etcd server started by
// the test (temp data dir, 127.0.0.1 ports, readiness by polling /health, removed afterwards)
// and a TCP relay the test can cut, to drop a client's connections while etcd keeps running.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "harness.h"

namespace rdmesh::it {

// A port on 127.0.0.1 that was free a moment ago (bound to 0, then released).
uint16_t freeLocalPort();

class EtcdServer {
 public:
  // Empty when etcd can run here; otherwise why not (for GTEST_SKIP).
  static std::string unavailableReason();

  // Starts etcd and waits until /health says true; throws if it does not come up.
  EtcdServer();
  ~EtcdServer();
  EtcdServer(const EtcdServer&) = delete;
  EtcdServer& operator=(const EtcdServer&) = delete;

  std::string clientUrl() const { return "http://127.0.0.1:" + std::to_string(client_port_); }
  uint16_t clientPort() const { return client_port_; }
  const std::string& dataDir() const { return data_dir_; }

  void kill();     // SIGKILL: connections drop, data stays
  void restart();  // starts again on the same ports and data, waits for health
  bool running();
  // etcdctl against this server (ETCDCTL_API=3); the command's output, throws on failure.
  std::string ctl(const std::vector<std::string>& args);
  // Compacts the history up to the current revision; returns that revision.
  int64_t compactAll();

 private:
  void start();

  TempDir dir_;
  std::string data_dir_;
  uint16_t client_port_ = 0;
  uint16_t peer_port_ = 0;
  int starts_ = 0;
  std::unique_ptr<Process> proc_;
};

// Relays 127.0.0.1:<port()> to a target TCP address, one thread per connection. cut() closes
// every relayed connection and refuses new ones until restore().
class TcpRelay {
 public:
  TcpRelay(std::string target_ip, uint16_t target_port);
  ~TcpRelay();
  uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void cut();
  void restore();
  uint64_t accepted() const { return server_->accepted(); }

 private:
  void relay(int client_fd);

  std::string target_ip_;
  uint16_t target_port_;
  uint16_t port_ = 0;
  std::atomic<bool> refusing_{false};
  std::mutex mu_;
  std::set<int> open_fds_;
  std::unique_ptr<ThreadedServer> server_;
};

}  // namespace rdmesh::it
