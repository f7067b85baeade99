#include "rdmesh/transport/adaptive_poller.h"

#include <event2/event.h>

namespace rdmesh::transport {

namespace {
constexpr std::chrono::microseconds kMinSpin{2};
}

AdaptivePoller::AdaptivePoller(event_base* base, std::chrono::microseconds max_spin)
    : base_(base), max_spin_(max_spin), spin_(max_spin) {}

bool AdaptivePoller::pollAll() {
  bool work = false;
  for (Pollable* s : sources_) work |= s->poll();
  for (Pollable* s : sources_) s->flush();
  return work;
}

void AdaptivePoller::run() {
  using Clock = std::chrono::steady_clock;
  Clock::time_point spin_until = Clock::now();
  bool hit_in_window = false;
  while (!stopped_) {
    bool can_spin = false;
    for (Pollable* s : sources_) can_spin |= s->spinWorthwhile();
    Clock::time_point now = Clock::now();
    bool spinning = can_spin && spin_.count() > 0 && now < spin_until;
    int flags = EVLOOP_ONCE;
    if (spinning) {
      flags |= EVLOOP_NONBLOCK;
    } else {
      if (can_spin) {
        // The window closed: adapt. Found work while spinning: spin longer next time.
        spin_ = hit_in_window ? std::min(spin_ * 2, max_spin_)
                              : std::max(spin_ / 2, std::min(kMinSpin, max_spin_));
        hit_in_window = false;
      }
      bool may_sleep = true;
      for (Pollable* s : sources_) may_sleep &= s->prepareToSleep();
      if (!may_sleep) flags |= EVLOOP_NONBLOCK;
    }
    event_base_loop(base_, flags);
    if (!spinning) {
      for (Pollable* s : sources_) s->markAwake();
    }
    bool work = pollAll();
    if (!spinning || work) {
      // Fresh activity (a wake-up, or completions found): poll for a while before sleeping.
      spin_until = Clock::now() + spin_;
      if (spinning && work) hit_in_window = true;
    }
  }
}

}  // namespace rdmesh::transport
