// Runs blocking work (a connection bootstrap bounded by its own deadline) on short-lived threads
// and hands each result back to the event loop's thread, so the loop never blocks on a slow peer.
#pragma once

#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <thread>

#include "rdmesh/common/task_queue.h"

struct event_base;

namespace rdmesh {

class BlockingJobs {
 public:
  explicit BlockingJobs(event_base* base) : tasks_(base) {}
  // Joins every thread: each job must be bounded (a deadline), so this waits at most that long.
  ~BlockingJobs();
  BlockingJobs(const BlockingJobs&) = delete;
  BlockingJobs& operator=(const BlockingJobs&) = delete;

  // `work` runs on a new thread; `done(result)` then runs on the loop thread (not at all if this
  // object is destroyed first).
  template <typename T>
  void run(std::function<T()> work, std::function<void(T)> done) {
    start([work = std::move(work), done = std::move(done)]() -> std::function<void()> {
      auto result = std::make_shared<T>(work());
      return [done, result]() { done(std::move(*result)); };
    });
  }

 private:
  struct Job {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> finished;
  };
  void start(std::function<std::function<void()>()> job);

  TaskQueue tasks_;
  std::list<Job> jobs_;
};

}  // namespace rdmesh
