// A libevent loop driven by the test thread: runUntil() turns the loop until a condition holds
// (checked at least every 10 ms) or the timeout passes. No sleeps; the condition is the check.
#pragma once

#include <event2/event.h>

#include <chrono>
#include <csignal>
#include <functional>

namespace rdmesh::it {

class TestEventLoop {
 public:
  TestEventLoop() : base_(event_base_new()) {
    signal(SIGPIPE, SIG_IGN);  // as rdmesh-xds does: peers that vanish are errors, not signals
    tick_ = event_new(
        base_, -1, EV_PERSIST, [](evutil_socket_t, short, void*) {}, nullptr);
    timeval ten_ms{0, 10000};
    event_add(tick_, &ten_ms);
  }
  ~TestEventLoop() {
    event_free(tick_);
    event_base_free(base_);
  }
  TestEventLoop(const TestEventLoop&) = delete;
  TestEventLoop& operator=(const TestEventLoop&) = delete;

  event_base* base() const { return base_; }

  bool runUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      event_base_loop(base_, EVLOOP_ONCE);
    }
    return true;
  }
  // Turns the loop for `duration` (to show that something does NOT happen).
  void runFor(std::chrono::milliseconds duration) {
    runUntil([] { return false; }, duration);
  }

 private:
  event_base* base_;
  event* tick_;
};

}  // namespace rdmesh::it
