// The xDS client over a real HTTP/2 connection to a scripted server (h2c on 127.0.0.1):
// subscriptions, ACK/NACK with nonces, malformed responses, reconnect with the versions in force.
#include <event2/event.h>
#include <gtest/gtest.h>

#include <csignal>
#include <functional>

#include "fake_xds_server.h"
#include "rdmesh/xds/client.h"

namespace rdmesh::xds {
namespace {

using namespace std::chrono_literals;
using testing::FakeXdsServer;

Cluster makeCluster(const std::string& name, const std::string& address) {
  Cluster c;
  c.name = name;
  c.endpoints.push_back({"node-b", address, "default/web-1"});
  return c;
}

DiscoveryResponse clusters(std::string version, std::string nonce, std::vector<Resource> items) {
  DiscoveryResponse r;
  r.type = ResourceType::kCluster;
  r.version_info = std::move(version);
  r.nonce = std::move(nonce);
  r.resources = std::move(items);
  return r;
}

class XdsClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::signal(SIGPIPE, SIG_IGN);
    base_ = event_base_new();
  }
  void TearDown() override {
    client_.reset();
    event_base_free(base_);
  }

  void startClient(ClientOptions options = {}) {
    if (options.servers.empty()) options.servers = {server_.address()};
    options.plaintext = true;
    options.identity.id = "sidecar~default/web-0~node-a";
    options.identity.node_name = "node-a";
    options.identity.workload = "default/web-0";
    options.identity.namespace_name = "default";
    options.subscriptions = {{ResourceType::kNode, {}}, {ResourceType::kCluster, {}}};
    options.initial_backoff = 20ms;
    options.max_backoff = 200ms;
    auto client = makeClient(
        base_, std::move(options),
        [this](ResourceType type, const std::string& version, const std::vector<Resource>& r) {
          calls_.push_back({type, version, r.size()});
          return verdict_;
        },
        stats_);
    ASSERT_TRUE(client) << client.status().message();
    client_ = std::move(client.value());
    client_->start();
  }

  // Runs the client's loop until `done` or the timeout.
  bool runUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout = 5s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      timeval tick{0, 5000};
      event_base_loopexit(base_, &tick);
      event_base_dispatch(base_);
    }
    return true;
  }

  DiscoveryRequest next() {
    EXPECT_TRUE(runUntil([&] { return server_.pendingRequests() > 0; })) << "no request";
    auto request = server_.nextRequest(0ms);
    return request.value_or(DiscoveryRequest{});
  }

  // Opens the stream and takes the two subscription requests.
  void subscribe() {
    startClient();
    DiscoveryRequest nodes = next();
    EXPECT_EQ(nodes.type, ResourceType::kNode);
    EXPECT_TRUE(nodes.node.has_value());
    DiscoveryRequest cluster_request = next();
    EXPECT_EQ(cluster_request.type, ResourceType::kCluster);
  }

  uint64_t stat(const std::string& scope, const std::string& name) {
    return stats_.counter(scope, name).value();
  }

  struct Call {
    ResourceType type;
    std::string version;
    size_t count;
  };
  FakeXdsServer server_;
  StatsStore stats_;
  event_base* base_ = nullptr;
  std::unique_ptr<Client> client_;
  std::vector<Call> calls_;
  Status verdict_;
};

TEST_F(XdsClientTest, SubscribesOnTheStreamPathWithItsIdentity) {
  startClient();
  DiscoveryRequest first = next();
  EXPECT_EQ(server_.lastPath(), kStreamPath);
  EXPECT_EQ(first.type, ResourceType::kNode);
  ASSERT_TRUE(first.node.has_value());
  EXPECT_EQ(first.node->workload, "default/web-0");
  EXPECT_EQ(first.version_info, "");
  DiscoveryRequest second = next();
  EXPECT_EQ(second.type, ResourceType::kCluster);
  EXPECT_FALSE(second.node.has_value());
  EXPECT_TRUE(client_->connected());
  EXPECT_EQ(stats_.gauge("xds", "connected").value(), 1u);
}

TEST_F(XdsClientTest, AcceptedResponseIsAckedWithItsNonce) {
  subscribe();
  server_.push(clusters("v1", "nonce-1", {makeCluster("c1", "10.1.0.5:80")}));
  DiscoveryRequest ack = next();
  EXPECT_EQ(ack.type, ResourceType::kCluster);
  EXPECT_EQ(ack.version_info, "v1");
  EXPECT_EQ(ack.response_nonce, "nonce-1");
  EXPECT_FALSE(ack.error_detail.has_value());
  ASSERT_EQ(calls_.size(), 1u);
  EXPECT_EQ(calls_[0].count, 1u);
  EXPECT_EQ(stat("xds.cluster", "update_success"), 1u);
  EXPECT_EQ(client_->status()[1].acked_version, "v1");
}

TEST_F(XdsClientTest, RejectedResponseIsNackedAndTheLastGoodVersionKept) {
  subscribe();
  server_.push(clusters("v1", "n1", {makeCluster("c1", "10.1.0.5:80")}));
  next();
  verdict_ = invalidArgument("listener x: unknown cluster 'y'");
  server_.push(clusters("v2", "n2", {}));
  DiscoveryRequest nack = next();
  EXPECT_EQ(nack.version_info, "v1");
  EXPECT_EQ(nack.response_nonce, "n2");
  ASSERT_TRUE(nack.error_detail.has_value());
  EXPECT_EQ(nack.error_detail->message, "listener x: unknown cluster 'y'");
  EXPECT_EQ(stat("xds.cluster", "update_rejected"), 1u);
  EXPECT_EQ(client_->status()[1].acked_version, "v1");
}

TEST_F(XdsClientTest, MalformedResourceIsNackedWithoutReachingTheHandler) {
  subscribe();
  server_.push(
      R"({"version_info":"v9","type_url":"type.rdmesh.io/rdmesh.v1.Cluster","nonce":"n9",)"
      R"("resources":[{"name":"c","endpoints":[{"node":"b","address":"not an address"}]}]})");
  DiscoveryRequest nack = next();
  EXPECT_EQ(nack.response_nonce, "n9");
  ASSERT_TRUE(nack.error_detail.has_value());
  EXPECT_NE(nack.error_detail->message.find("address"), std::string::npos)
      << nack.error_detail->message;
  EXPECT_TRUE(calls_.empty());
  EXPECT_TRUE(client_->connected());  // a NACK, not a broken stream
}

TEST_F(XdsClientTest, GarbageOnTheStreamReconnectsWithTheVersionsInForce) {
  subscribe();
  server_.push(clusters("v1", "n1", {makeCluster("c1", "10.1.0.5:80")}));
  next();
  server_.push("this is not json");
  DiscoveryRequest nodes = next();  // on a new stream
  EXPECT_EQ(server_.streamsOpened(), 2);
  EXPECT_TRUE(nodes.node.has_value());
  DiscoveryRequest cluster_request = next();
  EXPECT_EQ(cluster_request.version_info, "v1");
  EXPECT_EQ(cluster_request.response_nonce, "");
  EXPECT_GE(stat("xds", "stream_errors"), 1u);
}

TEST_F(XdsClientTest, ServerErrorLineEndsTheStreamAndTheClientComesBack) {
  subscribe();
  server_.push(R"({"error":{"code":400,"message":"bad request"}})");
  next();
  EXPECT_EQ(server_.streamsOpened(), 2);
  EXPECT_NE(client_->lastError().find("bad request"), std::string::npos) << client_->lastError();
}

TEST_F(XdsClientTest, ServerGoneThenBackResyncs) {
  subscribe();
  server_.push(clusters("v1", "n1", {makeCluster("c1", "10.1.0.5:80")}));
  next();
  server_.dropConnection();
  ASSERT_TRUE(runUntil([&] { return stat("xds", "disconnects") == 1; }));
  EXPECT_EQ(client_->status()[1].acked_version, "v1");  // nothing forgotten
  DiscoveryRequest nodes = next();
  DiscoveryRequest cluster_request = next();
  EXPECT_EQ(cluster_request.version_info, "v1");
  server_.push(clusters("v2", "n2", {}));
  DiscoveryRequest ack = next();
  EXPECT_EQ(ack.version_info, "v2");
  EXPECT_EQ(calls_.size(), 2u);
}

TEST_F(XdsClientTest, RotatesServersAndBacksOffWhileNoneAnswers) {
  // The first server address refuses connections; the client moves on to the second.
  ClientOptions options;
  options.servers = {"127.0.0.1:1", server_.address()};
  startClient(options);
  DiscoveryRequest first = next();
  EXPECT_EQ(first.type, ResourceType::kNode);
  EXPECT_GE(stat("xds", "connect_attempts"), 2u);
  EXPECT_EQ(client_->server(), server_.address());
}

TEST_F(XdsClientTest, KeepsRetryingWithBackoffWhenNothingListens) {
  ClientOptions options;
  options.servers = {"127.0.0.1:1"};
  startClient(options);
  ASSERT_TRUE(runUntil([&] { return stat("xds", "connect_attempts") >= 4; }, 5s));
  EXPECT_FALSE(client_->connected());
  EXPECT_NE(client_->lastError().find("127.0.0.1:1"), std::string::npos) << client_->lastError();
}

TEST(XdsClientOptions, BadSettingsAreClearErrors) {
  event_base* base = event_base_new();
  StatsStore stats;
  auto handler = [](ResourceType, const std::string&, const std::vector<Resource>&) {
    return Status::ok();
  };
  ClientOptions options;
  options.subscriptions = {{ResourceType::kNode, {}}};
  EXPECT_NE(makeClient(base, options, handler, stats).status().message().find("no server"),
            std::string::npos);
  options.servers = {"localhost"};
  EXPECT_NE(makeClient(base, options, handler, stats).status().message().find("host:port"),
            std::string::npos);
  options.servers = {"127.0.0.1:15012"};
  EXPECT_NE(makeClient(base, options, handler, stats).status().message().find("CA file"),
            std::string::npos);
  options.ca_file = "/nonexistent/ca.pem";
  EXPECT_NE(makeClient(base, options, handler, stats).status().message().find("CA bundle"),
            std::string::npos);
  event_base_free(base);
}

}  // namespace
}  // namespace rdmesh::xds
