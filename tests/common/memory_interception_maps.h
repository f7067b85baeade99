// InterceptionMaps in memory, for unit tests and fuzzing of the node agent without eBPF. Can be
// told to fail its next addPod, to test all-or-nothing.
#pragma once

#include <map>
#include <set>
#include <utility>

#include "rdmesh/capture/interception_maps.h"

namespace rdmesh::testing {

class MemoryInterceptionMaps final : public capture::InterceptionMaps {
 public:
  Status addPod(const capture::PodCapture& pod) override {
    if (fail_next_add_) {
      fail_next_add_ = false;
      return unavailable("injected map failure");
    }
    pods.insert(pod.netns_cookie);
    for (uint16_t p : pod.excluded_ports) excluded.insert({pod.netns_cookie, p});
    return {};
  }
  Status removePod(const capture::PodCapture& pod) override {
    pods.erase(pod.netns_cookie);
    for (auto it = excluded.begin(); it != excluded.end();) {
      it = it->first == pod.netns_cookie ? excluded.erase(it) : std::next(it);
    }
    return {};
  }
  Status checkPod(const capture::PodCapture& pod) override {
    if (pods.count(pod.netns_cookie) == 0) return {StatusCode::kNotFound, "not in membership"};
    for (uint16_t p : pod.excluded_ports) {
      if (excluded.count({pod.netns_cookie, p}) == 0) {
        return {StatusCode::kNotFound, "excluded port missing"};
      }
    }
    return {};
  }
  size_t connectionRecords(uint64_t) override { return 0; }
  capture::CaptureCounters counters() override { return {}; }

  void failNextAdd() { fail_next_add_ = true; }

  std::set<uint64_t> pods;
  std::set<std::pair<uint64_t, uint16_t>> excluded;

 private:
  bool fail_next_add_ = false;
};

}  // namespace rdmesh::testing
