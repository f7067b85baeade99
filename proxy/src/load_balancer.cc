#include "load_balancer.h"

#include <cstdint>
#include <vector>

namespace rdmesh::proxy {
namespace {

// xorshift64*: a few instructions per number, good enough to spread picks; not for secrets.
class FastRandom {
 public:
  explicit FastRandom(unsigned seed) {
    // splitmix64 finaliser, so neighbouring seeds (worker 0, 1, 2...) give unrelated streams
    // and seed 0 does not leave xorshift stuck at zero.
    uint64_t z = static_cast<uint64_t>(seed) + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    state_ = z != 0 ? z : 0x2545f4914f6cdd1dULL;
  }

  uint64_t next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545f4914f6cdd1dULL;
  }

  // Uniform in [0, bound) without a division (Lemire's multiply-shift; bias is negligible for
  // endpoint counts).
  uint32_t below(uint32_t bound) {
    return static_cast<uint32_t>(((next() >> 32) * static_cast<uint64_t>(bound)) >> 32);
  }

 private:
  uint64_t state_;
};

// `exclude` only counts when it names a real endpoint and another one exists.
int effectiveExclude(int exclude, size_t endpoint_count) {
  if (endpoint_count <= 1 || exclude < 0 || static_cast<size_t>(exclude) >= endpoint_count) {
    return -1;
  }
  return exclude;
}

class RoundRobinLoadBalancer final : public LoadBalancer {
 public:
  RoundRobinLoadBalancer(size_t endpoint_count, unsigned seed)
      : endpoint_count_(endpoint_count),
        // Start each worker at a different place (as Envoy does) so that N workers do not all
        // send their first connection to endpoint 0.
        next_(endpoint_count == 0 ? 0 : seed % endpoint_count) {}

  int pick(int exclude) override {
    if (endpoint_count_ == 0) return -1;
    exclude = effectiveExclude(exclude, endpoint_count_);
    size_t chosen = advance();
    if (static_cast<int>(chosen) == exclude) chosen = advance();
    return static_cast<int>(chosen);
  }

  void onStart(int) override {}
  void onFinish(int) override {}

 private:
  size_t advance() {
    size_t current = next_;
    next_ = current + 1 == endpoint_count_ ? 0 : current + 1;
    return current;
  }

  size_t endpoint_count_;
  size_t next_;
};

// Envoy's least_request with equal weights: sample two distinct endpoints at random and take the
// one with fewer active requests ("power of two choices"). Cheap, no global scan, and it avoids
// the herd that "always the global minimum" causes when many workers see the same counts.
class LeastRequestLoadBalancer final : public LoadBalancer {
 public:
  LeastRequestLoadBalancer(size_t endpoint_count, unsigned seed)
      : active_(endpoint_count, 0), random_(seed), tie_turn_(seed & 1) {}

  int pick(int exclude) override {
    const size_t count = active_.size();
    if (count == 0) return -1;
    if (count == 1) return 0;
    exclude = effectiveExclude(exclude, count);
    const uint32_t candidates = static_cast<uint32_t>(count) - (exclude >= 0 ? 1 : 0);

    if (candidates == 1) return toEndpoint(0, exclude);
    if (candidates == 2) {
      // Only two choices: sampling adds nothing, so compare both and be deterministic.
      return lessLoaded(toEndpoint(0, exclude), toEndpoint(1, exclude));
    }
    uint32_t first = random_.below(candidates);
    uint32_t second = random_.below(candidates - 1);
    if (second >= first) ++second;  // distinct from `first`, still uniform
    return lessLoaded(toEndpoint(first, exclude), toEndpoint(second, exclude));
  }

  void onStart(int endpoint) override {
    if (valid(endpoint)) ++active_[endpoint];
  }

  void onFinish(int endpoint) override {
    if (valid(endpoint) && active_[endpoint] > 0) --active_[endpoint];
  }

 private:
  bool valid(int endpoint) const {
    return endpoint >= 0 && static_cast<size_t>(endpoint) < active_.size();
  }

  // The i-th endpoint other than `exclude`.
  static int toEndpoint(uint32_t index, int exclude) {
    int endpoint = static_cast<int>(index);
    if (exclude >= 0 && endpoint >= exclude) ++endpoint;
    return endpoint;
  }

  // Ties alternate, so equally idle endpoints share the load instead of the first one taking it.
  int lessLoaded(int a, int b) {
    if (active_[a] != active_[b]) return active_[a] < active_[b] ? a : b;
    tie_turn_ ^= 1;
    return tie_turn_ ? a : b;
  }

  std::vector<uint32_t> active_;
  FastRandom random_;
  unsigned tie_turn_;
};

}  // namespace

std::unique_ptr<LoadBalancer> makeLoadBalancer(LbPolicy policy, size_t endpoint_count,
                                               unsigned seed) {
  switch (policy) {
    case LbPolicy::kLeastRequest:
      return std::make_unique<LeastRequestLoadBalancer>(endpoint_count, seed);
    case LbPolicy::kRoundRobin:
      break;
  }
  return std::make_unique<RoundRobinLoadBalancer>(endpoint_count, seed);
}

}  // namespace rdmesh::proxy
