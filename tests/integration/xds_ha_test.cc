// Two rdmesh-xds replicas sharing one etcd (started by the test): a client subscribed to
// replica A sees, within a second, a workload registered on replica B; A is killed; the client
// reconnects to B and converges on the same clusters; nothing registered on either is lost.
#include <signal.h>

#include <set>

#include "etcd_server.h"
#include "rdmesh/xds/messages.h"
#include "xds_fixture.h"

namespace rdmesh::it {
namespace {

using nlohmann::json;
using xds_test::H2TestClient;
using xds_test::runUntil;

constexpr const char* kClusterUrl = "type.rdmesh.io/rdmesh.v1.Cluster";

std::set<std::string> endpointsOf(const xds::DiscoveryResponse& response) {
  std::set<std::string> out;
  for (const auto& resource : response.resources) {
    for (const auto& e : std::get<xds::Cluster>(resource).endpoints) out.insert(e.address);
  }
  return out;
}

class XdsHaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why = EtcdServer::unavailableReason();
    if (!why.empty()) GTEST_SKIP() << why;
    signal(SIGPIPE, SIG_IGN);
    etcd_ = std::make_unique<EtcdServer>();
    base_.reset(event_base_new());
  }
  std::unique_ptr<XdsProcess> replica(TempDir& dir, const std::string& id) {
    XdsProcess::Options options;
    options.extra_args = {"--etcd-endpoints", etcd_->clientUrl(), "--replica-id", id};
    return std::make_unique<XdsProcess>(dir, options);
  }
  // Subscribes to clusters as the sidecar of shop/web-0; responses parsed into `responses`.
  std::unique_ptr<H2TestClient> subscribe(const XdsProcess& xds,
                                          std::vector<xds::DiscoveryResponse>& responses) {
    auto client = std::make_unique<H2TestClient>(
        base_.get(), xds.address(),
        H2TestClient::Request{.method = "POST",
                              .path = "/rdmesh.xds.v1.Discovery/Stream",
                              .headers = {{"content-type", "application/x-ndjson"}}},
        [&responses](std::string_view line) {
          auto parsed = xds::parseDiscoveryResponse(line);
          EXPECT_TRUE(parsed.isOk()) << line;
          if (parsed.isOk()) responses.push_back(std::move(*parsed));
        });
    EXPECT_TRUE(client->start().isOk());
    client->write(R"({"type_url":")" + std::string(kClusterUrl) + R"(","node":)" +
                  sidecarNodeJson() + "}\n");
    return client;
  }
  void ack(H2TestClient& client, const xds::DiscoveryResponse& r) {
    client.write(json({{"type_url", kClusterUrl},
                       {"version_info", r.version_info},
                       {"response_nonce", r.nonce}})
                     .dump() +
                 "\n");
  }

  std::unique_ptr<EtcdServer> etcd_;
  std::unique_ptr<event_base, decltype(&event_base_free)> base_{nullptr, event_base_free};
};

TEST_F(XdsHaTest, TwoReplicasOnOneEtcdClientMovesAndConverges) {
  TempDir dir_a("rdmxdsa");
  TempDir dir_b("rdmxdsb");
  auto a = replica(dir_a, "replica-a");
  auto b = replica(dir_b, "replica-b");

  std::vector<xds::DiscoveryResponse> on_a;
  auto client = subscribe(*a, on_a);
  ASSERT_TRUE(runUntil(
      base_.get(), [&] { return !on_a.empty(); }, 5s))
      << a->process().output();
  ack(*client, on_a.back());
  EXPECT_EQ(endpointsOf(on_a.back()), std::set<std::string>{"10.78.1.10:9090"});

  // Registered on B, pushed by A within a second.
  auto t0 = Clock::now();
  H2Reply put = h2Request(b->address(), "PUT", "/v1/workloads/shop/cart-7",
                          cartWorkload("cart-7", "10.78.1.17"), bearer());
  ASSERT_EQ(put.status, 200) << put.body;
  ASSERT_TRUE(runUntil(
      base_.get(), [&] { return on_a.size() >= 2; }, 1000ms))
      << "no push from A within a second of a registration on B";
  std::cerr << "[ha] registration on B pushed by A after " << secondsSince(t0) * 1000 << " ms\n";
  EXPECT_EQ(endpointsOf(on_a.back()),
            (std::set<std::string>{"10.78.1.10:9090", "10.78.1.17:9090"}));
  ack(*client, on_a.back());
  const std::string version_on_a = on_a.back().version_info;

  // A registration on A right before it dies is not lost either.
  ASSERT_EQ(h2Request(a->address(), "PUT", "/v1/workloads/shop/cart-8",
                      cartWorkload("cart-8", "10.78.1.18"), bearer())
                .status,
            200);
  ASSERT_TRUE(runUntil(
      base_.get(), [&] { return endpointsOf(on_a.back()).size() == 3; }, 2s));
  a->process().kill();
  ASSERT_TRUE(runUntil(
      base_.get(), [&] { return client->streamClosed() || client->connectionClosed(); }, 5s));

  // The client reconnects to B and converges on the same clusters.
  std::vector<xds::DiscoveryResponse> on_b;
  auto moved = subscribe(*b, on_b);
  ASSERT_TRUE(runUntil(
      base_.get(), [&] { return !on_b.empty(); }, 5s))
      << b->process().output();
  EXPECT_EQ(endpointsOf(on_b.back()),
            (std::set<std::string>{"10.78.1.10:9090", "10.78.1.17:9090", "10.78.1.18:9090"}));
  EXPECT_NE(on_b.back().version_info, version_on_a);  // cart-8 came after that version
  ack(*moved, on_b.back());
  // And B keeps pushing: a deletion on B reaches the moved client.
  ASSERT_EQ(h2Request(b->address(), "DELETE", "/v1/workloads/shop/cart-7", "", bearer()).status,
            200);
  ASSERT_TRUE(runUntil(
      base_.get(), [&] { return on_b.size() >= 2; }, 1000ms));
  EXPECT_EQ(endpointsOf(on_b.back()),
            (std::set<std::string>{"10.78.1.10:9090", "10.78.1.18:9090"}));
}

}  // namespace
}  // namespace rdmesh::it
