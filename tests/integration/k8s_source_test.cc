// The Kubernetes source against recorded API-server responses replayed by a test server
// (fixtures/k8s): paginated lists, a watch stream with ADDED/MODIFIED/DELETED/BOOKMARK, a
// dropped stream that resumes from the last resourceVersion, 410 Gone (as an ERROR event and
// as the HTTP status) that forces a re-list, malformed events, HTTPS with a bearer token and
// a CA, and the multi-replica writer through etcd.
#include "k8s_source.h"

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <memory>
#include <string>

#include "etcd_server.h"
#include "etcd_store.h"
#include "k8s_replay_server.h"
#include "memory_store.h"

namespace rdmesh::it {
namespace {

using xds_server::KubernetesSource;
using xds_server::KubernetesSourceOptions;
using xds_server::MemoryStore;
using Reply = ReplayApiServer::Reply;
using End = ReplayApiServer::End;

constexpr const char* kPods = "/api/v1/pods";
constexpr const char* kServices = "/api/v1/services";
constexpr const char* kSlices = "/apis/discovery.k8s.io/v1/endpointslices";
constexpr const char* kNodes = "/api/v1/nodes";

// Lists from the fixtures (pods in two pages); watches held open with no events, unless the
// test's `watch` hook answers.
struct Script {
  std::function<std::optional<Reply>(const ReplayApiServer::Request&, int n)> pods_watch;
  std::function<std::optional<Reply>(const ReplayApiServer::Request&, int n)> pods_list;
  std::atomic<int> pods_watches{0};
  std::atomic<int> pods_lists{0};

  Reply operator()(const ReplayApiServer::Request& r) {
    if (r.path == kPods && r.watch() && pods_watch) {
      if (auto reply = pods_watch(r, pods_watches++)) return *reply;
    }
    if (r.watch()) return Reply{200, {}, End::kHold};
    if (r.path == kPods) {
      if (pods_list) {
        if (auto reply = pods_list(r, pods_lists++)) return *reply;
      }
      return Reply{200,
                   {k8sFixture(r.param("continue").empty() ? "pods-list-page1.json"
                                                           : "pods-list-page2.json")}};
    }
    if (r.path == kServices) return Reply{200, {k8sFixture("services-list.json")}};
    if (r.path == kSlices) return Reply{200, {k8sFixture("endpointslices-list.json")}};
    if (r.path == kNodes) return Reply{200, {k8sFixture("nodes-list.json")}};
    return Reply{404, {R"({"kind":"Status","code":404,"reason":"NotFound"})"}};
  }
};

class KubernetesSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);  // as rdmesh-xds does: peers that vanish are errors, not signals
    writeFile(dir_.file("token"), "test-token\n");
  }

  KubernetesSourceOptions options(const std::string& url, const std::string& ca = {}) {
    auto api = xds::k8s::ApiConfig::fromUrl(url, dir_.file("token"), ca);
    EXPECT_TRUE(api.isOk()) << api.status().message();
    KubernetesSourceOptions o;
    o.api = *api;
    o.trust_domain = "mesh.example";
    o.min_backoff = std::chrono::milliseconds(20);
    o.max_backoff = std::chrono::milliseconds(200);
    return o;
  }

  // Starts `source` on `store`; true once synced.
  bool startSynced(KubernetesSource& source, xds_server::RegistrySink& sink) {
    Status started = source.start(sink, [this] { synced_ = true; });
    EXPECT_TRUE(started.isOk()) << started.message();
    return waitFor([&] { return synced_.load(); }, 10s);
  }

  TempDir dir_{"rdmk8s"};
  std::atomic<bool> synced_{false};
};

TEST_F(KubernetesSourceTest, ListsAndTranslatesPodsServicesSlicesAndNodes) {
  Script script;
  ReplayApiServer server([&](const auto& r) { return script(r); });
  MemoryStore store;
  KubernetesSource source(options(server.url()));
  ASSERT_TRUE(startSynced(source, store));
  auto snap = store.snapshot();

  // Workloads: Running pods with a pod IP only (not the Pending web-1, not the host-network
  // exporter).
  ASSERT_EQ(snap->workloads.size(), 2U);
  const auto& web0 = snap->workloads.at("default/web-0");
  EXPECT_EQ(web0.ips, std::vector<std::string>{"10.244.1.5"});
  EXPECT_EQ(web0.node, "node-a");
  EXPECT_EQ(web0.service_account, "web");
  EXPECT_EQ(web0.identity, "spiffe://mesh.example/ns/default/sa/web");
  EXPECT_EQ(web0.ports, std::vector<uint16_t>{8080});
  EXPECT_EQ(web0.labels.at("version"), "v1");
  const auto& db0 = snap->workloads.at("data/db-0");
  EXPECT_EQ(db0.ports, (std::vector<uint16_t>{5432, 9187})) << "the UDP port is not meshed";
  EXPECT_EQ(db0.identity, "spiffe://mesh.example/ns/data/sa/postgres");

  // Nodes: the fabric and GID rdmesh-node publishes; node-c has no address yet.
  ASSERT_EQ(snap->nodes.size(), 2U);
  const auto& a = snap->nodes.at("node-a");
  EXPECT_EQ(a.fabric, xds::FabricKind::kVerbs);
  EXPECT_EQ(a.session_address, "10.0.0.1:15008");
  ASSERT_TRUE(a.rdma.has_value());
  EXPECT_EQ(a.rdma->gid, "fe80:0000:0000:0000:5054:00ff:fe12:3456");
  EXPECT_EQ(snap->nodes.at("node-b").fabric, xds::FabricKind::kTcp);

  // Services: the named targetPort resolved through the EndpointSlice, UDP left out; headless
  // db has no cluster IP; the ExternalName alias is not a mesh service.
  ASSERT_EQ(snap->services.size(), 2U);
  const auto& web = snap->services.at("default/web");
  EXPECT_EQ(web.cluster_ips, std::vector<std::string>{"10.96.12.34"});
  ASSERT_EQ(web.ports.size(), 2U);
  EXPECT_EQ(web.ports[0].port, 80);
  EXPECT_EQ(web.ports[0].target_port, 8080);
  EXPECT_EQ(web.ports[1].target_port, 9090);
  EXPECT_EQ(web.selector.at("app"), "web");
  EXPECT_TRUE(snap->services.at("data/db").cluster_ips.empty());

  // The list was paged and every request carried the token.
  auto lists = server.requestsFor(kPods, false);
  ASSERT_EQ(lists.size(), 2U);
  EXPECT_EQ(lists[0].param("limit"), "500");
  EXPECT_EQ(lists[1].param("continue"),
            "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTAwOCwic3RhcnQiOiJkYXRhL2RiLTBcdTAwMDAifQ");
  for (const auto& r : server.requests()) EXPECT_EQ(r.authorization, "Bearer test-token");
  // Watches start at the list's resourceVersion, with bookmarks.
  ASSERT_TRUE(waitFor([&] { return server.held(kPods) == 1; }, 5s));
  auto watch = server.requestsFor(kPods, true).at(0);
  EXPECT_EQ(watch.param("resourceVersion"), "1008");
  EXPECT_EQ(watch.param("allowWatchBookmarks"), "true");

  // A live event: the EndpointSlice's port for "http" changes -> the service follows.
  ASSERT_TRUE(waitFor([&] { return server.held(kSlices) == 1; }, 5s));
  server.push(kSlices, k8sFixtureLines("endpointslices-watch.ndjson").at(0));
  ASSERT_TRUE(waitFor(
      [&] { return store.snapshot()->services.at("default/web").ports[0].target_port == 8081; },
      5s));
  source.stop();
}

TEST_F(KubernetesSourceTest, WatchEventsBookmarkDropResumeAndGoneRelist) {
  Script script;
  auto watch1 = k8sFixtureLines("pods-watch-1.ndjson");
  auto watch2 = k8sFixtureLines("pods-watch-2.ndjson");
  script.pods_watch = [&](const ReplayApiServer::Request&, int n) -> std::optional<Reply> {
    if (n == 0) return Reply{200, watch1, End::kDrop};  // events, then the connection is cut
    if (n == 1) return Reply{200, watch2, End::kHold};  // resumed: one event, then 410 ERROR
    return std::nullopt;                                // after the re-list: held, quiet
  };
  script.pods_list = [&](const ReplayApiServer::Request&, int n) -> std::optional<Reply> {
    if (n >= 2) return Reply{200, {k8sFixture("pods-list-after-gone.json")}};
    return std::nullopt;
  };
  ReplayApiServer server([&](const auto& r) { return script(r); });
  MemoryStore store;
  KubernetesSource source(options(server.url()));
  ASSERT_TRUE(startSynced(source, store));

  // After the re-list: db-0 and web-3 only.
  ASSERT_TRUE(waitFor(
      [&] {
        auto s = store.snapshot();
        return s->workloads.size() == 2 && s->workloads.count("default/web-3") == 1;
      },
      10s));
  auto snap = store.snapshot();
  EXPECT_EQ(snap->workloads.count("data/db-0"), 1U);
  EXPECT_EQ(snap->workloads.count("default/web-0"), 0U) << "deleted in the first watch";
  EXPECT_EQ(snap->workloads.count("default/web-2"), 0U) << "gone after the re-list";

  ASSERT_TRUE(waitFor([&] { return server.requestsFor(kPods, true).size() >= 3; }, 5s));
  auto watches = server.requestsFor(kPods, true);
  EXPECT_EQ(watches[0].param("resourceVersion"), "1008");
  EXPECT_EQ(watches[1].param("resourceVersion"), "1015") << "resume from the BOOKMARK";
  EXPECT_EQ(watches[2].param("resourceVersion"), "1900") << "watch from the re-list";
  auto c = source.counters(KubernetesSource::Kind::kPods);
  EXPECT_EQ(c.gone, 1U);
  EXPECT_EQ(c.lists, 2U);
  EXPECT_EQ(c.bookmarks, 1U);
  EXPECT_EQ(c.events, 4U);  // ADDED, MODIFIED, DELETED, MODIFIED
  source.stop();
}

TEST_F(KubernetesSourceTest, EventsInBetweenReachTheRegistryInOrder) {
  Script script;
  auto watch1 = k8sFixtureLines("pods-watch-1.ndjson");
  script.pods_watch = [&](const ReplayApiServer::Request&, int n) -> std::optional<Reply> {
    if (n == 0) return Reply{200, {}, End::kHold};
    return std::nullopt;
  };
  ReplayApiServer server([&](const auto& r) { return script(r); });
  MemoryStore store;
  KubernetesSource source(options(server.url()));
  ASSERT_TRUE(startSynced(source, store));
  ASSERT_TRUE(waitFor([&] { return server.held(kPods) == 1; }, 5s));

  server.push(kPods, watch1[0]);  // web-2 ADDED, Pending: not a workload yet
  server.push(kPods, watch1[1]);  // web-2 Running with an IP
  ASSERT_TRUE(waitFor([&] { return store.snapshot()->workloads.count("default/web-2") == 1; }, 5s));
  EXPECT_EQ(store.snapshot()->workloads.at("default/web-2").ips,
            std::vector<std::string>{"10.244.1.9"});
  server.push(kPods, watch1[2]);  // web-0 terminating: no new connections to it
  ASSERT_TRUE(waitFor([&] { return store.snapshot()->workloads.count("default/web-0") == 0; }, 5s));
  source.stop();
}

TEST_F(KubernetesSourceTest, HttpGoneOnWatchForcesRelist) {
  Script script;
  script.pods_watch = [&](const ReplayApiServer::Request&, int n) -> std::optional<Reply> {
    if (n == 0) return Reply{410, {k8sFixture("status-410.json")}};
    return std::nullopt;
  };
  ReplayApiServer server([&](const auto& r) { return script(r); });
  MemoryStore store;
  KubernetesSource source(options(server.url()));
  ASSERT_TRUE(startSynced(source, store));
  ASSERT_TRUE(
      waitFor([&] { return source.counters(KubernetesSource::Kind::kPods).lists == 2; }, 5s));
  EXPECT_EQ(source.counters(KubernetesSource::Kind::kPods).gone, 1U);
  EXPECT_EQ(store.snapshot()->workloads.size(), 2U)
      << "a re-list of the same state changes nothing";
  source.stop();
}

TEST_F(KubernetesSourceTest, MalformedEventsGiveAClearErrorAndLoseNothing) {
  Script script;
  auto malformed = k8sFixtureLines("pods-watch-malformed.ndjson");
  auto unknown = k8sFixtureLines("pods-watch-unknown-type.ndjson");
  auto good = k8sFixtureLines("pods-watch-1.ndjson");
  script.pods_watch = [&](const ReplayApiServer::Request&, int n) -> std::optional<Reply> {
    if (n == 0) return Reply{200, {malformed[0]}, End::kHold};  // no resourceVersion
    if (n == 1) return Reply{200, {unknown[0]}, End::kHold};    // unknown event type
    if (n == 2) return Reply{200, {malformed[1]}, End::kDrop};  // truncated JSON, then cut
    if (n == 3) return Reply{200, {good[0], good[1]}, End::kHold};
    return std::nullopt;
  };
  ReplayApiServer server([&](const auto& r) { return script(r); });
  MemoryStore store;
  KubernetesSource source(options(server.url()));
  ASSERT_TRUE(startSynced(source, store));
  ASSERT_TRUE(
      waitFor([&] { return store.snapshot()->workloads.count("default/web-2") == 1; }, 10s));
  auto c = source.counters(KubernetesSource::Kind::kPods);
  EXPECT_EQ(c.malformed, 3U);
  EXPECT_NE(c.last_error.find("malformed watch event"), std::string::npos) << c.last_error;
  // Every retry resumed from the last good resourceVersion: nothing skipped.
  for (const auto& w : server.requestsFor(kPods, true)) {
    EXPECT_EQ(w.param("resourceVersion"), "1008");
  }
  EXPECT_EQ(c.lists, 1U);
  EXPECT_EQ(store.snapshot()->workloads.size(), 3U);
  source.stop();
}

TEST_F(KubernetesSourceTest, HttpsWithServiceAccountTokenAndCa) {
  auto certs = makeTestCertificates(dir_.path());
  Script script;
  ReplayApiServer server([&](const auto& r) { return script(r); }, &certs);
  MemoryStore store;
  KubernetesSource source(options(server.url(), certs.ca_file));
  ASSERT_TRUE(startSynced(source, store));
  EXPECT_EQ(store.snapshot()->workloads.size(), 2U);
  source.stop();

  // The in-cluster layout: token and ca.crt in the service account directory.
  writeFile(dir_.file("ca.crt"), readFile(certs.ca_file));
  setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", server.url().substr(server.url().rfind(':') + 1).c_str(), 1);
  auto in_cluster = xds::k8s::ApiConfig::inCluster(dir_.path());
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
  ASSERT_TRUE(in_cluster.isOk()) << in_cluster.status().message();
  EXPECT_TRUE(in_cluster->endpoint.tls);
  KubernetesSourceOptions o = options(server.url());
  o.api = *in_cluster;
  MemoryStore store2;
  KubernetesSource in_pod(o);
  synced_ = false;
  ASSERT_TRUE(startSynced(in_pod, store2));
  in_pod.stop();

  // A server whose certificate does not chain to the CA is refused, with the reason.
  TempDir other_dir("rdmk8sca");
  auto other = makeTestCertificates(other_dir.path());
  MemoryStore store3;
  KubernetesSource refused(options(server.url(), other.ca_file));
  synced_ = false;
  ASSERT_TRUE(refused.start(store3, [this] { synced_ = true; }).isOk());
  ASSERT_TRUE(waitFor(
      [&] {
        return refused.counters(KubernetesSource::Kind::kPods).last_error.find("certificate") !=
               std::string::npos;
      },
      5s))
      << refused.counters(KubernetesSource::Kind::kPods).last_error;
  EXPECT_FALSE(synced_.load());
  EXPECT_TRUE(store3.snapshot()->workloads.empty());
  refused.stop();
}

TEST_F(KubernetesSourceTest, OnlyTheElectedReplicaWritesToEtcdAndANewLeaderReconciles) {
  // Waits are generous: leases, watches and resignation all go through a real etcd, which is
  // slow on a loaded CI machine under the sanitizers; a wait that succeeds returns at once.
  std::string why = EtcdServer::unavailableReason();
  if (!why.empty()) GTEST_SKIP() << why;
  EtcdServer etcd;
  Script script;
  script.pods_watch = [&](const ReplayApiServer::Request&, int) -> std::optional<Reply> {
    return std::nullopt;
  };
  ReplayApiServer server([&](const auto& r) { return script(r); });

  auto replica = [&](const std::string& id) {
    xds_server::EtcdStoreOptions o;
    o.endpoints = {etcd.clientUrl()};
    o.replica_id = id;
    o.election_ttl = std::chrono::seconds(2);
    return std::make_unique<xds_server::EtcdStore>(o);
  };
  auto store_a = replica("replica-a");
  auto store_b = replica("replica-b");
  auto source_a = std::make_unique<KubernetesSource>(options(server.url()));
  auto source_b = std::make_unique<KubernetesSource>(options(server.url()));
  auto& sink_a = store_a->kubernetesSink([&] { return source_a->fullState(); });
  auto& sink_b = store_b->kubernetesSink([&] { return source_b->fullState(); });
  ASSERT_TRUE(store_a->start().isOk());
  ASSERT_TRUE(waitFor([&] { return store_a->isKubernetesWriter(); }, 20s));
  ASSERT_TRUE(store_b->start().isOk());
  std::atomic<int> synced{0};
  ASSERT_TRUE(source_a->start(sink_a, [&] { ++synced; }).isOk());
  ASSERT_TRUE(source_b->start(sink_b, [&] { ++synced; }).isOk());
  ASSERT_TRUE(waitFor([&] { return synced == 2; }, 20s));
  ASSERT_TRUE(waitFor([&] { return store_b->snapshot()->workloads.size() == 2; }, 20s));
  EXPECT_FALSE(store_b->isKubernetesWriter());
  EXPECT_EQ(store_b->snapshot()->services.size(), 2U);
  EXPECT_EQ(store_b->snapshot()->nodes.size(), 2U);
  std::string stored =
      etcd.ctl({"get", "/rdmesh/v1/workloads/default/web-0", "--print-value-only"});
  EXPECT_NE(stored.find("\"origin\":\"kubernetes\""), std::string::npos) << stored;

  // A stale entry a former leader wrote (the pod vanished while no one led) ...
  etcd.ctl(
      {"put", "/rdmesh/v1/workloads/default/ghost",
       R"({"origin":"kubernetes","resource":{"name":"default/ghost","namespace":"default","pod":"ghost","ip":["10.244.9.9"],"node":"node-a","identity":"spiffe://mesh.example/ns/default/sa/x","service_account":"x","ports":[],"labels":{}}})"});
  // ... and one registered through the API, which the Kubernetes writer must leave alone.
  etcd.ctl(
      {"put", "/rdmesh/v1/workloads/default/cni-registered",
       R"({"origin":"registration","resource":{"name":"default/cni-registered","namespace":"default","pod":"cni-registered","ip":["10.244.9.8"],"node":"node-a","identity":"spiffe://mesh.example/ns/default/sa/x","service_account":"x","ports":[],"labels":{}}})"});
  ASSERT_TRUE(waitFor([&] { return store_b->snapshot()->workloads.size() == 4; }, 20s));

  // The leader goes away (graceful: it resigns); B takes over and reconciles.
  auto t0 = Clock::now();
  source_a->stop();
  store_a->stop();
  ASSERT_TRUE(waitFor([&] { return store_b->isKubernetesWriter(); }, 20s));
  ASSERT_TRUE(
      waitFor([&] { return store_b->snapshot()->workloads.count("default/ghost") == 0; }, 20s));
  std::cerr << "[k8s] writer moved to replica B and reconciled in " << secondsSince(t0) * 1000
            << " ms\n";
  EXPECT_EQ(store_b->snapshot()->workloads.count("default/cni-registered"), 1U);
  EXPECT_EQ(store_b->snapshot()->workloads.size(), 3U);
  source_b->stop();
  store_b->stop();
}

}  // namespace
}  // namespace rdmesh::it
