// Runs closures on an event loop's thread, posted from any thread (eventfd-backed).
#pragma once

#include <functional>
#include <mutex>
#include <vector>

struct event;
struct event_base;

namespace rdmesh {

class TaskQueue {
 public:
  explicit TaskQueue(event_base* base);
  ~TaskQueue();
  TaskQueue(const TaskQueue&) = delete;
  TaskQueue& operator=(const TaskQueue&) = delete;

  // Thread-safe. The closure runs on the loop thread, in posting order.
  void post(std::function<void()> task);

 private:
  static void onWake(int fd, short what, void* arg);
  void runAll();

  int fd_ = -1;
  event* ev_ = nullptr;
  std::mutex mu_;
  std::vector<std::function<void()>> tasks_;
};

}  // namespace rdmesh
