// XdsConfigSource: xDS resources become the proxy's live configuration, or a NACK reason with
// the last good configuration left in force. Drives a real Server (real sockets on 127.0.0.1).
#include "xds_source.h"

#include <gtest/gtest.h>

#include <csignal>

#include "config.h"
#include "harness.h"
#include "server.h"

namespace rdmesh::proxy {
namespace {

using namespace std::chrono_literals;

class XdsSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::signal(SIGPIPE, SIG_IGN);
    auto config = parseConfig(R"(
node: {name: node-a}
admin: {address: "127.0.0.1:0"}
transport: {backend: tcp, listen: "127.0.0.1:0"}
xds:
  servers: ["127.0.0.1:1"]
  plaintext: true
  workload: default/web-0
listeners:
  - {name: static-app, direction: outbound, address: "127.0.0.1:0", cluster: "outbound|80||db.default"}
)",
                              "bootstrap.yaml");
    ASSERT_TRUE(config) << config.status().message();
    server_ = std::make_unique<Server>(std::move(config.value()));
    ASSERT_TRUE(server_->start());
    auto source = XdsConfigSource::create(server_->base(), server_->currentConfig(), *server_,
                                          server_->stats());
    ASSERT_TRUE(source) << source.status().message();
    source_ = std::move(source.value());
  }

  Status apply(xds::ResourceType type, std::vector<xds::Resource> resources) {
    return source_->onResources(type, "v", resources);
  }

  std::unique_ptr<Server> server_;
  std::unique_ptr<XdsConfigSource> source_;
};

xds::Cluster dbCluster(const std::string& address) {
  xds::Cluster c;
  c.name = "outbound|80||db.default";
  c.connect_timeout_ms = 250;
  c.lb_policy = xds::LbPolicy::kLeastRequest;
  c.endpoints.push_back({"node-b", address, "default/db-0"});
  return c;
}

xds::Node node(const std::string& name, const std::string& session_address) {
  xds::Node n;
  n.name = name;
  n.addresses = {session_address.substr(0, session_address.find(':'))};
  n.session_address = session_address;
  return n;
}

TEST_F(XdsSourceTest, BootstrapIdentityDefaults) {
  const XdsConfig& xds = *server_->currentConfig().xds;
  EXPECT_EQ(xds.namespace_name, "default");
  EXPECT_EQ(xds.id, "sidecar~default/web-0~node-a");
}

TEST_F(XdsSourceTest, NodesBecomePeersExceptItself) {
  ASSERT_TRUE(apply(xds::ResourceType::kNode,
                    {node("node-a", "10.0.0.1:15008"), node("node-b", "10.0.0.2:15008")}));
  const auto& peers = server_->currentConfig().transport.peers;
  ASSERT_EQ(peers.size(), 1u);
  EXPECT_EQ(peers[0].name, "node-b");
  EXPECT_EQ(peers[0].address, "10.0.0.2:15008");
}

TEST_F(XdsSourceTest, ClustersTranslateWithPolicyTimeoutAndEndpoints) {
  ASSERT_TRUE(apply(xds::ResourceType::kCluster, {dbCluster("10.1.0.7:5432")}));
  const auto& clusters = server_->currentConfig().clusters;
  ASSERT_EQ(clusters.size(), 1u);
  EXPECT_EQ(clusters[0].lb_policy, LbPolicy::kLeastRequest);
  EXPECT_EQ(clusters[0].connect_timeout, 250ms);
  ASSERT_EQ(clusters[0].endpoints.size(), 1u);
  EXPECT_EQ(clusters[0].endpoints[0].node, "node-b");
  EXPECT_EQ(clusters[0].endpoints[0].address.toString(), "10.1.0.7:5432");
  // The static listener is still there, now with its cluster.
  EXPECT_EQ(server_->currentConfig().listeners.size(), 1u);
}

TEST_F(XdsSourceTest, ListenersTranslateIncludingCapture) {
  ASSERT_TRUE(apply(xds::ResourceType::kCluster, {dbCluster("10.1.0.7:5432")}));
  xds::Listener inbound;
  inbound.name = "inbound|8080";
  inbound.direction = xds::ListenerDirection::kInbound;
  inbound.port = 8080;
  xds::Listener outbound;
  outbound.name = "db";
  outbound.direction = xds::ListenerDirection::kOutbound;
  outbound.address = "127.0.0.1:0";
  outbound.cluster = "outbound|80||db.default";
  xds::Listener capture;
  capture.name = "capture";
  capture.direction = xds::ListenerDirection::kCapture;
  capture.address = "127.0.0.1:25001";
  ASSERT_TRUE(apply(xds::ResourceType::kListener, {inbound, outbound, capture}));
  const auto& listeners = server_->currentConfig().listeners;
  ASSERT_EQ(listeners.size(), 4u);  // static + inbound + outbound + capture
  EXPECT_EQ(listeners[1].direction, ListenerDirection::kInbound);
  EXPECT_EQ(listeners[1].target.toString(), "127.0.0.1:8080");
  EXPECT_EQ(listeners[3].direction, ListenerDirection::kCapture);
  EXPECT_EQ(listeners[3].address.toString(), "127.0.0.1:25001");
  EXPECT_TRUE(listeners[3].has_address_v6);
}

TEST_F(XdsSourceTest, RejectionsNameTheProblemAndKeepTheLastGoodConfig) {
  ASSERT_TRUE(apply(xds::ResourceType::kCluster, {dbCluster("10.1.0.7:5432")}));

  xds::Listener orphan;
  orphan.name = "orphan";
  orphan.direction = xds::ListenerDirection::kOutbound;
  orphan.address = "127.0.0.1:0";
  orphan.cluster = "outbound|1||nothing.default";
  Status status = apply(xds::ResourceType::kListener, {orphan});
  EXPECT_NE(status.message().find("unknown cluster 'outbound|1||nothing.default'"),
            std::string::npos)
      << status.message();

  // A port someone else holds.
  it::UniqueFd squatter = it::tcpListen("", "127.0.0.1", 0);
  sockaddr_in sa{};
  socklen_t length = sizeof(sa);
  ::getsockname(squatter.get(), reinterpret_cast<sockaddr*>(&sa), &length);
  xds::Listener taken = orphan;
  taken.name = "taken";
  taken.cluster = "outbound|80||db.default";
  taken.address = "127.0.0.1:" + std::to_string(ntohs(sa.sin_port));
  status = apply(xds::ResourceType::kListener, {taken});
  EXPECT_NE(status.message().find("cannot listen on"), std::string::npos) << status.message();

  // Removing the cluster a dynamic listener uses is refused too.
  taken.address = "127.0.0.1:0";
  ASSERT_TRUE(apply(xds::ResourceType::kListener, {taken}));
  status = apply(xds::ResourceType::kCluster, {});
  EXPECT_NE(status.message().find("unknown cluster"), std::string::npos) << status.message();

  xds::Cluster zero = dbCluster("10.1.0.7:0");
  status = apply(xds::ResourceType::kCluster, {zero});
  EXPECT_NE(status.message().find("port 0"), std::string::npos) << status.message();

  // Unchanged: one cluster with its first endpoint, the static and the accepted listener.
  const ProxyConfig& config = server_->currentConfig();
  ASSERT_EQ(config.clusters.size(), 1u);
  EXPECT_EQ(config.clusters[0].endpoints[0].address.toString(), "10.1.0.7:5432");
  EXPECT_EQ(config.listeners.size(), 2u);

  std::string dump = source_->dumpJson();
  EXPECT_NE(dump.find("\"listeners\":[\"taken\"]"), std::string::npos) << dump;
}

TEST_F(XdsSourceTest, ConfigDumpShowsTheDynamicSection) {
  server_->setConfigDumpExtra([this] { return source_->dumpJson(); });
  ASSERT_TRUE(apply(xds::ResourceType::kCluster, {dbCluster("10.1.0.7:5432")}));
  std::string dump = source_->dumpJson();
  EXPECT_NE(dump.find("\"dynamic\""), std::string::npos);
  EXPECT_NE(dump.find("type.rdmesh.io/rdmesh.v1.Cluster"), std::string::npos) << dump;
  EXPECT_NE(dump.find("\"clusters\":[\"outbound|80||db.default\"]"), std::string::npos) << dump;
}

}  // namespace
}  // namespace rdmesh::proxy
