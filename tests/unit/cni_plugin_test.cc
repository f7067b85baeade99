// rdmesh-cni against a node agent: the socket client over a real SOCK_SEQPACKET socket served by
// FakeNodeAgent (well-behaved and misbehaving), and the ADD/DEL/CHECK handlers end to end through
// runPlugin with that socket.
#include "cni_plugin.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "cni_node_client.h"
#include "fake_node_agent.h"
#include "rdmesh/capture/netns_cookie.h"
#include "temp_dir.h"

namespace rdmesh::cni {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::ordered_json;
using rdmesh::testing::FakeNodeAgent;
using Misbehaviour = FakeNodeAgent::Misbehaviour;

PodRegistration ownPod(const std::string& id) {
  // Our own network namespace: the fake agent resolves its real cookie.
  return {id, "/proc/self/ns/net", {"10.9.0.5"}, "eth0", "web-0", "shop", "uid-1", {6379}};
}

class NodeClientTest : public ::testing::Test {
 protected:
  rdmesh::testing::TempDir dir_{"rdcni"};
  FakeNodeAgent agent_{dir_.file("node.sock")};
  SocketNodeAgent client_{dir_.file("node.sock"), 2s};
};

TEST_F(NodeClientTest, PodLifecycle) {
  auto cookie = client_.podAdd(ownPod("c1"));
  ASSERT_TRUE(cookie.isOk()) << cookie.status().message();
  EXPECT_EQ(*cookie, capture::netnsCookie("/proc/self/ns/net").value());

  const auto sent = agent_.requests().at(0);
  EXPECT_EQ(sent["v"], 1);
  EXPECT_EQ(sent["op"], "pod_add");
  EXPECT_EQ(sent["container_id"], "c1");
  EXPECT_EQ(sent["netns"], "/proc/self/ns/net");
  EXPECT_EQ(sent["ips"], nlohmann::json::array({"10.9.0.5"}));
  EXPECT_EQ(sent["interface"], "eth0");
  EXPECT_EQ(sent["pod_name"], "web-0");
  EXPECT_EQ(sent["pod_namespace"], "shop");
  EXPECT_EQ(sent["pod_uid"], "uid-1");
  EXPECT_EQ(sent["exclude_outbound_ports"], nlohmann::json::array({6379}));

  EXPECT_TRUE(client_.podCheck("c1").isOk());
  auto list = client_.podList();
  ASSERT_TRUE(list.isOk());
  ASSERT_EQ(list->size(), 1U);
  EXPECT_EQ(list->at(0).container_id, "c1");
  EXPECT_EQ(list->at(0).netns_cookie, *cookie);
  EXPECT_EQ(list->at(0).ips, std::vector<std::string>{"10.9.0.5"});

  EXPECT_TRUE(client_.podDel("c1").isOk());
  EXPECT_TRUE(client_.podDel("c1").isOk());  // idempotent
  Status check = client_.podCheck("c1");
  EXPECT_EQ(check.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(check.message().find("not registered"), std::string::npos) << check.message();
  EXPECT_TRUE(client_.podList()->empty());
  // One connection carried every call.
  EXPECT_EQ(agent_.ops().size(), 7U);
}

TEST_F(NodeClientTest, OptionalFieldsAreLeftOutWhenEmpty) {
  PodRegistration pod = ownPod("c2");
  pod.pod_name.clear();
  pod.pod_namespace.clear();
  pod.pod_uid.clear();
  pod.exclude_outbound_ports.clear();
  ASSERT_TRUE(client_.podAdd(pod).isOk());
  const auto sent = agent_.requests().at(0);
  for (const char* key : {"pod_name", "pod_namespace", "pod_uid", "exclude_outbound_ports"})
    EXPECT_FALSE(sent.contains(key)) << key;
}

TEST_F(NodeClientTest, RefusalCarriesTheAgentsReason) {
  PodRegistration pod = ownPod("c3");
  pod.netns = "/proc/self/ns/does-not-exist";
  auto r = client_.podAdd(pod);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("netns"), std::string::npos) << r.status().message();
}

TEST_F(NodeClientTest, MisbehavingAgent) {
  SocketNodeAgent fast(dir_.file("node.sock"), 300ms);
  agent_.misbehaveOnce("pod_check", Misbehaviour::kSilent);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(fast.podCheck("x").code(), StatusCode::kTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  // The late reply of a timed-out call must not be taken for the next call's.
  agent_.misbehaveOnce("pod_del", Misbehaviour::kGarbage);
  EXPECT_EQ(fast.podDel("x").code(), StatusCode::kProtocolError);
  agent_.misbehaveOnce("pod_del", Misbehaviour::kOversized);
  EXPECT_EQ(fast.podDel("x").code(), StatusCode::kProtocolError);
  agent_.misbehaveOnce("pod_del", Misbehaviour::kCloseConnection);
  EXPECT_EQ(fast.podDel("x").code(), StatusCode::kUnavailable);
  agent_.misbehaveOnce("pod_add", Misbehaviour::kRefuse);
  EXPECT_EQ(fast.podAdd(ownPod("y")).status().code(), StatusCode::kInvalidArgument);
  // And it recovers with a fresh connection.
  EXPECT_TRUE(fast.podDel("x").isOk());
}

TEST(NodeClientNoAgent, MissingSocketIsNotFoundStaleSocketIsUnavailable) {
  rdmesh::testing::TempDir dir("rdcni");
  SocketNodeAgent missing(dir.file("none.sock"), 1s);
  EXPECT_EQ(missing.podDel("x").code(), StatusCode::kNotFound);

  // A socket file nobody listens on any more (agent crashed).
  const std::string stale = dir.file("stale.sock");
  {
    UniqueFd s(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, stale.data(), stale.size());
    ASSERT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  }
  SocketNodeAgent dead(stale, 1s);
  EXPECT_EQ(dead.podDel("x").code(), StatusCode::kUnavailable);
}

// ------------------------------------------------------------------------------------ runPlugin

constexpr const char* kPrev =
    R"({"cniVersion":"1.0.0","interfaces":[{"name":"cni0"},{"name":"eth0","sandbox":"/proc/self/ns/net"}],"ips":[{"interface":1,"address":"10.9.0.7/24","gateway":"10.9.0.1"}],"dns":{}})";

struct PluginRun {
  int exit_code = -1;
  std::string out;
  Json json() const { return Json::parse(out, nullptr, false); }
};

class PluginTest : public ::testing::Test {
 protected:
  PluginRun run(const std::string& command, const std::string& stdin_text, bool stdout_ok = true) {
    CniEnvironment env{command,
                       "default-web",
                       "/proc/self/ns/net",
                       "eth0",
                       "K8S_POD_NAME=web-0;K8S_POD_NAMESPACE=shop",
                       ""};
    PluginRun r;
    PluginHooks hooks;
    hooks.make_agent = [](const PluginConfig& c) -> std::unique_ptr<NodeAgent> {
      return std::make_unique<SocketNodeAgent>(c.node_socket,
                                               std::chrono::milliseconds(c.agent_timeout_ms));
    };
    hooks.write_stdout = [&](const std::string& text) {
      r.out = text;
      return stdout_ok;
    };
    r.exit_code = runPlugin(env, stdin_text, hooks);
    return r;
  }
  std::string conf(const std::string& extra = "", bool with_prev = true) const {
    std::string c = R"({"cniVersion":"1.0.0","name":"t","type":"rdmesh-cni","nodeSocket":")" +
                    agent_.path() + "\"";
    if (!extra.empty()) c += "," + extra;
    if (with_prev) c += std::string(R"(,"prevResult":)") + kPrev;
    return c + "}";
  }

  rdmesh::testing::TempDir dir_{"rdcni"};
  FakeNodeAgent agent_{dir_.file("node.sock")};
};

TEST_F(PluginTest, AddRegistersAndPassesPrevResultThrough) {
  PluginRun add = run("ADD", conf(R"("excludeOutboundPorts":[5432])"));
  EXPECT_EQ(add.exit_code, 0) << add.out;
  EXPECT_EQ(add.out, kPrev);
  auto pods = agent_.pods();
  ASSERT_EQ(pods.count("default-web"), 1U);
  const auto& req = pods["default-web"].request;
  EXPECT_EQ(req["ips"], nlohmann::json::array({"10.9.0.7"}));
  EXPECT_EQ(req["pod_name"], "web-0");
  EXPECT_EQ(req["pod_namespace"], "shop");
  EXPECT_EQ(req["exclude_outbound_ports"], nlohmann::json::array({5432}));

  PluginRun check = run("CHECK", conf());
  EXPECT_EQ(check.exit_code, 0);
  EXPECT_EQ(check.out, "");  // CHECK prints nothing on success

  PluginRun del = run("DEL", conf("", false));
  EXPECT_EQ(del.exit_code, 0);
  EXPECT_EQ(del.out, "");
  EXPECT_TRUE(agent_.pods().empty());
  EXPECT_EQ(run("DEL", conf("", false)).exit_code, 0);  // idempotent

  PluginRun check_gone = run("CHECK", conf());
  EXPECT_EQ(check_gone.exit_code, 1);
  EXPECT_EQ(check_gone.json()["code"], kErrAgentRefused);
}

TEST_F(PluginTest, ExcludedNamespaceIsPassedThroughWithoutRegistering) {
  PluginRun add = run("ADD", conf(R"("excludeNamespaces":["shop"])"));
  EXPECT_EQ(add.exit_code, 0);
  EXPECT_EQ(add.out, kPrev);
  EXPECT_TRUE(agent_.requests().empty());
  EXPECT_EQ(run("CHECK", conf(R"("excludeNamespaces":["shop"])")).exit_code, 0);
}

TEST_F(PluginTest, RefusedAddIsCode100AndNotUndone) {
  agent_.misbehaveOnce("pod_add", Misbehaviour::kRefuse);
  PluginRun add = run("ADD", conf());
  EXPECT_EQ(add.exit_code, 1);
  EXPECT_EQ(add.json()["code"], kErrAgentRefused);
  EXPECT_EQ(add.json()["cniVersion"], "1.0.0");
  EXPECT_NE(add.json()["details"].get<std::string>().find("refused by the test"),
            std::string::npos);
  EXPECT_EQ(agent_.ops(), std::vector<std::string>{"pod_add"});
}

TEST_F(PluginTest, LostReplyUndoesTheRegistration) {
  agent_.misbehaveOnce("pod_add", Misbehaviour::kSilent);
  PluginRun add = run("ADD", conf(R"("agentTimeoutMs":300)"));
  EXPECT_EQ(add.exit_code, 1);
  EXPECT_EQ(add.json()["code"], kErrTryAgainLater);
  // The agent registered the pod but its reply was lost: the plugin took the registration back.
  EXPECT_EQ(agent_.ops(), (std::vector<std::string>{"pod_add", "pod_del"}));
  EXPECT_TRUE(agent_.pods().empty());
}

TEST_F(PluginTest, GarbledReplyIsCode101AndUndone) {
  agent_.misbehaveOnce("pod_add", Misbehaviour::kGarbage);
  PluginRun add = run("ADD", conf());
  EXPECT_EQ(add.json()["code"], kErrAgentProtocol);
  EXPECT_EQ(agent_.ops(), (std::vector<std::string>{"pod_add", "pod_del"}));
}

TEST_F(PluginTest, UndeliverableResultUnregistersThePod) {
  PluginRun add = run("ADD", conf(), /*stdout_ok=*/false);
  EXPECT_EQ(add.exit_code, 1);
  EXPECT_EQ(agent_.ops(), (std::vector<std::string>{"pod_add", "pod_del"}));
  EXPECT_TRUE(agent_.pods().empty());
}

TEST_F(PluginTest, NoAgent) {
  const std::string missing = R"({"cniVersion":"1.0.0","name":"t","nodeSocket":")" +
                              dir_.file("absent.sock") + R"(","prevResult":)" + kPrev + "}";
  PluginRun add = run("ADD", missing);
  EXPECT_EQ(add.exit_code, 1);
  EXPECT_EQ(add.json()["code"], kErrTryAgainLater);
  EXPECT_EQ(add.json()["msg"], "node agent unavailable");
  // Nothing can be registered where no agent runs: DEL succeeds, so pods can always be deleted.
  EXPECT_EQ(run("DEL", missing).exit_code, 0);
  EXPECT_EQ(run("CHECK", missing).json()["code"], kErrTryAgainLater);
}

TEST_F(PluginTest, DelFailureIsReportedForRetry) {
  agent_.misbehaveOnce("pod_del", Misbehaviour::kRefuse);
  PluginRun del = run("DEL", conf("", false));
  EXPECT_EQ(del.exit_code, 1);
  EXPECT_EQ(del.json()["code"], kErrAgentRefused);
}

TEST_F(PluginTest, VersionAndBadInputNeverTouchTheAgent) {
  PluginRun version = run("VERSION", "{}");
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.json()["supportedVersions"].size(), 4U);
  PluginRun bad = run("ADD", "{oops");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.json()["code"], kErrDecodingFailure);
  EXPECT_TRUE(agent_.requests().empty());
}

}  // namespace
}  // namespace rdmesh::cni
