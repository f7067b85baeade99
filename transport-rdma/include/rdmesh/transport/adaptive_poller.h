// Drives one event loop the way a 2-core machine wants it: after work, poll the shared-memory
// completion queues for a bounded, adaptive time (a spin costs ~0.5 us, a wake-up ~20 us); then
// announce sleep to the peers and block in the event loop until a socket or doorbell fires.
#pragma once

#include <atomic>
#include <chrono>
#include <vector>

struct event_base;

namespace rdmesh::transport {

class Pollable {
 public:
  virtual ~Pollable() = default;
  virtual bool poll() = 0;                  // true if it found work
  virtual void flush() = 0;                 // once per loop iteration
  virtual bool spinWorthwhile() const = 0;  // polling can find work without a wake-up
  virtual bool prepareToSleep() = 0;        // false: work arrived, do not block
  virtual void markAwake() = 0;             // back from the event loop
};

class AdaptivePoller {
 public:
  AdaptivePoller(event_base* base, std::chrono::microseconds max_spin);
  void add(Pollable* source) { sources_.push_back(source); }
  // Runs until stop() (from the loop thread, e.g. in a TaskQueue task).
  void run();
  void stop() { stopped_ = true; }

 private:
  bool pollAll();
  event_base* base_;
  std::chrono::microseconds max_spin_;
  std::chrono::microseconds spin_;
  std::vector<Pollable*> sources_;
  bool stopped_ = false;
};

}  // namespace rdmesh::transport
