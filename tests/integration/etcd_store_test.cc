// The etcd-backed registry store against a real etcd started by the test: two replicas'
// stores converge through the watch, a dropped watch resumes from its revision, a compacted
// revision forces a re-read that reports only the difference, etcd restarts are survived, bad
// values are ignored with a count, and fenced writes need leadership.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>
#include <string>

#include "etcd_client.h"
#include "etcd_election.h"
#include "etcd_registry_store.h"
#include "etcd_server.h"
#include "test_event_loop.h"

namespace rdmesh::it {
namespace {

using xds::etcd::Collection;
using xds::etcd::EtcdClient;
using xds::etcd::EtcdLeaderElection;
using xds::etcd::EtcdRegistryStore;
using xds::etcd::StoredResource;
using Json = nlohmann::json;

Json workload(const std::string& ns, const std::string& pod, const std::string& ip) {
  return Json{{"name", ns + "/" + pod},
              {"namespace", ns},
              {"pod", pod},
              {"ip", {ip}},
              {"node", "node-a"},
              {"service_account", "default"},
              {"identity", "spiffe://cluster.local/ns/" + ns + "/sa/default"},
              {"ports", {8080}},
              {"labels", {{"app", pod}}}};
}

// One replica's view: a client and a store, with what its callbacks reported.
struct Replica {
  Replica(TestEventLoop& loop, const std::string& url, const std::string& prefix = "/rdmesh/v1") {
    auto created = EtcdClient::create(loop.base(), {url});
    if (!created) throw std::runtime_error(created.status().message());
    client = std::move(*created);
    EtcdRegistryStore::Callbacks callbacks;
    callbacks.on_upsert = [this](const StoredResource& r) {
      upserts[r.name]++;
      current[r.name] = r.resource;
    };
    callbacks.on_remove = [this](Collection, const std::string& name) {
      removes[name]++;
      current.erase(name);
    };
    xds::etcd::EtcdPrefixMirror::Options options;
    options.min_backoff = std::chrono::milliseconds(50);
    options.max_backoff = std::chrono::milliseconds(500);
    store = std::make_unique<EtcdRegistryStore>(loop.base(), *client, prefix, callbacks, options);
    store->start();
  }
  std::unique_ptr<EtcdClient> client;
  std::unique_ptr<EtcdRegistryStore> store;
  std::map<std::string, Json> current;  // name -> resource, as the callbacks built it
  std::map<std::string, int> upserts;
  std::map<std::string, int> removes;
};

class EtcdStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why = EtcdServer::unavailableReason();
    if (!why.empty()) GTEST_SKIP() << why;
    etcd_ = std::make_unique<EtcdServer>();
  }

  // Runs a write to completion; returns its result.
  Result<int64_t> put(Replica& r, const Json& resource,
                      const std::optional<EtcdRegistryStore::Fence>& fence = std::nullopt) {
    std::optional<Result<int64_t>> out;
    r.store->put(Collection::kWorkloads, resource["name"].get<std::string>(), resource,
                 xds::etcd::kOriginRegistration, fence, [&](Result<int64_t> v) { out = v; });
    EXPECT_TRUE(loop_.runUntil([&] { return out.has_value(); }, 15s));
    return out.value_or(Result<int64_t>(unavailable("no answer")));
  }
  Result<int64_t> remove(Replica& r, const std::string& name) {
    std::optional<Result<int64_t>> out;
    r.store->remove(Collection::kWorkloads, name, std::nullopt,
                    [&](Result<int64_t> v) { out = v; });
    EXPECT_TRUE(loop_.runUntil([&] { return out.has_value(); }, 15s));
    return out.value_or(Result<int64_t>(unavailable("no answer")));
  }
  bool waitSynced(Replica& r) {
    return loop_.runUntil([&] { return r.store->synced(); }, 15s);
  }

  TestEventLoop loop_;
  std::unique_ptr<EtcdServer> etcd_;
};

TEST_F(EtcdStoreTest, WriteOnOneReplicaReachesTheOtherWithinASecond) {
  Replica a(loop_, etcd_->clientUrl());
  Replica b(loop_, etcd_->clientUrl());
  ASSERT_TRUE(waitSynced(a));
  ASSERT_TRUE(waitSynced(b));
  EXPECT_TRUE(a.current.empty());

  auto t0 = Clock::now();
  ASSERT_TRUE(put(b, workload("default", "web-0", "10.0.0.5")).isOk());
  ASSERT_TRUE(loop_.runUntil([&] { return a.current.count("default/web-0") == 1; }, 1s))
      << "replica A did not see B's registration within a second";
  double seconds = secondsSince(t0);
  EXPECT_EQ(a.current["default/web-0"], workload("default", "web-0", "10.0.0.5"));
  // The writer learns of its own write from the watch too: one path, one order.
  ASSERT_TRUE(loop_.runUntil([&] { return b.current.count("default/web-0") == 1; }, 1s));
  std::cerr << "[etcd] registration on B visible on A after " << seconds * 1000 << " ms\n";

  ASSERT_TRUE(remove(b, "default/web-0").isOk());
  ASSERT_TRUE(loop_.runUntil([&] { return a.current.empty(); }, 1s));
  EXPECT_EQ(a.removes["default/web-0"], 1);

  // A third replica starting later reads what is there.
  ASSERT_TRUE(put(a, workload("default", "web-1", "10.0.0.6")).isOk());
  Replica c(loop_, etcd_->clientUrl());
  ASSERT_TRUE(waitSynced(c));
  EXPECT_EQ(c.current.size(), 1U);
  EXPECT_EQ(c.current.count("default/web-1"), 1U);
  EXPECT_EQ(c.store->list(xds::etcd::kOriginRegistration).size(), 1U);
  EXPECT_EQ(c.store->find(Collection::kWorkloads, "default/web-1")->origin, "registration");
}

TEST_F(EtcdStoreTest, DroppedWatchResumesFromItsRevisionWithoutReRead) {
  TcpRelay relay("127.0.0.1", etcd_->clientPort());
  Replica a(loop_, relay.url());
  Replica b(loop_, etcd_->clientUrl());
  ASSERT_TRUE(waitSynced(a));
  ASSERT_TRUE(put(b, workload("default", "web-0", "10.0.0.5")).isOk());
  ASSERT_TRUE(loop_.runUntil([&] { return a.current.size() == 1; }, 2s));

  relay.cut();
  ASSERT_TRUE(loop_.runUntil([&] { return !a.store->mirror().watching(); }, 5s))
      << "A's watch did not notice the dropped connection";
  // Changes while A is cut off.
  ASSERT_TRUE(put(b, workload("default", "web-1", "10.0.0.6")).isOk());
  ASSERT_TRUE(remove(b, "default/web-0").isOk());
  ASSERT_TRUE(put(b, workload("default", "web-1", "10.0.0.7")).isOk());
  relay.restore();

  ASSERT_TRUE(loop_.runUntil(
      [&] {
        return a.current.size() == 1 && a.current.count("default/web-1") == 1 &&
               a.current["default/web-1"]["ip"][0] == "10.0.0.7";
      },
      5s));
  EXPECT_EQ(a.removes["default/web-0"], 1);
  // Both web-1 versions were replayed in order.
  EXPECT_EQ(a.upserts["default/web-1"], 2);
  EXPECT_EQ(a.store->mirror().counters().reads, 1U) << "resumed by revision, no re-read";
  EXPECT_GE(a.store->mirror().counters().watch_restarts, 1U);
  EXPECT_EQ(a.store->revision(), b.store->revision());
}

TEST_F(EtcdStoreTest, CompactedRevisionForcesReReadThatReportsOnlyTheDifference) {
  TcpRelay relay("127.0.0.1", etcd_->clientPort());
  Replica a(loop_, relay.url());
  Replica b(loop_, etcd_->clientUrl());
  ASSERT_TRUE(waitSynced(a));
  ASSERT_TRUE(put(b, workload("default", "stays", "10.0.0.1")).isOk());
  ASSERT_TRUE(put(b, workload("default", "goes", "10.0.0.2")).isOk());
  ASSERT_TRUE(put(b, workload("default", "changes", "10.0.0.3")).isOk());
  ASSERT_TRUE(loop_.runUntil([&] { return a.current.size() == 3; }, 2s));

  relay.cut();
  ASSERT_TRUE(loop_.runUntil([&] { return !a.store->mirror().watching(); }, 5s));
  ASSERT_TRUE(remove(b, "default/goes").isOk());
  ASSERT_TRUE(put(b, workload("default", "changes", "10.0.0.4")).isOk());
  ASSERT_TRUE(put(b, workload("default", "new", "10.0.0.5")).isOk());
  etcd_->compactAll();  // A's resume revision is gone
  relay.restore();

  ASSERT_TRUE(loop_.runUntil([&] { return a.store->mirror().counters().compactions == 1; }, 10s));
  ASSERT_TRUE(loop_.runUntil([&] { return a.current == b.current; }, 5s));
  EXPECT_EQ(a.current.size(), 3U);
  EXPECT_EQ(a.removes["default/goes"], 1);
  EXPECT_EQ(a.upserts["default/stays"], 1) << "unchanged entry re-reported by the re-read";
  EXPECT_EQ(a.upserts["default/changes"], 2);
  EXPECT_EQ(a.upserts["default/new"], 1);
  EXPECT_EQ(a.store->mirror().counters().reads, 2U);

  // The watch works again after the re-read.
  ASSERT_TRUE(put(b, workload("default", "after", "10.0.0.9")).isOk());
  ASSERT_TRUE(loop_.runUntil([&] { return a.current.count("default/after") == 1; }, 2s));
}

TEST_F(EtcdStoreTest, KeepsItsCopyWhileEtcdIsDownAndCatchesUpAfter) {
  Replica a(loop_, etcd_->clientUrl());
  ASSERT_TRUE(waitSynced(a));
  ASSERT_TRUE(put(a, workload("default", "web-0", "10.0.0.5")).isOk());
  ASSERT_TRUE(loop_.runUntil([&] { return a.current.size() == 1; }, 2s));

  etcd_->kill();
  ASSERT_TRUE(loop_.runUntil([&] { return !a.store->mirror().watching(); }, 5s));
  // A failed write says so; the copy is untouched.
  EXPECT_FALSE(put(a, workload("default", "web-1", "10.0.0.6")).isOk());
  loop_.runFor(300ms);
  EXPECT_EQ(a.current.size(), 1U);
  EXPECT_EQ(a.removes.size(), 0U);

  etcd_->restart();
  Replica b(loop_, etcd_->clientUrl());
  ASSERT_TRUE(waitSynced(b));
  ASSERT_TRUE(put(b, workload("default", "web-2", "10.0.0.7")).isOk());
  ASSERT_TRUE(loop_.runUntil([&] { return a.current.size() == 2; }, 10s));
  EXPECT_EQ(a.current.count("default/web-2"), 1U);
}

TEST_F(EtcdStoreTest, UndecodableValueIsCountedAndIgnored) {
  Replica a(loop_, etcd_->clientUrl());
  ASSERT_TRUE(waitSynced(a));
  etcd_->ctl({"put", "/rdmesh/v1/workloads/default/bad", "not json"});
  etcd_->ctl({"put", "/rdmesh/v1/gadgets/x", "{}"});
  etcd_->ctl({"put", "/rdmesh/v1/workloads/default/mismatch",
              R"({"origin":"registration","resource":{"name":"other/name"}})"});
  ASSERT_TRUE(loop_.runUntil([&] { return a.store->badValues() == 3; }, 2s));
  EXPECT_TRUE(a.current.empty());

  // A good value replaces a bad one under the same key.
  ASSERT_TRUE(put(a, Json{{"name", "default/bad"}, {"namespace", "default"}}).isOk());
  ASSERT_TRUE(loop_.runUntil([&] { return a.current.count("default/bad") == 1; }, 2s));
  // ... and a bad value replacing a good one removes it.
  etcd_->ctl({"put", "/rdmesh/v1/workloads/default/bad", "[]"});
  ASSERT_TRUE(loop_.runUntil([&] { return a.current.empty(); }, 2s));
  EXPECT_EQ(a.removes["default/bad"], 1);
}

TEST_F(EtcdStoreTest, ElectionHasOneLeaderFencesWritesAndFailsOver) {
  Replica a(loop_, etcd_->clientUrl());
  Replica b(loop_, etcd_->clientUrl());
  ASSERT_TRUE(waitSynced(a));
  EtcdLeaderElection::Options options;
  options.lease_ttl = std::chrono::seconds(2);
  options.retry = std::chrono::milliseconds(100);
  const std::string key = "/rdmesh/election/v1/kubernetes-writer";
  int a_changes = 0;
  int b_changes = 0;
  auto ea = std::make_unique<EtcdLeaderElection>(
      loop_.base(), *a.client, key, "replica-a", [&](bool) { ++a_changes; }, options);
  ea->start();
  ASSERT_TRUE(loop_.runUntil([&] { return ea->isLeader(); }, 5s));
  auto eb = std::make_unique<EtcdLeaderElection>(
      loop_.base(), *b.client, key, "replica-b", [&](bool) { ++b_changes; }, options);
  eb->start();
  ASSERT_TRUE(loop_.runUntil([&] { return eb->leaderId() == "replica-a"; }, 5s));
  loop_.runFor(2500ms);  // longer than a TTL: the keepalive holds leadership
  EXPECT_TRUE(ea->isLeader());
  EXPECT_FALSE(eb->isLeader());
  EXPECT_EQ(a_changes, 1);
  EXPECT_EQ(b_changes, 0);

  // Fenced writes: the leader's pass, the follower's are refused and change nothing.
  EXPECT_TRUE(put(a, workload("default", "from-leader", "10.0.0.1"), ea->fence()).isOk());
  auto refused = put(b, workload("default", "from-follower", "10.0.0.2"), eb->fence());
  EXPECT_FALSE(refused.isOk());
  ASSERT_TRUE(loop_.runUntil([&] { return a.current.count("default/from-leader") == 1; }, 2s));
  EXPECT_EQ(a.current.count("default/from-follower"), 0U);

  // Resignation hands over at once.
  auto t0 = Clock::now();
  ea->resign();
  ASSERT_TRUE(loop_.runUntil([&] { return eb->isLeader(); }, 2s));
  std::cerr << "[etcd] leadership moved after resign in " << secondsSince(t0) * 1000 << " ms\n";
  EXPECT_FALSE(ea->isLeader());
  EXPECT_TRUE(put(b, workload("default", "from-new-leader", "10.0.0.3"), eb->fence()).isOk());
  EXPECT_FALSE(put(a, workload("default", "from-old-leader", "10.0.0.4"), ea->fence()).isOk());

  // A leader that vanishes without resigning loses the key when its lease runs out.
  auto ec = std::make_unique<EtcdLeaderElection>(loop_.base(), *a.client, key, "replica-c", nullptr,
                                                 options);
  ec->start();
  ASSERT_TRUE(loop_.runUntil([&] { return ec->leaderId() == "replica-b"; }, 5s));
  t0 = Clock::now();
  eb.reset();  // no resign, no revoke: like a crash
  ASSERT_TRUE(loop_.runUntil([&] { return ec->isLeader(); }, 10s));
  double takeover = secondsSince(t0);
  std::cerr << "[etcd] leadership taken over after a silent leader loss in " << takeover * 1000
            << " ms (lease TTL 2 s)\n";
  EXPECT_GE(takeover, 0.5);
}

}  // namespace
}  // namespace rdmesh::it
