// rdmesh-node's YAML configuration: the shipped config/node.yaml loads, the `fabric:` section's
// fields land where the agent reads them, and every mistake names its field and position.
#include "node_config.h"

#include <gtest/gtest.h>

namespace rdmesh::node {
namespace {

TEST(NodeConfigTest, TheShippedFileLoads) {
  auto config = loadNodeConfigFile(RDMESH_SOURCE_DIR "/config/node.yaml");
  ASSERT_TRUE(config) << config.status().message();
  EXPECT_TRUE(config->fabric.enabled);
  EXPECT_EQ(config->fabric.listen, "0.0.0.0:15008");
  ASSERT_EQ(config->fabric.peers.size(), 1u);
  EXPECT_EQ(config->fabric.peers[0].name, "node-b");
  EXPECT_TRUE(config->fabric.verify_caller_netns);
}

TEST(NodeConfigTest, FabricIsOffWithoutItsSection) {
  auto config = parseNodeConfig("node: {name: n1}\n", "t.yaml");
  ASSERT_TRUE(config);
  EXPECT_FALSE(config->fabric.enabled);
  auto bare = parseNodeConfig("fabric:\n", "t.yaml");
  ASSERT_TRUE(bare);
  EXPECT_TRUE(bare->fabric.enabled);
  EXPECT_EQ(bare->fabric.listen, "0.0.0.0:15008");
  EXPECT_FALSE(bare->fabric.on_demand_paging);  // pinned unless asked for
}

TEST(NodeConfigTest, FabricFields) {
  auto config = parseNodeConfig(
      "fabric:\n"
      "  listen: 10.0.0.1:15008\n"
      "  rdma: false\n"
      "  on_demand_paging: true\n"
      "  verify_caller_netns: false\n"
      "  verbs: {device: rxe0, gid_index: 1, port: 1}\n"
      "  peers:\n"
      "    - {name: node-b, address: '10.0.0.2:15008'}\n"
      "    - {name: node-c, address: '[fd00::3]:15008'}\n",
      "t.yaml");
  ASSERT_TRUE(config) << config.status().message();
  EXPECT_FALSE(config->fabric.rdma);
  EXPECT_TRUE(config->fabric.on_demand_paging);
  EXPECT_FALSE(config->fabric.verify_caller_netns);
  EXPECT_EQ(config->fabric.verbs.device, "rxe0");
  EXPECT_EQ(config->fabric.verbs.gid_index, 1);
  ASSERT_EQ(config->fabric.peers.size(), 2u);
  EXPECT_EQ(config->fabric.peers[1].address, "[fd00::3]:15008");
}

TEST(NodeConfigTest, FabricErrorsNameTheField) {
  auto expectError = [](const std::string& yaml, const std::string& what) {
    auto config = parseNodeConfig(yaml, "t.yaml");
    ASSERT_FALSE(config) << yaml;
    EXPECT_NE(config.status().message().find(what), std::string::npos) << config.status().message();
  };
  expectError("fabric: {listen: nowhere}\n", "fabric.listen: 'nowhere' is not IP:PORT");
  expectError("fabric: {peers: [{name: Node_B, address: '1.2.3.4:1'}]}\n", "fabric.peers[0].name");
  expectError("fabric: {peers: [{name: b, address: '1.2.3.4'}]}\n", "fabric.peers[0].address");
  expectError("fabric: {peers: [{name: b, address: '1.2.3.4:1', x: 1}]}\n", "fabric.peers[0].x");
  expectError("fabric: {rdma: maybe}\n", "fabric.rdma");
  expectError("fabric: {on_demand_paging: sometimes}\n", "fabric.on_demand_paging");
  expectError("fabric: {verbs: {port: 300}}\n", "fabric.verbs.port");
  expectError("fabric: {peers: {name: b}}\n", "fabric.peers: expected a list");
  NodeAgentConfig c;
  c.fabric.enabled = true;
  c.node_name = "Bad_Name";
  Status s = finishNodeConfig(&c);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("not usable on the fabric"), std::string::npos);
}

}  // namespace
}  // namespace rdmesh::node
