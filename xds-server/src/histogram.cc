#include "histogram.h"

#include "fmt/format.h"

namespace rdmesh::xds_server {

void LatencyHistogram::observe(double seconds) {
  for (size_t i = 0; i < kBucketBounds.size(); ++i) {
    if (seconds <= kBucketBounds[i]) {
      ++buckets_[i];
      break;
    }
  }
  ++count_;
  sum_ += seconds;
}

std::string LatencyHistogram::renderPrometheus(std::string_view name) const {
  std::string out = fmt::format("# TYPE {} histogram\n", name);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kBucketBounds.size(); ++i) {
    cumulative += buckets_[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, kBucketBounds[i], cumulative);
  }
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, count_, name,
                     sum_, name, count_);
  return out;
}

}  // namespace rdmesh::xds_server
