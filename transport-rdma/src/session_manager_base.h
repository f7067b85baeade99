// What every SessionManager shares: its sessions on one event loop (the Pollable side), and
// bootstrap work on short-lived threads whose results come back to the loop thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "rdmesh/common/blocking_jobs.h"
#include "rdmesh/transport/session_manager.h"
#include "session_impl.h"

namespace rdmesh::transport {

class SessionManagerBase : public SessionManager {
 public:
  size_t activeStreams() const override;
  // Pollable
  bool poll() override;
  void flush() override;
  bool spinWorthwhile() const override;
  bool prepareToSleep() override;
  void markAwake() override;

 protected:
  SessionManagerBase(event_base* base, StatsStore& stats, AcceptHandler on_accept,
                     SessionOptions session_options, std::chrono::milliseconds connect_timeout);
  // Derived destructors call joinBootstrapThreads() before their own members go: the threads
  // use them.
  ~SessionManagerBase() override;

  // Runs `work` on a bootstrap thread and `done` with its result on the loop thread.
  template <typename T>
  void runBootstrap(std::function<T()> work, std::function<void(T)> done) {
    jobs_->run<T>(std::move(work), std::move(done));
  }
  void joinBootstrapThreads();
  Deadline bootstrapDeadline() const { return std::chrono::steady_clock::now() + connect_timeout_; }

  // A new session to `name`, polled with the others from now on.
  std::unique_ptr<SessionImpl> makeSession(const std::string& name);

  event_base* base_;
  StatsStore& stats_;
  AcceptHandler on_accept_;
  SessionOptions session_options_;

 private:
  std::chrono::milliseconds connect_timeout_;
  std::vector<SessionImpl*> sessions_;
  std::unique_ptr<BlockingJobs> jobs_;
};

}  // namespace rdmesh::transport
