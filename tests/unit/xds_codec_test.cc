// The xDS JSON codec: every message and resource round-trips, and bad input of every kind gets a
// clear InvalidArgument naming the field, never a crash.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "rdmesh/xds/messages.h"
#include "rdmesh/xds/resources.h"

namespace rdmesh::xds {
namespace {

using nlohmann::json;

Node sampleNode() {
  return {.name = "node-a",
          .addresses = {"10.0.0.1", "fd00::1"},
          .fabric = FabricKind::kVerbs,
          .session_address = "10.0.0.1:15008",
          .rdma = RdmaInfo{.gid = "fe80::1"}};
}

Workload sampleWorkload() {
  return {.name = "shop/cart-7d9",
          .namespace_name = "shop",
          .pod = "cart-7d9",
          .uid = "0b6c-11",
          .ips = {"10.1.0.5"},
          .node = "node-a",
          .identity = "spiffe://cluster.local/ns/shop/sa/cart",
          .service_account = "cart",
          .ports = {8080, 9090},
          .labels = {{"app", "cart"}}};
}

Service sampleService() {
  return {.name = "shop/cart",
          .namespace_name = "shop",
          .cluster_ips = {"10.96.0.10"},
          .ports = {{.name = "http", .port = 80, .target_port = 8080, .protocol = "TCP"}},
          .selector = {{"app", "cart"}}};
}

Cluster sampleCluster() {
  return {
      .name = "outbound|80||cart.shop",
      .lb_policy = LbPolicy::kLeastRequest,
      .connect_timeout_ms = 500,
      .service_addresses = {"10.96.0.10:80"},
      .endpoints = {{.node = "node-a", .address = "10.1.0.5:8080", .workload = "shop/cart-7d9"}}};
}

Listener sampleInbound() {
  return {.name = "inbound|8080",
          .direction = ListenerDirection::kInbound,
          .port = 8080,
          .target = "127.0.0.1:8080"};
}

std::string errorOf(const Status& status) {
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.message();
  return status.message();
}

template <typename T>
std::string requestError(const std::string& line) {
  if constexpr (std::is_same_v<T, DiscoveryRequest>) {
    auto result = parseDiscoveryRequest(line);
    EXPECT_FALSE(result.isOk()) << line;
    return result.isOk() ? "" : errorOf(result.status());
  } else {
    auto result = parseDeltaDiscoveryRequest(line);
    EXPECT_FALSE(result.isOk()) << line;
    return result.isOk() ? "" : errorOf(result.status());
  }
}

TEST(XdsCodec, ResourcesRoundTrip) {
  for (const Resource& resource :
       {Resource(sampleNode()), Resource(sampleWorkload()), Resource(sampleService()),
        Resource(sampleCluster()), Resource(sampleInbound()),
        Resource(Listener{.name = "capture",
        .direction = ListenerDirection::kCapture,
        .address = "127.0.0.1:15001"}),
        Resource(Listener{.name = "out",
        .direction = ListenerDirection::kOutbound,
        .address = "127.0.0.1:9000",
        .cluster = "outbound|80||cart.shop"})}) {
    std::string text = serialize(resource);
    auto parsed = parseResourceText(typeOf(resource), text);
    ASSERT_TRUE(parsed.isOk()) << parsed.status().message() << "\n" << text;
    EXPECT_EQ(*parsed, resource) << text;
    EXPECT_EQ(serialize(*parsed), text);
  }
}

TEST(XdsCodec, DiscoveryRequestRoundTrip) {
  DiscoveryRequest request{.version_info = "v1",
                           .node = ClientIdentity{.id = "sidecar~cart",
                                                  .role = ClientRole::kSidecar,
                                                  .node_name = "node-a",
                                                  .workload = "shop/cart-7d9",
                                                  .namespace_name = "shop",
                                                  .version = "0.1.0"},
                           .resource_names = {"outbound|80||db.data"},
                           .type = ResourceType::kCluster,
                           .response_nonce = "n7",
                           .error_detail = ErrorDetail{.code = 3, .message = "bad cluster"}};
  auto parsed = parseDiscoveryRequest(serialize(request));
  ASSERT_TRUE(parsed.isOk()) << parsed.status().message();
  EXPECT_EQ(*parsed, request);
}

TEST(XdsCodec, MinimalRequestTakesDefaults) {
  auto parsed = parseDiscoveryRequest(R"({"type_url":"type.rdmesh.io/rdmesh.v1.Node"})");
  ASSERT_TRUE(parsed.isOk()) << parsed.status().message();
  EXPECT_EQ(parsed->type, ResourceType::kNode);
  EXPECT_TRUE(parsed->version_info.empty());
  EXPECT_FALSE(parsed->node.has_value());
}

TEST(XdsCodec, DeltaMessagesRoundTrip) {
  DeltaDiscoveryRequest request{
      .node = ClientIdentity{.id = "agent-a", .role = ClientRole::kNode, .node_name = "node-a"},
      .type = ResourceType::kWorkload,
      .resource_names_subscribe = {"*"},
      .resource_names_unsubscribe = {"shop/old"},
      .initial_resource_versions = {{"shop/cart-7d9", "abc"}},
      .response_nonce = "",
      .error_detail = std::nullopt};
  auto parsed_request = parseDeltaDiscoveryRequest(serialize(request));
  ASSERT_TRUE(parsed_request.isOk()) << parsed_request.status().message();
  EXPECT_EQ(*parsed_request, request);

  DeltaDiscoveryResponse response{
      .system_version_info = "12",
      .type = ResourceType::kWorkload,
      .nonce = "3",
      .resources = {{.name = "shop/cart-7d9", .version = "abc", .resource = sampleWorkload()}},
      .removed_resources = {"shop/old"}};
  auto parsed_response = parseDeltaDiscoveryResponse(serialize(response));
  ASSERT_TRUE(parsed_response.isOk()) << parsed_response.status().message();
  EXPECT_EQ(*parsed_response, response);
}

TEST(XdsCodec, DiscoveryResponseRoundTrip) {
  DiscoveryResponse response{.version_info = "7f3a",
                             .resources = {sampleCluster()},
                             .type = ResourceType::kCluster,
                             .nonce = "1"};
  auto parsed = parseDiscoveryResponse(serialize(response));
  ASSERT_TRUE(parsed.isOk()) << parsed.status().message();
  EXPECT_EQ(*parsed, response);
}

TEST(XdsCodec, ResponseResourceOfWrongTypeIsRejected) {
  json response = {{"version_info", "1"},
                   {"nonce", "1"},
                   {"type_url", "type.rdmesh.io/rdmesh.v1.Cluster"},
                   {"resources", {toJson(sampleNode())}}};
  auto parsed = parseDiscoveryResponse(response.dump());
  ASSERT_FALSE(parsed.isOk());
  EXPECT_EQ(errorOf(parsed.status()).rfind("resources[0].", 0), 0u) << parsed.status().message();
}

TEST(XdsCodec, DeltaResourceNameMustMatch) {
  json response = {
      {"nonce", "1"},
      {"type_url", "type.rdmesh.io/rdmesh.v1.Node"},
      {"resources", {{{"name", "other"}, {"version", "1"}, {"resource", toJson(sampleNode())}}}}};
  auto parsed = parseDeltaDiscoveryResponse(response.dump());
  ASSERT_FALSE(parsed.isOk());
  EXPECT_NE(parsed.status().message().find("differs"), std::string::npos);
}

TEST(XdsCodec, RequestErrorsNameTheField) {
  const std::string node_url = R"("type_url":"type.rdmesh.io/rdmesh.v1.Node")";
  struct Case {
    std::string line;
    std::string expected_prefix;
  };
  for (
      const Case& c : std::initializer_list<Case>{
          {"", "DiscoveryRequest: not valid JSON"},
          {"{", "DiscoveryRequest: not valid JSON"},
          {"[]", "(message): expected an object, got a list"},
          {"{}", "type_url: missing (required)"},
          {R"({"type_url":7})", "type_url: expected string, got an integer"},
          {R"({"type_url":"type.googleapis.com/envoy.Cluster"})", "type_url: unknown type URL"},
          {"{" + node_url + R"(,"bogus":1})", "bogus: unknown field"},
          {"{" + node_url + R"(,"version_info":"a b"})", "version_info: expected a version"},
          {"{" + node_url + R"(,"resource_names":"x"})", "resource_names: expected list"},
          {"{" + node_url + R"(,"resource_names":[1]})", "resource_names[0]: expected string"},
          {"{" + node_url + R"(,"resource_names":[""]})", "resource_names[0]: expected a resource"},
          {"{" + node_url + R"(,"node":"me"})", "node: expected an object"},
          {"{" + node_url + R"(,"node":{"id":"x","role":"boss","node_name":"n"}})",
           "node.role: expected \"sidecar\" | \"node\""},
          {"{" + node_url + R"(,"node":{"id":"x","role":"sidecar","node_name":"n"}})",
           "node.workload: missing (required)"},
          {"{" + node_url +
               R"(,"node":{"id":"x","role":"sidecar","node_name":"n","workload":"a/p","namespace":"b"}})",
           "node.workload: must be in namespace \"b\""},
          {"{" + node_url + R"(,"node":{"id":"x","role":"node","node_name":"n","workload":"a/p"}})",
           "node.workload: only for role \"sidecar\""},
          {"{" + node_url + R"(,"node":{"id":"x","role":"node","node_name":"N_"}})",
           "node.node_name: expected a DNS-1123 node name"},
          {"{" + node_url + R"(,"error_detail":{"code":"x","message":"m"}})",
           "error_detail.code: expected integer"},
          {"{" + node_url + R"(,"error_detail":{"code":99999999999,"message":"m"}})",
           "error_detail.code: out of range"},
          {"{" + node_url + R"(,"error_detail":{"code":1}})",
           "error_detail.message: missing (required)"},
          {"{" + node_url + R"(,"response_nonce":1.5})",
           "response_nonce: expected string, got a fractional number"},
          {std::string(40, '[') + std::string(40, ']'), "DiscoveryRequest: JSON nested deeper"},
          {"{\"type_url\":\"\xff\"}", "DiscoveryRequest: not valid JSON"},
      }) {
    std::string error = requestError<DiscoveryRequest>(c.line);
    EXPECT_EQ(error.rfind(c.expected_prefix, 0), 0u)
        << "line: " << c.line << "\nerror: " << error << "\nexpected prefix: " << c.expected_prefix;
  }
}

TEST(XdsCodec, DeltaRequestErrorsNameTheField) {
  const std::string url = R"("type_url":"type.rdmesh.io/rdmesh.v1.Cluster")";
  struct Case {
    std::string line;
    std::string expected_prefix;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"{}", "type_url: missing"},
           {"{" + url + R"(,"resource_names":[]})", "resource_names: unknown field"},
           {"{" + url + R"(,"resource_names_subscribe":{}})",
            "resource_names_subscribe: expected list"},
           {"{" + url + R"(,"resource_names_unsubscribe":[null]})",
            "resource_names_unsubscribe[0]: expected string, got null"},
           {"{" + url + R"(,"initial_resource_versions":[]})",
            "initial_resource_versions: expected object of strings"},
           {"{" + url + R"(,"initial_resource_versions":{"a":1}})",
            "initial_resource_versions.a: expected string"},
           {"{" + url + R"(,"initial_resource_versions":{"":"1"}})",
            "initial_resource_versions.: bad key"},
       }) {
    std::string error = requestError<DeltaDiscoveryRequest>(c.line);
    EXPECT_EQ(error.rfind(c.expected_prefix, 0), 0u)
        << "line: " << c.line << "\nerror: " << error << "\nexpected prefix: " << c.expected_prefix;
  }
}

TEST(XdsCodec, OversizedMessageIsRejectedBeforeParsing) {
  std::string line = R"({"type_url":"type.rdmesh.io/rdmesh.v1.Node","version_info":")" +
                     std::string(kMaxMessageBytes, 'v') + "\"}";
  auto parsed = parseDiscoveryRequest(line);
  ASSERT_FALSE(parsed.isOk());
  EXPECT_NE(parsed.status().message().find("over the 4194304-byte limit"),
            std::string::npos);
}

TEST(XdsCodec, LongStringFieldIsRejected) {
  std::string line = R"({"type_url":"type.rdmesh.io/rdmesh.v1.Node","version_info":")" +
                     std::string(kMaxStringBytes + 1, 'v') + "\"}";
  EXPECT_EQ(requestError<DiscoveryRequest>(line).rfind("version_info: 4097 bytes, over", 0), 0u);
}

std::string resourceError(ResourceType type, const json& value) {
  auto parsed = parseResourceText(type, value.dump());
  EXPECT_FALSE(parsed.isOk()) << value.dump();
  return parsed.isOk() ? "" : errorOf(parsed.status());
}

TEST(XdsCodec, ResourceErrorsNameTheField) {
  struct Case {
    ResourceType type;
    std::function<void(json&)> spoil;
    std::string expected_prefix;
  };
  const json good[] = {toJson(sampleNode()), toJson(sampleWorkload()), toJson(sampleService()),
                       toJson(sampleInbound()), toJson(sampleCluster())};
  for (const Case& c : std::initializer_list<Case>{
           {ResourceType::kNode, [](json& j) { j["fabric"] = "ib"; },
            "fabric: expected \"verbs\" | \"tcp\" | \"shm\""},
           {ResourceType::kNode, [](json& j) { j["addresses"] = {"10.0.0.300"}; },
            "addresses[0]: expected an IP address"},
           {ResourceType::kNode, [](json& j) { j["addresses"] = json::array(); },
            "addresses: needs at least one"},
           {ResourceType::kNode, [](json& j) { j["session_address"] = "10.0.0.1"; },
            "session_address: expected \"ip:port\""},
           {ResourceType::kNode,
            [](json& j) {
              j["rdma"] = {{"gid", 3}};
            },
            "rdma.gid: expected string"},
           {ResourceType::kWorkload, [](json& j) { j["name"] = "shop/other"; },
            "name: must be \"shop/cart-7d9\""},
           {ResourceType::kWorkload, [](json& j) { j["namespace"] = "Shop"; },
            "namespace: expected a DNS-1123 label"},
           {ResourceType::kWorkload,
            [](json& j) {
              j["ports"] = {80, 0};
            },
            "ports[1]: expected a port number"},
           {ResourceType::kWorkload, [](json& j) { j["ports"] = {70000}; },
            "ports[0]: expected a port number"},
           {ResourceType::kWorkload,
            [](json& j) { j["identity"] = "spiffe://td/ns/other/sa/cart"; },
            "identity: expected \"spiffe://<trust domain>/ns/shop/sa/cart\""},
           {ResourceType::kWorkload,
            [](json& j) {
              j["labels"] = {{"app", 1}};
            },
            "labels.app: expected string"},
           {ResourceType::kWorkload, [](json& j) { j.erase("node"); }, "node: missing"},
           {ResourceType::kService, [](json& j) { j["ports"] = json::array(); },
            "ports: needs at least one port"},
           {ResourceType::kService, [](json& j) { j["ports"][0]["port"] = 65536; },
            "ports[0].port: out of range [1, 65535]"},
           {ResourceType::kService, [](json& j) { j["ports"][0]["protocol"] = "UDP"; },
            "ports[0].protocol: expected \"TCP\""},
           {ResourceType::kService, [](json& j) { j["cluster_ips"] = {"none"}; },
            "cluster_ips[0]: expected an IP address"},
           {ResourceType::kListener, [](json& j) { j["address"] = "127.0.0.1:1"; },
            "address: only for outbound and capture listeners"},
           {ResourceType::kListener, [](json& j) { j.erase("port"); }, "port: missing"},
           {ResourceType::kListener, [](json& j) { j["direction"] = "sideways"; },
            "direction: expected \"outbound\" | \"inbound\" | \"capture\""},
           {ResourceType::kCluster, [](json& j) { j["lb_policy"] = "random"; },
            "lb_policy: expected \"round_robin\" | \"least_request\""},
           {ResourceType::kCluster, [](json& j) { j["connect_timeout_ms"] = 0; },
            "connect_timeout_ms: out of range"},
           {ResourceType::kCluster, [](json& j) { j["endpoints"][0]["address"] = "x:1"; },
            "endpoints[0].address: expected \"ip:port\""},
           {ResourceType::kCluster, [](json& j) { j["endpoints"][0]["weight"] = 1; },
            "endpoints[0].weight: unknown field"},
           {ResourceType::kCluster, [](json& j) { j["endpoints"] = {1}; },
            "endpoints[0]: expected an object, got an integer"},
       }) {
    json value = good[static_cast<size_t>(c.type)];
    c.spoil(value);
    std::string error = resourceError(c.type, value);
    EXPECT_EQ(error.rfind(c.expected_prefix, 0), 0u)
        << shortName(c.type) << ": " << value.dump() << "\nerror: " << error
        << "\nexpected prefix: " << c.expected_prefix;
  }
}

TEST(XdsCodec, StreamErrorLine) {
  StreamError error{.code = 400, .message = "type_url: expected string"};
  std::string line = serialize(error);
  EXPECT_EQ(line, R"({"error":{"code":400,"message":"type_url: expected string"}})");
  auto parsed = parseStreamError(line);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(*parsed, error);
  EXPECT_FALSE(parseStreamError(R"({"version_info":"1"})").has_value());
  EXPECT_FALSE(parseStreamError("not json").has_value());
}

TEST(XdsCodec, TypeUrlsAreSpelledOnce) {
  for (ResourceType type : kAllResourceTypes) {
    EXPECT_EQ(resourceTypeFromUrl(typeUrl(type)), type);
    EXPECT_EQ(typeUrl(type), "type.rdmesh.io/rdmesh.v1." + std::string(shortName(type)));
  }
  EXPECT_FALSE(resourceTypeFromUrl("type.rdmesh.io/rdmesh.v1.").has_value());
}

}  // namespace
}  // namespace rdmesh::xds
