#include "node_request.h"

#include <gtest/gtest.h>

#include <string>

namespace rdmesh::node {
namespace {

using nlohmann::json;

std::string errorOf(std::string_view text) {
  Result<RequestEnvelope> e = parseEnvelope(text);
  if (!e) return e.status().message();
  Result<PodAddRequest> r = parsePodAdd(e->body);
  return r ? "" : r.status().message();
}

constexpr const char* kValid =
    R"({"v":1,"op":"pod_add","container_id":"abc-1.2_3","netns":"/run/netns/x",)"
    R"("ips":["10.0.0.2","FD00::0002"],"interface":"eth0","pod_name":"web-0",)"
    R"("pod_namespace":"shop","pod_uid":"u-1","exclude_outbound_ports":[6379,5432,6379]})";

TEST(NodeRequestTest, ParsesAValidPodAdd) {
  Result<RequestEnvelope> e = parseEnvelope(kValid);
  ASSERT_TRUE(e) << e.status().message();
  EXPECT_EQ(e->op, "pod_add");
  Result<PodAddRequest> r = parsePodAdd(e->body);
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->container_id, "abc-1.2_3");
  EXPECT_EQ(r->netns, "/run/netns/x");
  EXPECT_EQ(r->ips, (std::vector<std::string>{"10.0.0.2", "fd00::2"}));  // canonical form
  EXPECT_EQ(r->interface, "eth0");
  EXPECT_EQ(r->pod_name, "web-0");
  EXPECT_EQ(r->pod_namespace, "shop");
  EXPECT_EQ(r->pod_uid, "u-1");
  EXPECT_EQ(r->exclude_outbound_ports, (std::vector<uint16_t>{5432, 6379}));  // sorted, unique
}

TEST(NodeRequestTest, OptionalFieldsMayBeAbsent) {
  Result<RequestEnvelope> e = parseEnvelope(
      R"({"v":1,"op":"pod_add","container_id":"c","netns":"/n","ips":["::1"],"interface":"e"})");
  ASSERT_TRUE(e);
  Result<PodAddRequest> r = parsePodAdd(e->body);
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->pod_name, "");
  EXPECT_TRUE(r->exclude_outbound_ports.empty());
}

TEST(NodeRequestTest, EnvelopeErrorsNameTheProblem) {
  EXPECT_EQ(errorOf("{"), "request is not valid JSON");
  EXPECT_EQ(errorOf("[]"), "request must be a JSON object");
  EXPECT_EQ(errorOf(R"({"op":"pod_list"})"), "field 'v': missing (protocol version, 1)");
  EXPECT_EQ(errorOf(R"({"v":"1","op":"pod_list"})"), "field 'v': must be the integer 1");
  EXPECT_EQ(errorOf(R"({"v":2,"op":"pod_list"})"),
            "field 'v': version 2 is not supported (this agent speaks 1)");
  EXPECT_EQ(errorOf(R"({"v":1})"), "field 'op': missing");
  EXPECT_EQ(errorOf(R"({"v":1,"op":7})"), "field 'op': must be a string");
  EXPECT_EQ(errorOf(std::string(kMaxRequestBytes + 1, ' ')), "request larger than 65536 bytes");
}

TEST(NodeRequestTest, PodAddFieldErrorsNameTheField) {
  auto with = [](const std::string& key, const json& value) {
    json j = json::parse(kValid);
    if (value.is_null()) {
      j.erase(key);
    } else {
      j[key] = value;
    }
    return errorOf(j.dump());
  };
  EXPECT_EQ(with("container_id", nullptr), "field 'container_id': missing");
  EXPECT_EQ(with("container_id", ""), "field 'container_id': must not be empty");
  EXPECT_EQ(with("container_id", "a/b"),
            "field 'container_id': only letters, digits, '-', '_' and '.' are allowed");
  EXPECT_EQ(with("container_id", std::string(257, 'a')),
            "field 'container_id': longer than 256 bytes");
  EXPECT_EQ(with("netns", "run/netns/x"), "field 'netns': must be an absolute path");
  EXPECT_EQ(with("ips", nullptr), "field 'ips': missing");
  EXPECT_EQ(with("ips", "10.0.0.1"), "field 'ips': must be an array of IP addresses");
  EXPECT_EQ(with("ips", json::array()), "field 'ips': must name at least one IP address");
  EXPECT_EQ(with("ips", json::array({"10.0.0.1", 5})), "field 'ips[1]': must be a string");
  EXPECT_EQ(with("ips", json::array({"10.0.0.1", "10.0.0.999"})),
            "field 'ips[1]': '\"10.0.0.999\"' is not an IPv4 or IPv6 address");
  EXPECT_EQ(with("ips", json::array({"10.0.0.1", "10.0.0.1"})),
            "field 'ips[1]': 10.0.0.1 is listed twice");
  EXPECT_EQ(with("interface", "a-very-long-interface"), "field 'interface': longer than 15 bytes");
  EXPECT_EQ(with("pod_name", 3), "field 'pod_name': must be a string");
  EXPECT_EQ(with("exclude_outbound_ports", json::array({80, 0})),
            "field 'exclude_outbound_ports[1]': must be a port number 1..65535 (got 0)");
  EXPECT_EQ(with("exclude_outbound_ports", json::array({65536})),
            "field 'exclude_outbound_ports[0]': must be a port number 1..65535 (got 65536)");
  EXPECT_EQ(with("exclude_outbound_ports", json::array({1.5})),
            "field 'exclude_outbound_ports[0]': must be a port number 1..65535 (got 1.5)");
  EXPECT_EQ(with("exclude_outbound_ports", "80"),
            "field 'exclude_outbound_ports': must be an array");
}

TEST(NodeRequestTest, RepliesAreValidJsonEvenForInvalidUtf8) {
  json ok = json::parse(okReply({{"netns_cookie", 42}}));
  EXPECT_EQ(ok["ok"], true);
  EXPECT_EQ(ok["netns_cookie"], 42);
  json err = json::parse(errorReply("bad \xff byte"));
  EXPECT_EQ(err["ok"], false);
  EXPECT_FALSE(err["error"].get<std::string>().empty());
}

}  // namespace
}  // namespace rdmesh::node
