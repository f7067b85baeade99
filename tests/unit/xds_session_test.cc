// Derivation, scoping, versioning, diffing and ACK/NACK tracking of a client session, driven
// directly with request lines (no transport).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "catalog.h"
#include "client_session.h"
#include "registry_file.h"
#include "scope.h"

namespace rdmesh::xds_server {
namespace {

using nlohmann::json;
using xds::ResourceType;

constexpr const char* kRegistry = R"(
nodes:
  - {name: node-a, addresses: [10.0.0.1], fabric: tcp, session_address: "10.0.0.1:15008"}
  - {name: node-b, addresses: [10.0.0.2], fabric: verbs, session_address: "10.0.0.2:15008"}
  - {name: node-c, addresses: [10.0.0.3], fabric: tcp, session_address: "10.0.0.3:15008"}
workloads:
  - {namespace: shop, pod: web-1, ip: [10.1.0.1], node: node-a, service_account: web, ports: [8080], labels: {app: web}}
  - {namespace: shop, pod: cart-1, ip: [10.1.0.2], node: node-b, service_account: cart, ports: [9090, 9091], labels: {app: cart}}
  - {namespace: data, pod: db-1, ip: [10.2.0.1], node: node-c, service_account: db, ports: [5432], labels: {app: db}}
services:
  - {name: shop/cart, cluster_ips: [10.96.0.1], ports: [{port: 80, target_port: 9090}], selector: {app: cart}}
  - {name: data/db, cluster_ips: [10.96.0.2], ports: [{port: 5432}], selector: {app: db}}
  - {name: data/manual, ports: [{port: 1}]}
)";

RegistrySnapshot registry(const std::string& yaml = kRegistry) {
  auto change = parseRegistryFile(yaml, "test.yaml");
  EXPECT_TRUE(change.isOk()) << change.status().message();
  RegistrySnapshot snapshot;
  applyChange(*change, snapshot);
  snapshot.revision = 1;
  return snapshot;
}

struct CountingObserver : SessionObserver {
  int pushes = 0, acks = 0, nacks = 0;
  void onPush(ResourceType) override { ++pushes; }
  void onAck(ResourceType, Clock::duration) override { ++acks; }
  void onNack(ResourceType) override { ++nacks; }
};

std::string url(ResourceType type) {
  return std::string(xds::typeUrl(type));
}

json sidecarNode() {
  return {{"id", "web-1.shop"},
          {"role", "sidecar"},
          {"node_name", "node-a"},
          {"workload", "shop/web-1"},
          {"namespace", "shop"}};
}

std::vector<std::string> names(const json& response) {
  std::vector<std::string> out;
  for (const auto& r : response["resources"]) {
    out.push_back(r.contains("resource") ? r["name"] : r["name"]);
  }
  return out;
}

TEST(Derivation, ClustersFromServicesAndWorkloads) {
  auto clusters = deriveClusters(registry());
  ASSERT_EQ(clusters.size(), 3u);
  // Sorted by service name: data/db, data/manual, shop/cart.
  EXPECT_EQ(clusters[0].name, "outbound|5432||db.data");
  ASSERT_EQ(clusters[0].endpoints.size(), 1u);
  EXPECT_EQ(clusters[0].endpoints[0].address, "10.2.0.1:5432");
  EXPECT_EQ(clusters[0].endpoints[0].node, "node-c");
  EXPECT_EQ(clusters[0].service_addresses, std::vector<std::string>{"10.96.0.2:5432"});
  EXPECT_TRUE(clusters[1].endpoints.empty()) << "no selector selects nothing";
  EXPECT_EQ(clusters[2].name, "outbound|80||cart.shop");
  ASSERT_EQ(clusters[2].endpoints.size(), 1u);
  EXPECT_EQ(clusters[2].endpoints[0].address, "10.1.0.2:9090");
  EXPECT_EQ(clusters[2].endpoints[0].workload, "shop/cart-1");
}

TEST(Derivation, ListenersPerWorkloadPort) {
  auto snapshot = registry();
  auto listeners = deriveListeners(snapshot.workloads.at("shop/cart-1"));
  ASSERT_EQ(listeners.size(), 2u);
  EXPECT_EQ(listeners[0].name, "inbound|9090");
  EXPECT_EQ(listeners[0].target, "127.0.0.1:9090");
  EXPECT_EQ(captureListener().address, "127.0.0.1:15001");
}

TEST(Derivation, DerivedResourcesPassTheCodec) {
  auto catalog = buildCatalog(registry());
  for (ResourceType type : xds::kAllResourceTypes) {
    for (const auto& [name, entry] : catalog->of(type)) {
      auto parsed = xds::parseResourceText(type, entry.json);
      EXPECT_TRUE(parsed.isOk()) << entry.json << ": " << parsed.status().message();
    }
  }
}

std::vector<std::string> scopeOf(const Catalog& catalog, const xds::ClientIdentity& client,
                                 ResourceType type, std::vector<std::string> names = {},
                                 std::vector<std::string> clusters = {}) {
  return resourcesInScope(
      catalog, {.client = client, .type = type, .names = names, .explicit_clusters = clusters});
}

TEST(Scoping, SidecarGetsItsNamespaceAndWhatItNames) {
  auto catalog = buildCatalog(registry());
  xds::ClientIdentity web{.id = "w",
                          .role = xds::ClientRole::kSidecar,
                          .node_name = "node-a",
                          .workload = "shop/web-1",
                          .namespace_name = "shop"};
  using V = std::vector<std::string>;
  EXPECT_EQ(scopeOf(*catalog, web, ResourceType::kCluster), V{"outbound|80||cart.shop"});
  EXPECT_EQ(scopeOf(*catalog, web, ResourceType::kNode), V{"node-b"});
  EXPECT_EQ(scopeOf(*catalog, web, ResourceType::kService), V{"shop/cart"});
  EXPECT_EQ(scopeOf(*catalog, web, ResourceType::kWorkload), V{"shop/web-1"});
  EXPECT_EQ(scopeOf(*catalog, web, ResourceType::kListener), (V{"capture", "inbound|8080"}));
  // Naming a cluster of another namespace widens clusters, nodes and services.
  V db{"outbound|5432||db.data", "outbound|1||nonexistent.x"};
  EXPECT_EQ(scopeOf(*catalog, web, ResourceType::kCluster, db, db),
            (V{"outbound|5432||db.data", "outbound|80||cart.shop"}));
  EXPECT_EQ(scopeOf(*catalog, web, ResourceType::kNode, {}, db), (V{"node-b", "node-c"}));
  EXPECT_EQ(scopeOf(*catalog, web, ResourceType::kService, {}, db), (V{"data/db", "shop/cart"}));
  // Explicit names narrow other types.
  EXPECT_EQ(scopeOf(*catalog, web, ResourceType::kListener, {"capture"}), V{"capture"});
  EXPECT_EQ(scopeOf(*catalog, web, ResourceType::kNode, {"node-c"}), V{});
}

TEST(Scoping, NodeAgentGetsAllNodesAndItsWorkloads) {
  auto catalog = buildCatalog(registry());
  xds::ClientIdentity agent{.id = "a", .role = xds::ClientRole::kNode, .node_name = "node-b"};
  using V = std::vector<std::string>;
  EXPECT_EQ(scopeOf(*catalog, agent, ResourceType::kNode), (V{"node-a", "node-b", "node-c"}));
  EXPECT_EQ(scopeOf(*catalog, agent, ResourceType::kWorkload), V{"shop/cart-1"});
  EXPECT_EQ(scopeOf(*catalog, agent, ResourceType::kCluster), V{});
  EXPECT_EQ(scopeOf(*catalog, agent, ResourceType::kListener), V{});
}

class SessionTest : public ::testing::Test {
 protected:
  json request(ResourceType type, const std::string& version, const std::string& nonce,
               bool with_node = false) {
    json r = {{"type_url", url(type)}, {"version_info", version}, {"response_nonce", nonce}};
    if (with_node) r["node"] = sidecarNode();
    return r;
  }
  void send(ClientSession& session, const json& r) {
    Status status = session.handleRequest(r.dump(), Clock::now());
    ASSERT_TRUE(status.isOk()) << status.message();
  }
  json next(ClientSession& session) {
    std::string line = session.nextResponse().text();
    if (line.empty()) return nullptr;
    EXPECT_EQ(line.back(), '\n');
    return json::parse(line);
  }

  CountingObserver observer;
};

TEST_F(SessionTest, SotwSubscribeAckNoResendOnSameContent) {
  ClientSession session(StreamMode::kStateOfTheWorld, buildCatalog(registry()), observer);
  send(session, request(ResourceType::kCluster, "", "", true));
  json response = next(session);
  ASSERT_FALSE(response.is_null());
  EXPECT_EQ(response["type_url"], url(ResourceType::kCluster));
  EXPECT_EQ(names(response), std::vector<std::string>{"outbound|80||cart.shop"});
  // The response parses with the client's codec.
  EXPECT_TRUE(xds::parseDiscoveryResponse(response.dump()).isOk());
  EXPECT_TRUE(next(session).is_null());

  send(session, request(ResourceType::kCluster, response["version_info"], response["nonce"]));
  EXPECT_EQ(observer.acks, 1);
  // A new revision with identical content for this client: nothing to send.
  auto snapshot = registry();
  snapshot.revision = 2;
  snapshot.workloads.at("data/db-1").labels["extra"] = "x";  // outside this client's scope
  session.updateCatalog(buildCatalog(snapshot), Clock::now());
  EXPECT_TRUE(next(session).is_null());
  EXPECT_EQ(session.status()["types"][url(ResourceType::kCluster)]["acked_version"],
            response["version_info"]);
}

TEST_F(SessionTest, SotwNackIsRecordedAndThatVersionNotResent) {
  auto snapshot = registry();
  ClientSession session(StreamMode::kStateOfTheWorld, buildCatalog(snapshot), observer);
  send(session, request(ResourceType::kCluster, "", "", true));
  json first = next(session);
  send(session, request(ResourceType::kCluster, first["version_info"], first["nonce"]));

  // Change: new endpoint for cart.
  snapshot.revision = 2;
  snapshot.workloads["shop/cart-2"] = snapshot.workloads.at("shop/cart-1");
  auto& cart2 = snapshot.workloads["shop/cart-2"];
  cart2.name = "shop/cart-2";
  cart2.pod = "cart-2";
  cart2.ips = {"10.1.0.3"};
  session.updateCatalog(buildCatalog(snapshot), Clock::now());
  json second = next(session);
  ASSERT_FALSE(second.is_null());
  EXPECT_NE(second["version_info"], first["version_info"]);
  json nack = request(ResourceType::kCluster, first["version_info"], second["nonce"]);
  nack["error_detail"] = {{"code", 3}, {"message", "endpoint 10.1.0.3 unreachable"}};
  send(session, nack);
  EXPECT_EQ(observer.nacks, 1);
  json status = session.status()["types"][url(ResourceType::kCluster)];
  EXPECT_EQ(status["acked_version"], first["version_info"]);
  EXPECT_EQ(status["last_nack"]["version"], second["version_info"]);
  EXPECT_EQ(status["last_nack"]["message"], "endpoint 10.1.0.3 unreachable");

  // Same content again (a revision that changes nothing for this client): not re-sent.
  snapshot.revision = 3;
  session.updateCatalog(buildCatalog(snapshot), Clock::now());
  EXPECT_TRUE(next(session).is_null());

  // A real change produces a new version, which is sent.
  snapshot.revision = 4;
  snapshot.workloads.erase("shop/cart-2");
  snapshot.services.at("shop/cart").cluster_ips = {"10.96.0.9"};
  session.updateCatalog(buildCatalog(snapshot), Clock::now());
  json third = next(session);
  ASSERT_FALSE(third.is_null());
  EXPECT_NE(third["version_info"], second["version_info"]);
  EXPECT_NE(third["version_info"], first["version_info"]);
}

TEST_F(SessionTest, SameScopeSharesOneBody) {
  auto catalog = buildCatalog(registry());
  ClientSession first(StreamMode::kStateOfTheWorld, catalog, observer);
  ClientSession second(StreamMode::kStateOfTheWorld, catalog, observer);
  json node = sidecarNode();
  send(first, {{"type_url", url(ResourceType::kCluster)}, {"node", node}});
  node["id"] = "another-sidecar";
  send(second, {{"type_url", url(ResourceType::kCluster)}, {"node", node}});
  ResponseLine a = first.nextResponse();
  ResponseLine b = second.nextResponse();
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a.body.get(), b.body.get()) << "one copy of the resources for both clients";
  EXPECT_EQ(a.text(), b.text());
}

TEST_F(SessionTest, SotwStaleNonceIsIgnored) {
  auto snapshot = registry();
  ClientSession session(StreamMode::kStateOfTheWorld, buildCatalog(snapshot), observer);
  send(session, request(ResourceType::kWorkload, "", "", true));
  json first = next(session);
  snapshot.revision = 2;
  snapshot.workloads.at("shop/web-1").labels["v"] = "2";
  session.updateCatalog(buildCatalog(snapshot), Clock::now());
  json second = next(session);
  ASSERT_FALSE(second.is_null());
  // An ACK of the first response arriving after the second was sent changes nothing.
  send(session, request(ResourceType::kWorkload, first["version_info"], first["nonce"]));
  EXPECT_EQ(observer.acks, 0);
  EXPECT_EQ(session.status()["types"][url(ResourceType::kWorkload)]["acked_version"], "");
}

TEST_F(SessionTest, ProtocolErrors) {
  ClientSession session(StreamMode::kStateOfTheWorld, buildCatalog(registry()), observer);
  EXPECT_EQ(
      session.handleRequest(request(ResourceType::kNode, "", "").dump(), Clock::now()).message(),
      "node: required in the first request of a stream");
  EXPECT_FALSE(session.handleRequest("{garbage", Clock::now()).isOk());
  send(session, request(ResourceType::kNode, "", "", true));
  json other = request(ResourceType::kNode, "", "", true);
  other["node"]["id"] = "someone-else";
  EXPECT_EQ(session.handleRequest(other.dump(), Clock::now()).message(),
            "node: differs from the identity of the first request");
}

TEST_F(SessionTest, DeltaSendsOnlyChangesAndRemovals) {
  auto snapshot = registry();
  ClientSession session(StreamMode::kDelta, buildCatalog(snapshot), observer);
  json subscribe = {{"node", {{"id", "agent-b"}, {"role", "node"}, {"node_name", "node-b"}}},
                    {"type_url", url(ResourceType::kNode)}};
  send(session, subscribe);
  json first = next(session);
  ASSERT_FALSE(first.is_null());
  EXPECT_EQ(names(first), (std::vector<std::string>{"node-a", "node-b", "node-c"}));
  EXPECT_TRUE(xds::parseDeltaDiscoveryResponse(first.dump()).isOk()) << first.dump();
  send(session, {{"type_url", url(ResourceType::kNode)}, {"response_nonce", first["nonce"]}});
  EXPECT_EQ(observer.acks, 1);

  snapshot.revision = 2;
  snapshot.nodes.erase("node-c");
  snapshot.nodes.at("node-a").addresses = {"10.0.0.11"};
  session.updateCatalog(buildCatalog(snapshot), Clock::now());
  json second = next(session);
  ASSERT_FALSE(second.is_null());
  EXPECT_EQ(names(second), std::vector<std::string>{"node-a"});
  EXPECT_EQ(second["removed_resources"], json::array({"node-c"}));
  EXPECT_TRUE(next(session).is_null());
}

TEST_F(SessionTest, DeltaReconnectSkipsWhatTheClientHas) {
  auto catalog = buildCatalog(registry());
  const TypeCatalog& nodes = catalog->of(ResourceType::kNode);
  ClientSession session(StreamMode::kDelta, catalog, observer);
  json subscribe = {
      {"node", {{"id", "agent-b"}, {"role", "node"}, {"node_name", "node-b"}}},
      {"type_url", url(ResourceType::kNode)},
      {"resource_names_subscribe", {"*"}},
      {"initial_resource_versions",
       {{"node-a", nodes.at("node-a").version}, {"node-b", "stale"}, {"node-gone", "1"}}}};
  send(session, subscribe);
  json response = next(session);
  ASSERT_FALSE(response.is_null());
  EXPECT_EQ(names(response), (std::vector<std::string>{"node-b", "node-c"}));
  EXPECT_EQ(response["removed_resources"], json::array({"node-gone"}));
}

TEST_F(SessionTest, DeltaFirstResponseEvenWhenUpToDate) {
  auto catalog = buildCatalog(registry());
  ClientSession session(StreamMode::kDelta, catalog, observer);
  json versions = json::object();
  for (const auto& [name, entry] : catalog->of(ResourceType::kNode)) versions[name] = entry.version;
  send(session, {{"node", {{"id", "agent-b"}, {"role", "node"}, {"node_name", "node-b"}}},
                 {"type_url", url(ResourceType::kNode)},
                 {"initial_resource_versions", versions}});
  json response = next(session);
  ASSERT_FALSE(response.is_null());
  EXPECT_TRUE(response["resources"].empty());
  EXPECT_TRUE(response["removed_resources"].empty());
  EXPECT_TRUE(next(session).is_null());
}

TEST_F(SessionTest, DeltaExplicitSubscriptionAndUnsubscribe) {
  ClientSession session(StreamMode::kDelta, buildCatalog(registry()), observer);
  send(session, {{"node", sidecarNode()},
                 {"type_url", url(ResourceType::kCluster)},
                 {"resource_names_subscribe", {"outbound|5432||db.data"}}});
  json first = next(session);
  // Explicit, not wildcard: only what was named (which the sidecar scope allows).
  EXPECT_EQ(names(first), std::vector<std::string>{"outbound|5432||db.data"});
  send(session, {{"type_url", url(ResourceType::kCluster)},
                 {"response_nonce", first["nonce"]},
                 {"resource_names_unsubscribe", {"outbound|5432||db.data"}},
                 {"resource_names_subscribe", {"*"}}});
  json second = next(session);
  ASSERT_FALSE(second.is_null());
  EXPECT_EQ(names(second), std::vector<std::string>{"outbound|80||cart.shop"});
}

}  // namespace
}  // namespace rdmesh::xds_server
