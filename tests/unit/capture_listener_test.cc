// The capture listener's parts: config (direction: capture, service_addresses), routing by
// original destination, and the LD_PRELOAD registration path.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "capture_router.h"
#include "config.h"
#include "original_destination.h"

namespace rdmesh::proxy {
namespace {

std::string base(const std::string& listeners, const std::string& clusters = "") {
  return "node: {name: node-a}\ntransport:\n  backend: tcp\n  peers: [{name: node-b, address: "
         "\"10.0.0.2:15008\"}]\nlisteners:\n" +
         listeners + (clusters.empty() ? "" : "clusters:\n" + clusters);
}
constexpr const char* kCluster =
    "  - name: web\n    service_addresses: [\"10.96.0.10:80\", \"[fd00::10]:80\"]\n"
    "    endpoints: [{node: node-b, address: \"10.0.0.2:8080\"}]\n";

std::string errorOf(const std::string& yaml) {
  Result<ProxyConfig> c = parseConfig(yaml, "t.yaml");
  return c ? "" : c.status().message();
}

TEST(CaptureConfigTest, DefaultsAndExplicitValues) {
  Result<ProxyConfig> c = parseConfig(base("  - {name: cap, direction: capture}\n", kCluster), "t");
  ASSERT_TRUE(c) << c.status().message();
  const ListenerConfig& l = c->listeners[0];
  EXPECT_EQ(l.direction, ListenerDirection::kCapture);
  EXPECT_EQ(l.address.toString(), "127.0.0.1:15001");
  EXPECT_TRUE(l.has_address_v6);
  EXPECT_EQ(l.address_v6.toString(), "[::1]:15001");
  EXPECT_EQ(l.unknown_destination, UnknownDestination::kPassthrough);
  EXPECT_EQ(l.preload_socket, "@rdmesh-preload");
  ASSERT_EQ(c->clusters[0].service_addresses.size(), 2u);
  EXPECT_EQ(c->clusters[0].service_addresses[1].toString(), "[fd00::10]:80");
  EXPECT_NE(configToJson(*c).find("\"unknown_destination\": \"passthrough\""), std::string::npos);

  c = parseConfig(base("  - name: cap\n    direction: capture\n    address: 127.0.0.1:15101\n"
                       "    address_v6: none\n    unknown_destination: reject\n"
                       "    preload_socket: none\n"),
                  "t");
  ASSERT_TRUE(c) << c.status().message();
  EXPECT_EQ(c->listeners[0].address.port(), 15101);
  EXPECT_FALSE(c->listeners[0].has_address_v6);
  EXPECT_EQ(c->listeners[0].unknown_destination, UnknownDestination::kReject);
  EXPECT_EQ(c->listeners[0].preload_socket, "");
}

TEST(CaptureConfigTest, ErrorsNameFieldAndLine) {
  EXPECT_EQ(errorOf(base("  - {name: cap, direction: capture, cluster: web}\n", kCluster)),
            "t.yaml:6:37: listeners[0].cluster: not valid for capture listeners");
  EXPECT_EQ(errorOf(base("  - {name: cap, direction: capture, unknown_destination: drop}\n")),
            "t.yaml:6:58: listeners[0].unknown_destination: unknown value 'drop' (expected "
            "passthrough or reject)");
  EXPECT_EQ(errorOf(base("  - {name: cap, direction: capture, address_v6: \"127.0.0.1:1\"}\n")),
            "t.yaml:6:49: listeners[0].address_v6: must be an IPv6 address (or none)");
  EXPECT_EQ(errorOf(base("  - {name: cap, direction: capture, preload_socket: /tmp/x}\n")),
            "t.yaml:6:53: listeners[0].preload_socket: expected an abstract socket name '@name' "
            "(or none)");
  EXPECT_EQ(errorOf(base("  - {name: a, direction: capture}\n  - {name: b, direction: capture}\n")),
            "t.yaml:7:5: listeners[1]: only one capture listener is allowed ('a' is one, line 6)");
  EXPECT_EQ(errorOf(base("  - {name: a, direction: sideways}\n")),
            "t.yaml:6:26: listeners[0].direction: unknown value 'sideways' (expected outbound, "
            "inbound or capture)");
  EXPECT_EQ(errorOf(base("  - {name: cap, direction: capture}\n",
                         "  - name: web\n    service_addresses: [\"10.96.0.10\"]\n"
                         "    endpoints: [{node: node-b, address: \"10.0.0.2:8080\"}]\n")),
            "t.yaml:9:25: clusters[0].service_addresses[0]: '10.96.0.10' is not an ip:port with "
            "a non-zero port");
  EXPECT_EQ(errorOf(base("  - {name: cap, direction: capture}\n",
                         std::string(kCluster) +
                             "  - name: web2\n    service_addresses: [\"10.96.0.10:80\"]\n"
                             "    endpoints: [{node: node-b, address: \"10.0.0.3:8080\"}]\n")),
            "t.yaml:12:25: clusters[1].service_addresses[0]: 10.96.0.10:80 is already a service "
            "address of cluster 'web'");
}

TEST(CaptureRouterTest, ServiceEndpointUnknown) {
  Result<ProxyConfig> c =
      parseConfig(base("  - {name: cap, direction: capture}\n",
                       std::string(kCluster) +
                           "  - name: db\n    endpoints: [{node: node-b, address: "
                           "\"10.0.0.2:5432\"}, {node: node-b, address: \"10.0.0.3:5432\"}]\n"),
                  "t");
  ASSERT_TRUE(c) << c.status().message();
  CaptureRouter router(c->clusters);
  CaptureRoute svc = router.route(InetAddress::parse("10.96.0.10:80").value());
  EXPECT_EQ(svc.kind, CaptureRoute::kService);
  EXPECT_EQ(svc.cluster, 0u);
  EXPECT_EQ(router.route(InetAddress::parse("[fd00::10]:80").value()).kind, CaptureRoute::kService);
  CaptureRoute ep = router.route(InetAddress::parse("10.0.0.3:5432").value());
  EXPECT_EQ(ep.kind, CaptureRoute::kEndpoint);
  EXPECT_EQ(ep.cluster, 1u);
  EXPECT_EQ(ep.endpoint, 1);
  EXPECT_EQ(router.route(InetAddress::parse("10.96.0.10:81").value()).kind, CaptureRoute::kUnknown);
  EXPECT_EQ(router.route(InetAddress::parse("10.0.0.9:5432").value()).kind, CaptureRoute::kUnknown);
}

preload::Registration registration(uint16_t source_port, const char* ip4, uint16_t port) {
  preload::Registration r{};
  r.magic = htonl(preload::kMagic);
  r.version = preload::kVersion;
  r.source_family = 4;
  r.source_port = htons(source_port);
  r.dst_family = 4;
  r.dst_port = htons(port);
  inet_pton(AF_INET, ip4, r.dst_addr);
  return r;
}

TEST(PreloadRegistrationTest, ParsesAndRejects) {
  preload::Registration r = registration(40000, "10.1.2.3", 8080);
  Result<PreloadEntry> e = parsePreloadRegistration(&r, sizeof(r));
  ASSERT_TRUE(e) << e.status().message();
  EXPECT_FALSE(e->source_v6);
  EXPECT_EQ(e->source_port, 40000);
  EXPECT_EQ(e->destination.toString(), "10.1.2.3:8080");
  EXPECT_EQ(parsePreloadRegistration(&r, 31).status().message(),
            "registration is 31 bytes, expected 32");
  r.version = 2;
  EXPECT_EQ(parsePreloadRegistration(&r, sizeof(r)).status().message(),
            "registration: version 2 not supported");
}

TEST(PreloadRegistryTest, LooksUpWhatTheShimRegisteredOnce) {
  std::string name = "@rdmesh-test-" + std::to_string(getpid());
  auto registry = PreloadRegistry::bind(name);
  ASSERT_TRUE(registry) << registry.status().message();
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data() + 1, name.size() - 1);
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  preload::Registration r = registration(40001, "10.9.9.9", 443);
  ASSERT_EQ(::sendto(fd, &r, sizeof(r), 0, reinterpret_cast<sockaddr*>(&addr), len),
            static_cast<ssize_t>(sizeof(r)));
  const char junk[] = "junk";
  ::sendto(fd, junk, sizeof(junk), 0, reinterpret_cast<sockaddr*>(&addr), len);
  InetAddress peer = InetAddress::parse("127.0.0.1:40001").value();
  Result<InetAddress> dst = (*registry)->lookup({-1, peer, {}});
  ASSERT_TRUE(dst) << dst.status().message();
  EXPECT_EQ(dst->toString(), "10.9.9.9:443");
  EXPECT_EQ((*registry)->rejectedDatagrams(), 1u);
  EXPECT_FALSE((*registry)->lookup({-1, peer, {}}));  // consumed
  EXPECT_FALSE((*registry)->lookup({-1, InetAddress::parse("[::1]:40001").value(), {}}));
  ::close(fd);
}

// Without the eBPF hook an accepted socket reports the address it was accepted on: no answer,
// so the next source is asked. The hook's answers are tested in integration.EbpfCaptureTest.
TEST(TransparentLocalAddressTest, TheListenersOwnAddressIsNoAnswer) {
  for (const char* listen_at : {"127.0.0.1:0", "0.0.0.0:0"}) {
    int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    InetAddress at = InetAddress::parse(listen_at).value();
    ASSERT_EQ(::bind(listener, at.sockaddrPtr(), at.sockaddrLen()), 0);
    ASSERT_EQ(::listen(listener, 1), 0);
    InetAddress bound = InetAddress::localOf(listener).value();
    InetAddress target = InetAddress::parse("127.0.0.1:" + std::to_string(bound.port())).value();
    int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(::connect(client, target.sockaddrPtr(), target.sockaddrLen()), 0);
    int accepted = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(accepted, 0);

    auto source = makeTransparentLocalAddress();
    Result<InetAddress> dst =
        source->lookup({accepted, InetAddress::localOf(client).value(), bound});
    EXPECT_FALSE(dst) << listen_at << ": " << dst->toString();
    // Told another listener address, the same socket's local address reads as an answer.
    InetAddress elsewhere = InetAddress::parse("127.0.0.2:1").value();
    dst = source->lookup({accepted, InetAddress::localOf(client).value(), elsewhere});
    ASSERT_TRUE(dst) << listen_at;
    EXPECT_EQ(*dst, target);
    for (int fd : {accepted, client, listener}) ::close(fd);
  }
}

}  // namespace
}  // namespace rdmesh::proxy
