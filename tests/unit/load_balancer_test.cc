#include "load_balancer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace rdmesh::proxy {
namespace {

std::vector<int> countPicks(LoadBalancer& lb, size_t endpoints, int picks, int exclude = -1) {
  std::vector<int> counts(endpoints, 0);
  for (int i = 0; i < picks; ++i) {
    int chosen = lb.pick(exclude);
    EXPECT_GE(chosen, 0);
    EXPECT_LT(chosen, static_cast<int>(endpoints));
    if (chosen >= 0 && chosen < static_cast<int>(endpoints)) ++counts[chosen];
  }
  return counts;
}

class BothPolicies : public ::testing::TestWithParam<LbPolicy> {};

INSTANTIATE_TEST_SUITE_P(LoadBalancer, BothPolicies,
                         ::testing::Values(LbPolicy::kRoundRobin, LbPolicy::kLeastRequest),
                         [](const auto& info) {
                           return info.param == LbPolicy::kRoundRobin ? "RoundRobin"
                                                                      : "LeastRequest";
                         });

TEST_P(BothPolicies, ZeroEndpointsPicksNothing) {
  auto lb = makeLoadBalancer(GetParam(), 0, 7);
  EXPECT_EQ(lb->pick(), -1);
  EXPECT_EQ(lb->pick(0), -1);
  lb->onStart(0);  // out of range: ignored, not a crash
  lb->onFinish(0);
}

TEST_P(BothPolicies, SingleEndpointIsAlwaysPickedEvenWhenExcluded) {
  auto lb = makeLoadBalancer(GetParam(), 1, 7);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(lb->pick(), 0);
    // Nothing else to fall back to: a retry still goes to the only endpoint.
    EXPECT_EQ(lb->pick(0), 0);
    lb->onStart(0);
  }
}

TEST_P(BothPolicies, ExcludedEndpointIsNeverPicked) {
  for (size_t endpoints : {2u, 3u, 5u}) {
    for (int exclude = 0; exclude < static_cast<int>(endpoints); ++exclude) {
      auto lb = makeLoadBalancer(GetParam(), endpoints, 11);
      std::vector<int> counts = countPicks(*lb, endpoints, 300, exclude);
      EXPECT_EQ(counts[exclude], 0) << "endpoints=" << endpoints << " exclude=" << exclude;
    }
  }
}

TEST_P(BothPolicies, OutOfRangeExcludeIsIgnored) {
  auto lb = makeLoadBalancer(GetParam(), 3, 1);
  for (int exclude : {-1, 3, 100, -5}) {
    int chosen = lb->pick(exclude);
    EXPECT_GE(chosen, 0);
    EXPECT_LT(chosen, 3);
  }
}

TEST(RoundRobin, SpreadsEvenly) {
  for (unsigned seed : {0u, 1u, 12345u}) {
    auto lb = makeLoadBalancer(LbPolicy::kRoundRobin, 4, seed);
    std::vector<int> counts = countPicks(*lb, 4, 400);
    for (int c : counts) EXPECT_EQ(c, 100) << "seed=" << seed;
  }
}

TEST(RoundRobin, CyclesInOrder) {
  auto lb = makeLoadBalancer(LbPolicy::kRoundRobin, 3, 0);
  int first = lb->pick();
  for (int i = 1; i < 9; ++i) EXPECT_EQ(lb->pick(), (first + i) % 3);
}

TEST(RoundRobin, ExcludeSkipsToTheNextEndpoint) {
  auto lb = makeLoadBalancer(LbPolicy::kRoundRobin, 3, 0);
  int first = lb->pick();
  int next = (first + 1) % 3;
  // The next in turn is excluded: the one after it is chosen instead.
  EXPECT_EQ(lb->pick(next), (first + 2) % 3);
}

TEST(RoundRobin, SpreadsEvenlyAmongTheRestWhenExcluding) {
  auto lb = makeLoadBalancer(LbPolicy::kRoundRobin, 3, 0);
  std::vector<int> counts = countPicks(*lb, 3, 600, /*exclude=*/1);
  EXPECT_EQ(counts[1], 0);
  EXPECT_EQ(counts[0], 300);
  EXPECT_EQ(counts[2], 300);
}

TEST(RoundRobin, WorkersStartAtDifferentEndpoints) {
  // Different seeds should not all begin at endpoint 0 (otherwise N workers stampede it).
  std::vector<int> starts(8, 0);
  for (unsigned seed = 0; seed < 8; ++seed) {
    ++starts[makeLoadBalancer(LbPolicy::kRoundRobin, 8, seed)->pick()];
  }
  for (int s : starts) EXPECT_EQ(s, 1);
}

TEST(LeastRequest, TwoEndpointsPickTheLessLoadedDeterministically) {
  auto lb = makeLoadBalancer(LbPolicy::kLeastRequest, 2, 99);
  lb->onStart(0);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(lb->pick(), 1);
  lb->onStart(1);
  lb->onStart(1);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(lb->pick(), 0);
}

TEST(LeastRequest, FinishWithoutStartDoesNotUnderflow) {
  auto lb = makeLoadBalancer(LbPolicy::kLeastRequest, 2, 3);
  lb->onFinish(0);  // if this wrapped below zero, endpoint 0 would look hugely busy
  lb->onStart(1);
  EXPECT_EQ(lb->pick(), 0);
}

TEST(LeastRequest, TiesAlternateSoLoadSpreads) {
  auto lb = makeLoadBalancer(LbPolicy::kLeastRequest, 2, 5);
  // Picks without onStart keep both endpoints equal: they must take turns, not always the first.
  int previous = lb->pick();
  for (int i = 0; i < 20; ++i) {
    int chosen = lb->pick();
    EXPECT_NE(chosen, previous);
    previous = chosen;
  }
}

TEST(LeastRequest, ConnectionsThatStayOpenAreSpreadEvenly) {
  auto lb = makeLoadBalancer(LbPolicy::kLeastRequest, 2, 5);
  std::vector<int> counts(2, 0);
  for (int i = 0; i < 100; ++i) {
    int chosen = lb->pick();
    lb->onStart(chosen);
    ++counts[chosen];
  }
  // Deterministic with two endpoints: each pick goes to the less loaded, so they stay level.
  EXPECT_EQ(counts[0], 50);
  EXPECT_EQ(counts[1], 50);
}

TEST(LeastRequest, BusyEndpointIsAvoided) {
  auto lb = makeLoadBalancer(LbPolicy::kLeastRequest, 3, 42);
  for (int i = 0; i < 10; ++i) lb->onStart(2);
  std::vector<int> counts(3, 0);
  for (int i = 0; i < 1000; ++i) {
    int chosen = lb->pick();
    ASSERT_GE(chosen, 0);
    ++counts[chosen];
    // Each connection is short: it finishes before the next arrives, so endpoints 0 and 1 never
    // reach 10 active and the two sampled endpoints always include one of them.
    lb->onStart(chosen);
    lb->onFinish(chosen);
  }
  EXPECT_EQ(counts[2], 0);
  // Both idle endpoints share the work (random sampling: each is sampled against endpoint 2 in
  // about a third of picks; 100 is far below any plausible outcome).
  EXPECT_GT(counts[0], 100);
  EXPECT_GT(counts[1], 100);
}

TEST(LeastRequest, DrainedEndpointIsPreferredAgain) {
  auto lb = makeLoadBalancer(LbPolicy::kLeastRequest, 3, 42);
  for (int i = 0; i < 20; ++i) lb->onStart(2);
  // Keep every pick open: endpoints 0 and 1 fill up but stay below 20 active, and the sampled
  // pair always includes one of them, so endpoint 2 gets nothing.
  for (int i = 0; i < 18; ++i) {
    int chosen = lb->pick();
    EXPECT_NE(chosen, 2) << "pick " << i;
    lb->onStart(chosen);
  }
  // Draining endpoint 2 makes it the preferred one again whenever it is sampled.
  for (int i = 0; i < 20; ++i) lb->onFinish(2);
  std::vector<int> counts(3, 0);
  for (int i = 0; i < 300; ++i) ++counts[lb->pick()];
  EXPECT_GT(counts[2], 0);
}

TEST(LeastRequest, ExcludeWithThreeEndpointsComparesTheOtherTwo) {
  auto lb = makeLoadBalancer(LbPolicy::kLeastRequest, 3, 8);
  lb->onStart(0);
  // Endpoint 1 excluded: left with 0 (busy) and 2 (idle), so 2 every time.
  for (int i = 0; i < 50; ++i) EXPECT_EQ(lb->pick(1), 2);
}

TEST(LeastRequest, SameSeedSamePicks) {
  auto a = makeLoadBalancer(LbPolicy::kLeastRequest, 7, 1234);
  auto b = makeLoadBalancer(LbPolicy::kLeastRequest, 7, 1234);
  for (int i = 0; i < 100; ++i) {
    int chosen = a->pick();
    EXPECT_EQ(b->pick(), chosen);
    a->onStart(chosen);
    b->onStart(chosen);
  }
}

TEST(LeastRequest, ManyEndpointsAllGetTraffic) {
  auto lb = makeLoadBalancer(LbPolicy::kLeastRequest, 10, 77);
  std::vector<int> counts(10, 0);
  for (int i = 0; i < 1000; ++i) {
    int chosen = lb->pick();
    ++counts[chosen];
    lb->onStart(chosen);
  }
  // All connections stay open: P2C keeps the spread tight (max - min is small, not just > 0).
  int low = *std::min_element(counts.begin(), counts.end());
  int high = *std::max_element(counts.begin(), counts.end());
  EXPECT_GT(low, 0);
  EXPECT_LE(high - low, 10);
}

}  // namespace
}  // namespace rdmesh::proxy
