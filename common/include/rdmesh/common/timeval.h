// std::chrono durations as the timeval libevent's timers take.
#pragma once

#include <sys/time.h>

#include <chrono>

namespace rdmesh {

inline timeval toTimeval(std::chrono::microseconds d) {
  return {static_cast<time_t>(d.count() / 1000000), static_cast<suseconds_t>(d.count() % 1000000)};
}

}  // namespace rdmesh
