// A scriptable xDS server for client tests: h2c with prior knowledge on 127.0.0.1, one stream
// per connection, records every request line and sends whatever lines the test pushes
// (including malformed ones). One thread; connections handled one at a time.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "rdmesh/xds/messages.h"

namespace rdmesh::xds::testing {

class FakeXdsServer {
 public:
  FakeXdsServer();  // listens on an ephemeral port
  ~FakeXdsServer();
  FakeXdsServer(const FakeXdsServer&) = delete;
  FakeXdsServer& operator=(const FakeXdsServer&) = delete;

  uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // The next request line received (in order, across connections), parsed.
  std::optional<DiscoveryRequest> nextRequest(std::chrono::milliseconds timeout);
  // Sends a line on the current stream (queued until a stream is open).
  void push(const std::string& line);
  void push(const DiscoveryResponse& response);
  // Closes the current connection (the client sees the server go away).
  void dropConnection();
  size_t pendingRequests() {
    std::lock_guard<std::mutex> lock(mu_);
    return received_.size();
  }
  int streamsOpened() const { return streams_.load(); }
  std::string lastPath();

 private:
  void loop();
  void wake();

  int listen_fd_ = -1;
  int wake_fds_[2] = {-1, -1};
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> drop_{false};
  std::atomic<int> streams_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> received_;  // request lines
  std::string outbox_;                // bytes to send on the current stream
  std::string last_path_;
  std::thread thread_;
};

}  // namespace rdmesh::xds::testing
