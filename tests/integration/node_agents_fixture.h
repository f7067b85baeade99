// Two emulated nodes (network namespaces joined by veth), each running rdmesh-node with the
// session switch on (rdma off: one tcp PairLink between them), for the mesh mode suites.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "fake_sidecar.h"
#include "harness.h"

namespace rdmesh::it {

class NodeAgentsTest : public ::testing::Test {
 protected:
  // Creates the namespaces ("<tag>a", "<tag>b"), starts both agents and waits for their link.
  void startNodes(const std::string& tag, const std::string& ip_a, const std::string& ip_b) {
    if (std::string why = netnsUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    removeStaleNamespaces();
    ip_a_ = ip_a;
    ip_b_ = ip_b;
    ns_a_ = std::make_unique<Netns>(tag + "a");
    ns_b_ = std::make_unique<Netns>(tag + "b");
    linkVeth(*ns_a_, ip_a + "/24", *ns_b_, ip_b + "/24");
    agent_a_ = startAgent("node-a", *ns_a_, ip_a, "node-b", ip_b);
    agent_b_ = startAgent("node-b", *ns_b_, ip_b, "node-a", ip_a);
    ASSERT_TRUE(waitFor([&] { return stat("node-a", "rdmesh.node.links.up") == 1; }, 20s))
        << agent_a_->output();
    ASSERT_TRUE(waitFor([&] { return stat("node-b", "rdmesh.node.links.up") == 1; }, 20s))
        << agent_b_->output();
  }

  std::string socketOf(const std::string& node) const { return dir_.file(node + ".sock"); }

  std::unique_ptr<Process> startAgent(const std::string& name, const Netns& ns,
                                      const std::string& ip, const std::string& peer,
                                      const std::string& peer_ip) {
    std::string config = dir_.file(name + ".yaml");
    writeFile(config, "node: {name: " + name + "}\nsocket: " + socketOf(name) +
                          "\nstate_file: " + dir_.file(name + "-pods.json") +
                          "\ncapture: {bpf: false}\nlog_level: debug\nfabric:\n  listen: " + ip +
                          ":15008\n  rdma: false\n  verify_caller_netns: false\n"
                          "  peers: [{name: " +
                          peer + ", address: \"" + peer_ip + ":15008\"}]\n");
    return std::make_unique<Process>(name, std::vector<std::string>{RDMESH_NODE_BIN, "-c", config},
                                     dir_.file(name + ".log"), ns.name());
  }

  // The agent's stats op (node.sock is a path: reachable from any namespace); ~0 if unknown.
  uint64_t stat(const std::string& node, const std::string& name) {
    auto c = testing::NodeSocketClient::connect(socketOf(node));
    if (!c) return ~0ull;
    auto reply = c->request({{"op", "stats"}}, {}, nullptr, 2s);
    if (!reply || !(*reply)["stats"].contains(name)) return ~0ull;
    return (*reply)["stats"][name].get<uint64_t>();
  }

  TempDir dir_{"rdnm"};
  std::string ip_a_, ip_b_;
  std::unique_ptr<Netns> ns_a_, ns_b_;
  std::unique_ptr<Process> agent_a_, agent_b_;
};

}  // namespace rdmesh::it
