// The client's delta rules (docs/xds.md): wildcard and named subscriptions, the candidate set a
// response would leave, commit only on ACK, initial_resource_versions on reconnect.
#include <gtest/gtest.h>

#include "rdmesh/xds/delta_state.h"

namespace rdmesh::xds {
namespace {

ClientIdentity identity() {
  ClientIdentity id;
  id.id = "sidecar~default/web-0~node-a";
  id.node_name = "node-a";
  id.workload = "default/web-0";
  id.namespace_name = "default";
  return id;
}

Cluster cluster(const std::string& name, const std::string& address) {
  Cluster c;
  c.name = name;
  c.endpoints.push_back({"node-b", address, "default/db-0"});
  return c;
}

DeltaDiscoveryResponse delta(std::string version, std::string nonce, std::vector<Cluster> updated,
                             std::vector<std::string> removed = {}) {
  DeltaDiscoveryResponse r;
  r.type = ResourceType::kCluster;
  r.system_version_info = std::move(version);
  r.nonce = std::move(nonce);
  for (Cluster& c : updated) {
    std::string name = c.name;
    r.resources.push_back({name, "v-" + name, Resource(std::move(c))});
  }
  r.removed_resources = std::move(removed);
  return r;
}

std::vector<std::string> names(const std::vector<Resource>& resources) {
  std::vector<std::string> out;
  for (const Resource& r : resources) out.push_back(nameOf(r));
  return out;
}

TEST(DeltaState, OpensWithWildcardAndNamedSubscriptions) {
  DeltaState state(
      identity(), {{ResourceType::kNode, {}}, {ResourceType::kCluster, {"outbound|80||db.other"}}});
  auto requests = state.onStreamOpen();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_TRUE(requests[0].node.has_value());
  EXPECT_TRUE(requests[0].resource_names_subscribe.empty());  // wildcard
  EXPECT_FALSE(requests[1].node.has_value());
  EXPECT_EQ(requests[1].resource_names_subscribe,
            std::vector<std::string>{"outbound|80||db.other"});
  EXPECT_TRUE(requests[1].initial_resource_versions.empty());
}

TEST(DeltaState, CandidateIsTheWholeSetAndIsCommittedOnlyOnAck) {
  DeltaState state(identity(), {{ResourceType::kCluster, {}}});
  auto first = delta("1", "n1", {cluster("a", "10.0.0.1:80"), cluster("b", "10.0.0.2:80")});
  auto candidate = state.candidate(first);
  ASSERT_TRUE(candidate);
  EXPECT_EQ(names(*candidate), (std::vector<std::string>{"a", "b"}));
  DeltaDiscoveryRequest ack = state.onResponse(first, {});
  EXPECT_EQ(ack.response_nonce, "n1");
  EXPECT_FALSE(ack.error_detail.has_value());

  // Update b, remove a: the handler sees {b, c}; rejected, so {a, b} stays.
  auto second = delta("2", "n2", {cluster("b", "10.0.0.3:80"), cluster("c", "10.0.0.4:80")}, {"a"});
  candidate = state.candidate(second);
  ASSERT_TRUE(candidate);
  EXPECT_EQ(names(*candidate), (std::vector<std::string>{"b", "c"}));
  DeltaDiscoveryRequest nack = state.onResponse(second, invalidArgument("nope"));
  ASSERT_TRUE(nack.error_detail.has_value());
  EXPECT_EQ(nack.error_detail->message, "nope");
  EXPECT_EQ(nack.response_nonce, "n2");
  EXPECT_EQ(state.status()[0].acked_version, "1");
  EXPECT_EQ(state.status()[0].rejected_version, "2");

  // A later response applies on top of {a, b}, not of the rejected set.
  auto third = delta("3", "n3", {}, {"b"});
  candidate = state.candidate(third);
  ASSERT_TRUE(candidate);
  EXPECT_EQ(names(*candidate), std::vector<std::string>{"a"});
}

TEST(DeltaState, ReconnectNamesTheResourcesInForce) {
  DeltaState state(identity(), {{ResourceType::kCluster, {}}});
  state.onResponse(delta("1", "n1", {cluster("a", "10.0.0.1:80")}), {});
  auto requests = state.onStreamOpen();
  ASSERT_EQ(requests[0].initial_resource_versions.size(), 1u);
  EXPECT_EQ(requests[0].initial_resource_versions.at("a"), "v-a");
}

TEST(DeltaState, ResourceUnderAnotherNameOrTypeIsRefused) {
  DeltaState state(identity(), {{ResourceType::kCluster, {}}});
  auto response = delta("1", "n1", {cluster("a", "10.0.0.1:80")});
  response.resources[0].name = "b";
  EXPECT_NE(state.candidate(response).status().message().find("carries \"a\""), std::string::npos);
  Node node;
  node.name = "a";
  response.resources[0] = {"a", "1", Resource(node)};
  EXPECT_NE(state.candidate(response).status().message().find("is not a Cluster"),
            std::string::npos);
  // The NACK the client sends for it parses back.
  DeltaDiscoveryRequest nack = state.onResponse(response, state.candidate(response).status());
  auto parsed = parseDeltaDiscoveryRequest(serialize(nack));
  ASSERT_TRUE(parsed) << parsed.status().message();
  EXPECT_EQ(*parsed, nack);
}

}  // namespace
}  // namespace rdmesh::xds
