// The static registry file (errors point at file:line:col) and the store's change semantics.
#include <gtest/gtest.h>

#include <string>

#include "memory_store.h"
#include "registry_file.h"

namespace rdmesh::xds_server {
namespace {

constexpr const char* kGoodRegistry = R"(trust_domain: example.org
nodes:
  - name: node-a
    addresses: [10.0.0.1]
    fabric: tcp
    session_address: 10.0.0.1:15008
workloads:
  - namespace: shop
    pod: cart-1
    ip: [10.1.0.5]
    node: node-a
    service_account: cart
    ports: [8080]
    labels: {app: cart}
services:
  - name: shop/cart
    cluster_ips: [10.96.0.10]
    ports:
      - {name: http, port: 80, target_port: 8080}
    selector: {app: cart}
)";

TEST(RegistryFile, ParsesWithDefaults) {
  auto change = parseRegistryFile(kGoodRegistry, "reg.yaml");
  ASSERT_TRUE(change.isOk()) << change.status().message();
  ASSERT_EQ(change->put_nodes.size(), 1u);
  ASSERT_EQ(change->put_workloads.size(), 1u);
  ASSERT_EQ(change->put_services.size(), 1u);
  const xds::Workload& workload = change->put_workloads[0];
  EXPECT_EQ(workload.name, "shop/cart-1");
  EXPECT_EQ(workload.identity, "spiffe://example.org/ns/shop/sa/cart");
  EXPECT_EQ(workload.labels.at("app"), "cart");
  EXPECT_EQ(change->put_services[0].namespace_name, "shop");
  EXPECT_EQ(change->put_services[0].ports[0].target_port, 8080);
}

TEST(RegistryFile, EmptyFileIsAnEmptyRegistry) {
  auto change = parseRegistryFile("", "empty.yaml");
  ASSERT_TRUE(change.isOk());
  EXPECT_TRUE(change->empty());
}

std::string errorFor(const std::string& text) {
  auto change = parseRegistryFile(text, "reg.yaml");
  EXPECT_FALSE(change.isOk()) << text;
  if (change.isOk()) return "";
  EXPECT_EQ(change.status().code(), StatusCode::kInvalidArgument);
  return change.status().message();
}

TEST(RegistryFile, ErrorsPointAtTheLine) {
  struct Case {
    std::string text;
    std::string expected;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"nodes: [", "reg.yaml:1:"},
           {"- a\n- b\n", "reg.yaml:1:1: (document): expected a mapping"},
           {"nodez: []\n", "reg.yaml:1:8: nodez: unknown key"},
           {"nodes: {}\n", "reg.yaml:1:8: nodes: expected a list"},
           {"nodes:\n  - name: node-a\n    addresses: [10.0.0.1]\n    fabric: ib\n"
            "    session_address: 10.0.0.1:15008\n",
            "reg.yaml:4:13: nodes[0].fabric: expected \"verbs\" | \"tcp\" | \"shm\""},
           {"workloads:\n  - namespace: shop\n    pod: cart-1\n    ip: [10.1.0.5]\n"
            "    node: node-a\n    service_account: cart\n    ports: [8080, 0]\n",
            "reg.yaml:7:19: workloads[0].ports[1]: expected a port number"},
           {"workloads:\n  - namespace: shop\n    pod: cart-1\n    ip: [10.1.0.5]\n"
            "    service_account: cart\n",
            "reg.yaml:2:5: workloads[0].node: missing (required)"},
           {"services:\n  - name: shop/cart\n    ports: [{port: 80}]\n    colour: red\n",
            "reg.yaml:4:13: services[0].colour: unknown field"},
           {"services:\n  - name: shop/cart\n    ports: [{port: 80}]\n"
            "  - name: shop/cart\n    ports: [{port: 81}]\n",
            "reg.yaml:4:5: services[1]: duplicate name \"shop/cart\""},
           {"services:\n  - name: shop/cart\n    name: x\n",
            "reg.yaml:3:5: services[0].name: duplicate key"},
           {"trust_domain: [x]\n", "reg.yaml:1:15: trust_domain: expected a trust domain name"},
       }) {
    std::string error = errorFor(c.text);
    EXPECT_EQ(error.rfind(c.expected, 0), 0u)
        << "input:\n"
        << c.text << "\nerror: " << error << "\nexpected prefix: " << c.expected;
  }
}

TEST(RegistryFile, MissingFileIsAClearError) {
  auto change = loadRegistryFile("/nonexistent/registry.yaml");
  ASSERT_FALSE(change.isOk());
  EXPECT_EQ(change.status().message(), "/nonexistent/registry.yaml: cannot open registry file");
}

TEST(MemoryStore, RevisionsOnlyForRealChanges) {
  MemoryStore store;
  std::vector<uint64_t> published;
  store.setOnChange([&](const SnapshotPtr& snapshot) { published.push_back(snapshot->revision); });
  ASSERT_TRUE(store.start().isOk());
  auto change = parseRegistryFile(kGoodRegistry, "reg.yaml");
  ASSERT_TRUE(change.isOk());

  auto first = store.apply(*change);
  ASSERT_TRUE(first.isOk());
  EXPECT_EQ(*first, 1u);
  auto again = store.apply(*change);  // same content: no new revision
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ(*again, 1u);

  RegistryChange removal;
  removal.delete_workloads = {"shop/cart-1", "shop/absent"};
  auto removed = store.apply(removal);
  ASSERT_TRUE(removed.isOk());
  EXPECT_EQ(*removed, 2u);
  EXPECT_EQ(store.snapshot()->workloads.count("shop/cart-1"), 0u);
  EXPECT_EQ(store.snapshot()->nodes.count("node-a"), 1u);
  EXPECT_EQ(published, (std::vector<uint64_t>{1, 2}));
}

TEST(MemoryStore, SnapshotsAreImmutable) {
  MemoryStore store;
  auto change = parseRegistryFile(kGoodRegistry, "reg.yaml");
  ASSERT_TRUE(change.isOk());
  ASSERT_TRUE(store.apply(*change).isOk());
  SnapshotPtr before = store.snapshot();
  RegistryChange removal;
  removal.delete_nodes = {"node-a"};
  ASSERT_TRUE(store.apply(removal).isOk());
  EXPECT_EQ(before->nodes.size(), 1u);
  EXPECT_EQ(store.snapshot()->nodes.size(), 0u);
}

}  // namespace
}  // namespace rdmesh::xds_server
