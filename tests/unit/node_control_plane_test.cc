// rdmesh-node in the control plane: the xds: section (shared bootstrap keys + the node's own),
// pods -> Workloads, the reconciliation plan and the registrar that carries it out (retries,
// refusals, stale deletions), and Node resources -> peers (or a NACK reason).
#include <event2/event.h>
#include <gtest/gtest.h>

#include <deque>
#include <nlohmann/json.hpp>

#include "node_config.h"
#include "workload_registrar.h"
#include "xds_module.h"

namespace rdmesh::node {
namespace {

using namespace std::chrono_literals;

// ----------------------------------------------------------------------------------- config

std::string configError(const std::string& yaml) {
  auto config = parseNodeConfig(yaml, "node.yaml");
  if (config) {
    Status s = finishNodeConfig(&*config);
    return s ? "" : s.message();
  }
  return config.status().message();
}

TEST(NodeXdsConfigTest, ReadsTheSharedAndTheNodeKeys) {
  auto config = parseNodeConfig(R"(node: {name: node-a}
xds:
  servers: ["rdmesh-xds.rdmesh-system.svc:15012", "10.0.0.9:15012"]
  tls: {ca_file: /etc/rdmesh/ca.pem, server_name: rdmesh-xds.rdmesh-system.svc}
  delta: true
  connect_timeout_ms: 750
  registration_token_file: /etc/rdmesh/token
  trust_domain: example.org
)",
                                "node.yaml");
  ASSERT_TRUE(config) << config.status().message();
  ASSERT_TRUE(finishNodeConfig(&*config));
  ASSERT_TRUE(config->xds);
  const NodeXdsConfig& xds = *config->xds;
  EXPECT_EQ(xds.servers.size(), 2u);
  EXPECT_FALSE(xds.plaintext);
  EXPECT_TRUE(xds.delta);
  EXPECT_EQ(xds.ca_file, "/etc/rdmesh/ca.pem");
  EXPECT_EQ(xds.server_name, "rdmesh-xds.rdmesh-system.svc");
  EXPECT_EQ(xds.connect_timeout, 750ms);
  EXPECT_EQ(xds.registration_token_file, "/etc/rdmesh/token");
  EXPECT_EQ(xds.trust_domain, "example.org");
  EXPECT_EQ(xds.id, "node~node-a");  // the default id names the role and the node
}

TEST(NodeXdsConfigTest, WithoutTheSectionTheAgentStaysOutOfTheControlPlane) {
  auto config = parseNodeConfig("node: {name: node-a}\n", "node.yaml");
  ASSERT_TRUE(config);
  EXPECT_FALSE(config->xds);
}

TEST(NodeXdsConfigTest, ErrorsNameTheField) {
  const std::string head = "node: {name: node-a}\n";
  EXPECT_EQ(configError(head + "xds: {servers: [], plaintext: true}\n"),
            "node.yaml:2:16: xds.servers: must list at least one server");
  EXPECT_EQ(configError(head + "xds: {servers: [\"host\"], plaintext: true}\n"),
            "node.yaml:2:17: xds.servers[0]: 'host' is not host:port");
  EXPECT_EQ(configError(head + "xds: {servers: [\"h:1\"]}\n"),
            "node.yaml:2:6: xds.tls: missing (TLS needs ca_file; for plaintext h2c say "
            "plaintext: true)");
  EXPECT_EQ(configError(head + "xds: {servers: [\"h:1\"], plaintext: yes}\n"),
            "node.yaml:2:36: xds.plaintext: 'yes' is not true or false");
  EXPECT_EQ(configError(head + "xds: {servers: [\"h:1\"], plaintext: true, tls: {ca_file: x}}\n"),
            "node.yaml:2:42: xds.tls: not with plaintext: true (choose one)");
  EXPECT_EQ(configError(head + "xds: {servers: [\"h:1\"], plaintext: true, workload: a/b}\n"),
            "node.yaml:2:42: xds.workload: unknown field");
  EXPECT_EQ(
      configError(head + "xds: {servers: [\"h:1\"], plaintext: true, connect_timeout_ms: 0}\n"),
      "node.yaml:2:62: xds.connect_timeout_ms: '0' is not an integer from 1 to 86400000");
  EXPECT_EQ(
      configError(head + "xds: {servers: [\"h:1\"], plaintext: true, trust_domain: Bad_TD}\n"),
      "node.yaml:2:56: xds.trust_domain: 'Bad_TD' is not a trust domain (lowercase letters, "
      "digits, '.', '-')");
  EXPECT_EQ(configError(head + "xds: {servers: [\"h:1\"], plaintext: true, "
                               "registration_token_file: token}\n"),
            "xds.registration_token_file: 'token' must be an absolute path");
  EXPECT_EQ(configError(head + "xds: [a]\n"), "node.yaml:2:6: xds: expected a mapping, got a list");
}

TEST(NodeXdsConfigTest, FlagsCreateOrOverrideTheSection) {
  std::optional<NodeXdsConfig> xds;
  NodeXdsFlags flags;
  applyNodeXdsFlags(flags, &xds);
  EXPECT_FALSE(xds) << "no flag, no section";
  flags.servers = {"127.0.0.1:15010"};
  flags.plaintext = true;
  flags.registration_token_file = "/run/token";
  applyNodeXdsFlags(flags, &xds);
  ASSERT_TRUE(xds);
  ASSERT_TRUE(finishNodeXdsConfig("node-b", &*xds));
  EXPECT_EQ(xds->servers, std::vector<std::string>{"127.0.0.1:15010"});
  EXPECT_EQ(xds->id, "node~node-b");
  // A flag that contradicts the file is caught by the same check.
  xds->ca_file = "/ca.pem";
  EXPECT_EQ(finishNodeXdsConfig("node-b", &*xds).message(),
            "xds.tls: not with plaintext: true (choose one)");
}

// ------------------------------------------------------------------------ pods -> Workloads

PodAddRequest pod(const std::string& id, const std::string& name, const std::string& ip) {
  PodAddRequest p;
  p.container_id = id;
  p.netns = "/var/run/netns/" + id;
  p.ips = {ip};
  p.interface = "eth0";
  p.pod_name = name;
  p.pod_namespace = "shop";
  return p;
}

TEST(WorkloadOfTest, APodBecomesAValidWorkloadOwnedByTheAgent) {
  PodAddRequest p = pod("c0ffee", "cart-0", "10.78.1.10");
  p.pod_uid = "6c2d-11";
  p.service_account = "cart";
  p.ports = {9090};
  p.labels = {{"app", "cart"}};
  std::optional<xds::Workload> w = workloadOf(p, "node-b", "cluster.local");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->name, "shop/cart-0");
  EXPECT_EQ(w->node, "node-b");
  EXPECT_EQ(w->identity, "spiffe://cluster.local/ns/shop/sa/cart");
  EXPECT_EQ(w->uid, "6c2d-11");
  EXPECT_EQ(w->ports, std::vector<uint16_t>{9090});
  EXPECT_EQ(w->labels.at("app"), "cart");
  EXPECT_EQ(w->labels.at(kContainerIdLabel), "c0ffee");
  EXPECT_TRUE(isRegisteredByNode(*w));
  // What the registration API will parse.
  auto parsed = xds::parseWorkload(xds::toJson(*w), "");
  ASSERT_TRUE(parsed) << parsed.status().message();
  EXPECT_EQ(*parsed, *w);

  // No service account: Kubernetes' "default".
  EXPECT_EQ(workloadOf(pod("c1", "web-0", "10.0.0.1"), "n", "td")->identity,
            "spiffe://td/ns/shop/sa/default");
  // No name: nothing to register it as.
  PodAddRequest unnamed = pod("c2", "", "10.0.0.2");
  EXPECT_FALSE(workloadOf(unnamed, "n", "td"));
}

TEST(PodAddWorkloadFieldsTest, ParsedCheckedAndPersisted) {
  auto body = nlohmann::json::parse(
      R"({"v":1,"op":"pod_add","container_id":"c1","netns":"/run/netns/p","ips":["10.0.0.1"],)"
      R"("interface":"eth0","pod_name":"cart-0","pod_namespace":"shop","service_account":"cart",)"
      R"("ports":[9091,9090,9090],"labels":{"app":"cart","tier":"back"}})");
  Result<PodAddRequest> request = parsePodAdd(body);
  ASSERT_TRUE(request) << request.status().message();
  EXPECT_EQ(request->service_account, "cart");
  EXPECT_EQ(request->ports, (std::vector<uint16_t>{9090, 9091}));
  EXPECT_EQ(request->labels.at("tier"), "back");
  // The state file keeps them (a restarted agent registers the same Workload).
  Result<PodRecord> back = PodRegistry::fromJson(PodRegistry::toJson(PodRecord{*request, 7}));
  ASSERT_TRUE(back) << back.status().message();
  EXPECT_EQ(back->spec, *request);

  auto error = [&](const char* field, nlohmann::json value) {
    nlohmann::json bad = body;
    bad[field] = std::move(value);
    Result<PodAddRequest> r = parsePodAdd(bad);
    return r ? std::string("accepted") : r.status().message();
  };
  EXPECT_EQ(error("labels", nlohmann::json::array()),
            "field 'labels': must be an object of strings");
  EXPECT_EQ(error("labels", {{"app", 7}}),
            "field 'labels.app': must be a string of at most 1024 bytes");
  EXPECT_EQ(error("ports", {0}), "field 'ports[0]': must be a port number 1..65535 (got 0)");
  EXPECT_EQ(error("service_account", 5), "field 'service_account': must be a string");
}

// ------------------------------------------------------------------------------- the plan

xds::Workload owned(const std::string& pod_name, const std::string& ip) {
  return *workloadOf(pod("id-" + pod_name, pod_name, ip), "node-b", "cluster.local");
}

TEST(PlanRegistrationsTest, PutsWhatIsMissingOrDifferentDeletesWhatIsStale) {
  std::map<std::string, xds::Workload> desired = {{"shop/a", owned("a", "10.0.0.1")},
                                                  {"shop/b", owned("b", "10.0.0.2")},
                                                  {"shop/c", owned("c", "10.0.0.3")}};
  std::map<std::string, xds::Workload> at_server = {
      {"shop/a", owned("a", "10.0.0.1")},   // in step
      {"shop/b", owned("b", "10.0.9.9")},   // different at the server
      {"shop/z", owned("z", "10.0.0.26")},  // no such pod any more
  };
  RegistrationPlan plan = planRegistrations(desired, at_server, {}, {});
  ASSERT_EQ(plan.put.size(), 2u);
  EXPECT_EQ(plan.put[0].name, "shop/b");
  EXPECT_EQ(plan.put[1].name, "shop/c");
  EXPECT_EQ(plan.remove, std::vector<std::string>{"shop/z"});

  // In flight: left alone until the call ends.
  plan = planRegistrations(desired, at_server, {"shop/b", "shop/z"}, {});
  ASSERT_EQ(plan.put.size(), 1u);
  EXPECT_EQ(plan.put[0].name, "shop/c");
  EXPECT_TRUE(plan.remove.empty());

  // Refused as it is: not retried; changed since: retried.
  std::map<std::string, xds::Workload> refused = {{"shop/c", desired.at("shop/c")}};
  plan = planRegistrations(desired, at_server, {}, refused);
  ASSERT_EQ(plan.put.size(), 1u);
  EXPECT_EQ(plan.put[0].name, "shop/b");
  refused["shop/c"] = owned("c", "10.0.0.99");
  EXPECT_EQ(planRegistrations(desired, at_server, {}, refused).put.size(), 2u);

  // Everything in step: nothing to do.
  EXPECT_EQ(planRegistrations(desired, desired, {}, {}), RegistrationPlan{});
}

// --------------------------------------------------------------------------- the registrar

// Records calls; the test completes them.
class FakeRegistrationClient final : public xds::RegistrationClient {
 public:
  struct Call {
    std::string method;
    std::string name;
    xds::RegistrationDone done;
  };
  void putWorkload(const xds::Workload& w, xds::RegistrationDone done) override {
    calls->push_back({"PUT", w.name, std::move(done)});
  }
  void deleteWorkload(const std::string& name, xds::RegistrationDone done) override {
    calls->push_back({"DELETE", name, std::move(done)});
  }
  void preferServer(const std::string&) override {}
  std::shared_ptr<std::deque<Call>> calls = std::make_shared<std::deque<Call>>();
};

class RegistrarTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto client = std::make_unique<FakeRegistrationClient>();
    calls_ = client->calls;
    WorkloadRegistrar::Options options;
    options.node_name = "node-b";
    options.initial_backoff = 2ms;
    options.max_backoff = 8ms;
    registrar_ = std::make_unique<WorkloadRegistrar>(base_, options, std::move(client), stats_);
  }
  void TearDown() override {
    registrar_.reset();
    event_base_free(base_);
  }

  void setPods(const std::vector<PodAddRequest>& pods) {
    std::map<std::string, PodRecord> records;
    for (const PodAddRequest& p : pods) records[p.container_id] = PodRecord{p, 1};
    registrar_->onPodsChanged(records);
  }
  // Completes the oldest call; returns "METHOD name".
  std::string complete(const Status& result) {
    if (calls_->empty()) return "(no call)";
    FakeRegistrationClient::Call call = std::move(calls_->front());
    calls_->pop_front();
    call.done(result);
    return call.method + " " + call.name;
  }
  // Runs the loop until a call is pending (backoff timers fire).
  bool waitForCall() {
    for (int i = 0; i < 200 && calls_->empty(); ++i) event_base_loop(base_, EVLOOP_ONCE);
    return !calls_->empty();
  }
  uint64_t stat(const std::string& name) {
    for (const auto& e : stats_.snapshot().numbers) {
      if (e.name == "rdmesh.node.registrar." + name) return e.value;
    }
    return ~0ull;
  }

  event_base* base_ = event_base_new();
  StatsStore stats_;
  std::shared_ptr<std::deque<FakeRegistrationClient::Call>> calls_;
  std::unique_ptr<WorkloadRegistrar> registrar_;
};

TEST_F(RegistrarTest, RegistersPodsRetriesWhileDownAndDeletesAfterPodDel) {
  setPods({pod("c-a", "a", "10.0.0.1"), pod("c-nameless", "", "10.0.0.9")});
  ASSERT_EQ(calls_->size(), 1u) << "the unnamed pod is not registered";
  EXPECT_EQ(stat("unnamed_pods"), 1u);
  // rdmesh-xds down: the call fails; it is retried after the backoff, not before.
  EXPECT_EQ(complete(unavailable("connection refused")), "PUT shop/a");
  EXPECT_TRUE(calls_->empty());
  EXPECT_EQ(stat("failures_total"), 1u);
  ASSERT_TRUE(waitForCall());
  EXPECT_EQ(complete(Status::ok()), "PUT shop/a");
  EXPECT_EQ(stat("registered"), 1u);
  EXPECT_EQ(stat("pending"), 0u);

  // pod_del: the Workload is deleted.
  setPods({});
  EXPECT_EQ(complete(Status::ok()), "DELETE shop/a");
  EXPECT_EQ(stat("registered"), 0u);
  EXPECT_TRUE(calls_->empty());
}

TEST_F(RegistrarTest, ReconcilesAgainstWhatTheServerHas) {
  setPods({pod("c-a", "a", "10.0.0.1")});
  EXPECT_EQ(complete(Status::ok()), "PUT shop/a");
  // A restarted rdmesh-xds lost a, still has z (registered by this agent before a restart, its
  // pod gone since) and has y from another source (not ours to delete) and x on another node.
  xds::Workload y = owned("y", "10.0.0.25");
  y.labels.erase(kRegisteredByLabel);
  xds::Workload x = owned("x", "10.0.0.24");
  x.node = "node-c";
  registrar_->onServerWorkloads({owned("z", "10.0.0.26"), y, x});
  std::set<std::string> done;
  done.insert(complete(Status::ok()));
  done.insert(complete(Status::ok()));
  EXPECT_EQ(done, (std::set<std::string>{"PUT shop/a", "DELETE shop/z"}));
  EXPECT_TRUE(calls_->empty());
  // In step now: a second identical snapshot from the server changes nothing.
  registrar_->onServerWorkloads(
      {*workloadOf(pod("c-a", "a", "10.0.0.1"), "node-b", "cluster.local"), y, x});
  EXPECT_TRUE(calls_->empty());
}

TEST_F(RegistrarTest, ARefusedWorkloadIsNotRetriedUntilThePodChanges) {
  setPods({pod("c-a", "a", "10.0.0.1")});
  EXPECT_EQ(complete(invalidArgument("HTTP 400: identity")), "PUT shop/a");
  EXPECT_EQ(stat("refused_total"), 1u);
  registrar_->onServerWorkloads({});
  EXPECT_TRUE(calls_->empty());
  setPods({pod("c-a", "a", "10.0.0.2")});
  EXPECT_EQ(complete(Status::ok()), "PUT shop/a");
}

TEST_F(RegistrarTest, AChangeDuringACallIsSentAfterIt) {
  setPods({pod("c-a", "a", "10.0.0.1")});
  ASSERT_EQ(calls_->size(), 1u);
  setPods({});  // pod_del while the PUT is in flight
  EXPECT_EQ(calls_->size(), 1u) << "one call per name at a time";
  EXPECT_EQ(complete(Status::ok()), "PUT shop/a");
  EXPECT_EQ(complete(Status::ok()), "DELETE shop/a");
}

// ---------------------------------------------------------------------------- Node -> peers

xds::Node node(const std::string& name, const std::string& session_address) {
  xds::Node n;
  n.name = name;
  n.addresses = {session_address.substr(0, session_address.rfind(':'))};
  n.session_address = session_address;
  return n;
}

TEST(PeersFromNodesTest, EveryOtherNodeSortedByName) {
  xds::Node verbs = node("node-c", "10.77.1.3:15008");
  verbs.fabric = xds::FabricKind::kVerbs;
  verbs.rdma = xds::RdmaInfo{"fe80::5054:ff:fe12:3456"};
  auto peers = peersFromNodes(
      {verbs, node("node-a", "10.77.1.1:15008"), node("node-b", "10.77.1.2:15008")}, "node-b");
  ASSERT_TRUE(peers) << peers.status().message();
  ASSERT_EQ(peers->size(), 2u);
  EXPECT_EQ((*peers)[0].name, "node-a");
  EXPECT_EQ((*peers)[0].session_address, "10.77.1.1:15008");
  EXPECT_EQ((*peers)[0].fabric, PeerFabric::kTcp);
  EXPECT_EQ((*peers)[1].name, "node-c");
  EXPECT_EQ((*peers)[1].fabric, PeerFabric::kVerbs);
  EXPECT_EQ((*peers)[1].rdma_gid, "fe80::5054:ff:fe12:3456");
  EXPECT_EQ(toJson((*peers)[1])["fabric"], "verbs");
}

TEST(PeersFromNodesTest, UnusableAddressesAreRefusedWithTheReason) {
  auto error = [](std::vector<xds::Resource> nodes) {
    auto peers = peersFromNodes(nodes, "node-b");
    return peers ? std::string("accepted") : peers.status().message();
  };
  EXPECT_EQ(error({node("node-a", "0.0.0.0:15008")}),
            "node node-a addresses[0]: 0.0.0.0 is unspecified");
  xds::Node multicast = node("node-a", "10.77.1.1:15008");
  multicast.session_address = "239.1.1.1:15008";
  EXPECT_EQ(error({multicast}), "node node-a session_address: 239.1.1.1:15008 is multicast");
  xds::Node v6 = node("node-a", "[::]:15008");
  v6.addresses = {"fd00::1"};
  EXPECT_EQ(error({v6}), "node node-a session_address: [::]:15008 is unspecified");
  EXPECT_EQ(error({node("node-a", "10.77.1.1:15008"), node("node-c", "10.77.1.1:15008")}),
            "node node-c session_address: 10.77.1.1:15008 is also node node-a's");
  xds::Node bad_gid = node("node-a", "10.77.1.1:15008");
  bad_gid.rdma = xds::RdmaInfo{"not-a-gid"};
  EXPECT_EQ(error({bad_gid}),
            "node node-a rdma.gid: 'not-a-gid' is not a GID (16 bytes, IPv6 notation)");
  // This node's own entry is never a peer, whatever it says.
  EXPECT_EQ(error({node("node-b", "0.0.0.0:15008")}), "accepted");
}

}  // namespace
}  // namespace rdmesh::node
