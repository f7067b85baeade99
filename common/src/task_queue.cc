#include "rdmesh/common/task_queue.h"

#include <event2/event.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace rdmesh {

TaskQueue::TaskQueue(event_base* base) : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  ev_ = event_new(base, fd_, EV_READ | EV_PERSIST, &TaskQueue::onWake, this);
  event_add(ev_, nullptr);
}

TaskQueue::~TaskQueue() {
  event_free(ev_);
  ::close(fd_);
}

void TaskQueue::post(std::function<void()> task) {
  bool was_empty;
  {
    std::lock_guard lock(mu_);
    was_empty = tasks_.empty();
    tasks_.push_back(std::move(task));
  }
  if (was_empty) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(fd_, &one, sizeof(one));
  }
}

void TaskQueue::onWake(int fd, short /*what*/, void* arg) {
  uint64_t count;
  [[maybe_unused]] ssize_t n = ::read(fd, &count, sizeof(count));
  static_cast<TaskQueue*>(arg)->runAll();
}

void TaskQueue::runAll() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard lock(mu_);
    batch.swap(tasks_);
  }
  for (auto& task : batch) task();
}

}  // namespace rdmesh
