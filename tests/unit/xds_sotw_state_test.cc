// The client's SotW rules (docs/xds.md): what opens a stream, ACK and NACK, last good version.
#include <gtest/gtest.h>

#include "rdmesh/xds/sotw_state.h"

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

SotwState makeState() {
  return SotwState(identity(), {{ResourceType::kNode, {}},
                                {ResourceType::kCluster, {"outbound|80||db.other"}},
                                {ResourceType::kListener, {}}});
}

DiscoveryResponse response(ResourceType type, std::string version, std::string nonce) {
  DiscoveryResponse r;
  r.type = type;
  r.version_info = std::move(version);
  r.nonce = std::move(nonce);
  return r;
}

TEST(SotwState, FirstStreamSendsOneRequestPerTypeIdentityOnlyOnTheFirst) {
  SotwState state = makeState();
  std::vector<DiscoveryRequest> requests = state.onStreamOpen();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].type, ResourceType::kNode);
  ASSERT_TRUE(requests[0].node.has_value());
  EXPECT_EQ(*requests[0].node, identity());
  EXPECT_FALSE(requests[1].node.has_value());
  EXPECT_EQ(requests[1].resource_names, std::vector<std::string>{"outbound|80||db.other"});
  for (const DiscoveryRequest& r : requests) {
    EXPECT_EQ(r.version_info, "");
    EXPECT_EQ(r.response_nonce, "");
    EXPECT_FALSE(r.error_detail.has_value());
  }
}

TEST(SotwState, AckCarriesTheNewVersionAndTheResponseNonce) {
  SotwState state = makeState();
  DiscoveryRequest ack = state.onResponse(response(ResourceType::kCluster, "v1", "n1"), {});
  EXPECT_EQ(ack.type, ResourceType::kCluster);
  EXPECT_EQ(ack.version_info, "v1");
  EXPECT_EQ(ack.response_nonce, "n1");
  EXPECT_FALSE(ack.error_detail.has_value());
  EXPECT_EQ(ack.resource_names, std::vector<std::string>{"outbound|80||db.other"});
  EXPECT_EQ(state.status()[1].acked_version, "v1");
  EXPECT_EQ(state.status()[1].acks, 1u);
}

TEST(SotwState, NackKeepsTheLastGoodVersionAndSaysWhy) {
  SotwState state = makeState();
  state.onResponse(response(ResourceType::kListener, "v1", "n1"), {});
  DiscoveryRequest nack = state.onResponse(response(ResourceType::kListener, "v2", "n2"),
                                           invalidArgument("listener x: unknown cluster 'y'"));
  EXPECT_EQ(nack.version_info, "v1");
  EXPECT_EQ(nack.response_nonce, "n2");
  ASSERT_TRUE(nack.error_detail.has_value());
  EXPECT_EQ(nack.error_detail->code, kNackCode);
  EXPECT_EQ(nack.error_detail->message, "listener x: unknown cluster 'y'");
  const TypeStatus& s = state.status()[2];
  EXPECT_EQ(s.acked_version, "v1");
  EXPECT_EQ(s.rejected_version, "v2");
  EXPECT_EQ(s.last_nonce, "n2");
  EXPECT_EQ(s.nacks, 1u);
  EXPECT_EQ(s.updates, 2u);

  // A later good version is ACKed normally.
  DiscoveryRequest ack = state.onResponse(response(ResourceType::kListener, "v3", "n3"), {});
  EXPECT_EQ(ack.version_info, "v3");
  EXPECT_FALSE(ack.error_detail.has_value());
}

TEST(SotwState, FirstResponseRejectedNacksWithEmptyVersion) {
  SotwState state = makeState();
  DiscoveryRequest nack =
      state.onResponse(response(ResourceType::kNode, "v1", "n1"), invalidArgument("bad"));
  EXPECT_EQ(nack.version_info, "");
  EXPECT_TRUE(nack.error_detail.has_value());
}

TEST(SotwState, ReconnectNamesTheVersionsInForce) {
  SotwState state = makeState();
  state.onResponse(response(ResourceType::kNode, "n-7", "a"), {});
  state.onResponse(response(ResourceType::kCluster, "c-3", "b"), {});
  state.onResponse(response(ResourceType::kCluster, "c-4", "c"), invalidArgument("no"));
  std::vector<DiscoveryRequest> requests = state.onStreamOpen();
  EXPECT_EQ(requests[0].version_info, "n-7");
  EXPECT_EQ(requests[1].version_info, "c-3");  // not the rejected c-4
  EXPECT_EQ(requests[2].version_info, "");
  EXPECT_TRUE(requests[0].node.has_value());  // a new stream introduces itself again
}

TEST(SotwState, UnsubscribedTypeIsNackedWithoutTouchingState) {
  SotwState state = makeState();
  EXPECT_FALSE(state.isSubscribed(ResourceType::kWorkload));
  DiscoveryRequest nack = state.onResponse(response(ResourceType::kWorkload, "w1", "n"), {});
  ASSERT_TRUE(nack.error_detail.has_value());
  EXPECT_EQ(nack.response_nonce, "n");
  for (const TypeStatus& s : state.status()) EXPECT_EQ(s.updates, 0u);
}

TEST(SotwState, UnreadableResponseIsNackedAndLongReasonsAreBounded) {
  SotwState state = makeState();
  state.onResponse(response(ResourceType::kCluster, "good", "1"), {});
  std::string why(10000, 'x');
  DiscoveryRequest nack = state.onUnreadableResponse(ResourceType::kCluster, "2", why);
  EXPECT_EQ(nack.version_info, "good");
  EXPECT_EQ(nack.response_nonce, "2");
  ASSERT_TRUE(nack.error_detail.has_value());
  EXPECT_LE(nack.error_detail->message.size(), 1024u);
  // What goes on the wire parses back (the server would accept this NACK).
  auto parsed = parseDiscoveryRequest(serialize(nack));
  ASSERT_TRUE(parsed) << parsed.status().message();
  EXPECT_EQ(*parsed, nack);
}

}  // namespace
}  // namespace rdmesh::xds
