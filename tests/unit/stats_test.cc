#include "rdmesh/common/stats.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace rdmesh {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(StatsStore, NamesAreRdmeshScopeName) {
  StatsStore store;
  Stat& cx = store.counter("cluster.backend", "upstream_cx_total");
  Stat& active = store.gauge("listener.outbound", "downstream_cx_active");
  EXPECT_EQ(cx.name(), "rdmesh.cluster.backend.upstream_cx_total");
  EXPECT_EQ(cx.kind(), StatKind::kCounter);
  EXPECT_EQ(active.name(), "rdmesh.listener.outbound.downstream_cx_active");
  EXPECT_EQ(active.kind(), StatKind::kGauge);
}

TEST(StatsStore, SameNameReturnsTheSameStat) {
  StatsStore store;
  Stat& first = store.counter("session.node-b", "streams_opened");
  first.inc(3);
  Stat& second = store.counter("session.node-b", "streams_opened");
  EXPECT_EQ(&first, &second);
  EXPECT_EQ(second.value(), 3u);
  // Different scope, different stat.
  EXPECT_NE(&first, &store.counter("session.node-c", "streams_opened"));
}

TEST(StatsStore, StatsStayAtTheSameAddressAsMoreAreAdded) {
  StatsStore store;
  Stat& first = store.counter("a", "first");
  for (int i = 0; i < 1000; ++i) store.counter("b", "n" + std::to_string(i));
  first.inc();
  EXPECT_EQ(store.counter("a", "first").value(), 1u);
}

TEST(Stat, IncDecSet) {
  StatsStore store;
  Stat& gauge = store.gauge("g", "v");
  gauge.inc(5);
  gauge.dec(2);
  EXPECT_EQ(gauge.value(), 3u);
  gauge.set(42);
  EXPECT_EQ(gauge.value(), 42u);
}

TEST(StatsStore, ConcurrentIncrementsSumExactly) {
  StatsStore store;
  constexpr int kThreads = 4;
  constexpr int kIncrements = 100000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&store] {
      // Each thread looks the stat up itself, as workers do, racing on creation too.
      Stat& counter = store.counter("worker", "requests");
      Stat& gauge = store.gauge("worker", "active");
      for (int i = 0; i < kIncrements; ++i) {
        counter.inc();
        gauge.inc();
        gauge.dec();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(store.counter("worker", "requests").value(),
            static_cast<uint64_t>(kThreads) * kIncrements);
  EXPECT_EQ(store.gauge("worker", "active").value(), 0u);
}

TEST(StatsStore, SnapshotIsSortedByName) {
  StatsStore store;
  store.counter("z", "last").inc();
  store.counter("a", "first").inc(2);
  store.gauge("m", "middle").set(7);
  store.setText("fabric", "kind", "tcp");
  StatsStore::Snapshot snap = store.snapshot();
  ASSERT_EQ(snap.numbers.size(), 3u);
  EXPECT_EQ(snap.numbers[0].name, "rdmesh.a.first");
  EXPECT_EQ(snap.numbers[0].value, 2u);
  EXPECT_EQ(snap.numbers[1].name, "rdmesh.m.middle");
  EXPECT_EQ(snap.numbers[1].kind, StatKind::kGauge);
  EXPECT_EQ(snap.numbers[2].name, "rdmesh.z.last");
  ASSERT_EQ(snap.texts.size(), 1u);
  EXPECT_EQ(snap.texts.at("rdmesh.fabric.kind"), "tcp");
}

TEST(StatsStore, RenderTextIsSortedNameValueLines) {
  StatsStore store;
  store.counter("session.node-b", "bytes_sent").inc(1234);
  store.gauge("listener.outbound", "downstream_cx_active").set(2);
  store.counter("cluster.backend", "upstream_cx_total").inc(3);
  store.setText("session.node-b", "fabric", "tcp");
  EXPECT_EQ(store.renderText(),
            "rdmesh.cluster.backend.upstream_cx_total: 3\n"
            "rdmesh.listener.outbound.downstream_cx_active: 2\n"
            "rdmesh.session.node-b.bytes_sent: 1234\n"
            "rdmesh.session.node-b.fabric: \"tcp\"\n");
}

TEST(StatsStore, RenderTextFilterKeepsMatchingNamesOnly) {
  StatsStore store;
  store.counter("cluster.backend", "upstream_cx_total").inc();
  store.counter("cluster.cache", "upstream_cx_total").inc();
  store.counter("listener.outbound", "downstream_cx_total").inc();
  store.setText("session.node-b", "fabric", "tcp");

  std::string upstream = store.renderText("upstream");
  EXPECT_EQ(lines(upstream).size(), 2u);
  EXPECT_THAT(upstream, HasSubstr("rdmesh.cluster.backend.upstream_cx_total: 1\n"));
  EXPECT_THAT(upstream, HasSubstr("rdmesh.cluster.cache.upstream_cx_total: 1\n"));

  EXPECT_EQ(store.renderText("fabric"), "rdmesh.session.node-b.fabric: \"tcp\"\n");
  EXPECT_EQ(store.renderText("no-such-stat"), "");
  // The filter matches names, not values.
  EXPECT_EQ(store.renderText("tcp"), "");
}

TEST(StatsStore, RenderTextShowsNegativeGaugeAndLargeCounter) {
  StatsStore store;
  store.gauge("g", "below_zero").dec();
  store.counter("c", "huge").set(UINT64_MAX);
  EXPECT_EQ(store.renderText(),
            "rdmesh.c.huge: 18446744073709551615\n"
            "rdmesh.g.below_zero: -1\n");
}

TEST(StatsStore, SetTextReplacesAndEscapes) {
  StatsStore store;
  store.setText("node", "fabric", "verbs");
  store.setText("node", "fabric", "tcp");
  EXPECT_EQ(store.renderText(), "rdmesh.node.fabric: \"tcp\"\n");
  store.setText("node", "fabric", "say \"hi\"\nbye");
  // A text value can never break the one-line-per-stat format.
  EXPECT_EQ(store.renderText(), "rdmesh.node.fabric: \"say \\\"hi\\\"\\nbye\"\n");
}

TEST(StatsStore, RenderPrometheusReplacesDotsAndDeclaresTypes) {
  StatsStore store;
  store.counter("cluster.backend", "upstream_cx_total").inc(3);
  store.gauge("session.node-b", "streams_active").set(5);
  std::string out = store.renderPrometheus();
  EXPECT_EQ(out,
            "# TYPE rdmesh_cluster_backend_upstream_cx_total counter\n"
            "rdmesh_cluster_backend_upstream_cx_total 3\n"
            "# TYPE rdmesh_session_node_b_streams_active gauge\n"
            "rdmesh_session_node_b_streams_active 5\n");
  EXPECT_THAT(out, Not(HasSubstr(".")));
}

TEST(StatsStore, RenderPrometheusTextValuesAreLabelledGauges) {
  StatsStore store;
  store.setText("session.node-b", "fabric", "t\"c\\p");
  EXPECT_EQ(store.renderPrometheus(),
            "# TYPE rdmesh_session_node_b_fabric gauge\n"
            "rdmesh_session_node_b_fabric{value=\"t\\\"c\\\\p\"} 1\n");
}

TEST(StatsStore, RenderPrometheusNeverDeclaresAMetricTwice) {
  StatsStore store;
  // Distinct stat names that collapse to one Prometheus name.
  store.counter("a", "b-c").inc(1);
  store.counter("a", "b_c").inc(2);
  store.setText("a", "b.c", "x");
  std::string out = store.renderPrometheus();
  int type_lines = 0;
  for (const std::string& line : lines(out)) {
    if (line.rfind("# TYPE rdmesh_a_b_c ", 0) == 0) ++type_lines;
  }
  EXPECT_EQ(type_lines, 1) << out;
}

TEST(StatsStore, EmptyStoreRendersNothing) {
  StatsStore store;
  EXPECT_EQ(store.renderText(), "");
  EXPECT_EQ(store.renderPrometheus(), "");
}

}  // namespace
}  // namespace rdmesh
