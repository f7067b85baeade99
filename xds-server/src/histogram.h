// A Prometheus histogram of durations in seconds (fixed buckets), owned by the loop thread.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace rdmesh::xds_server {

class LatencyHistogram {
 public:
  static constexpr std::array<double, 12> kBucketBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                           0.1,   0.25,   0.5,   1.0,  2.5,   5.0};

  void observe(double seconds);
  uint64_t count() const { return count_; }
  // "# TYPE <name> histogram" and the _bucket/_sum/_count lines.
  std::string renderPrometheus(std::string_view name) const;

 private:
  std::array<uint64_t, kBucketBounds.size()> buckets_{};  // non-cumulative
  uint64_t count_ = 0;
  double sum_ = 0;
};

}  // namespace rdmesh::xds_server
