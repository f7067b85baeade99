// The real rdmesh-cni binary run as a runtime runs it (CNI_* variables, config on stdin): bad
// input gets the spec's error object on stdout and a non-zero exit, good input registers the pod
// with a node agent socket (FakeNodeAgent) and prints prevResult back unchanged.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "containerd_harness.h"
#include "fake_node_agent.h"
#include "harness.h"

namespace rdmesh::it {
namespace {

using Json = nlohmann::json;

constexpr const char* kPrev =
    R"({"cniVersion":"1.0.0","interfaces":[{"name":"cni0","mac":"02:00:00:00:00:01"},{"name":"eth0","mac":"02:00:00:00:00:02","sandbox":"/proc/self/ns/net"}],"ips":[{"interface":1,"address":"10.91.0.9/24","gateway":"10.91.0.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}})";

class CniBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (findExecutable(cniBinary()).empty()) GTEST_SKIP() << "rdmesh-cni not built";
  }

  CapturedRun run(const std::string& command, const std::string& stdin_text,
                  std::vector<std::string> env = {}) {
    std::vector<std::string> base = {"CNI_COMMAND=" + command,
                                     "CNI_CONTAINERID=it-pod-1",
                                     "CNI_NETNS=/proc/self/ns/net",
                                     "CNI_IFNAME=eth0",
                                     "CNI_PATH=/opt/cni/bin",
                                     "CNI_ARGS=K8S_POD_NAME=web-0;K8S_POD_NAMESPACE=shop",
                                     "RDMESH_NODE_SOCKET=" + agent_.path()};
    // Later entries replace earlier ones of the same name.
    for (const auto& kv : env) {
      const std::string key = kv.substr(0, kv.find('=') + 1);
      std::erase_if(base, [&](const std::string& b) { return b.rfind(key, 0) == 0; });
      base.push_back(kv);
    }
    return runCapturing({cniBinary()}, stdin_text, base, dir_.path(),
                        command + std::to_string(++runs_));
  }

  // The spec's error object, checked for shape; returns its code.
  int errorCode(const CapturedRun& r) {
    EXPECT_NE(r.exitCode(), 0) << r.stdout_text;
    Json e = Json::parse(r.stdout_text, nullptr, false);
    if (e.is_discarded() || !e.is_object()) {
      ADD_FAILURE() << "stdout is not a JSON object: " << r.stdout_text;
      return -1;
    }
    EXPECT_TRUE(e["cniVersion"].is_string()) << r.stdout_text;
    EXPECT_TRUE(e["msg"].is_string() && !e["msg"].get<std::string>().empty()) << r.stdout_text;
    EXPECT_TRUE(e["code"].is_number_unsigned()) << r.stdout_text;
    return e["code"].is_number_integer() ? e["code"].get<int>() : -1;
  }

  TempDir dir_{"rdcni"};
  testing::FakeNodeAgent agent_{dir_.file("node.sock")};
  int runs_ = 0;
};

std::string conf(const std::string& version, const std::string& extra, const char* prev) {
  std::string c = R"({"cniVersion":")" + version + R"(","name":"rdmesh","type":"rdmesh-cni")";
  if (!extra.empty()) c += "," + extra;
  if (prev) c += std::string(R"(,"prevResult":)") + prev;
  return c + "}";
}

TEST_F(CniBinaryTest, BadStdinGetsTheSpecErrorObject) {
  struct Case {
    const char* what;
    std::string stdin_text;
    int code;
  };
  const std::vector<Case> cases = {
      {"empty stdin", "", 6},
      {"malformed JSON", R"({"cniVersion":"1.0.0","name":)", 6},
      {"not an object", "[\"cniVersion\"]", 6},
      {"binary junk", std::string("\x00\xff\x7f{", 4), 6},
      {"too large", "{\"pad\":\"" + std::string(2 << 20, 'x') + "\"}", 6},
      {"no cniVersion", R"({"name":"rdmesh","prevResult":{}})", 1},
      {"old cniVersion", conf("0.2.0", "", kPrev), 1},
      {"future cniVersion", conf("2.0.0", "", kPrev), 1},
      {"missing prevResult", conf("1.0.0", "", nullptr), 7},
      {"prevResult without pod address", conf("1.0.0", "", R"({"ips":[]})"), 7},
      {"bad excludeOutboundPorts", conf("1.0.0", R"("excludeOutboundPorts":[99999])", kPrev), 7},
      {"relative nodeSocket", conf("1.0.0", R"("nodeSocket":"node.sock")", kPrev), 7},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    CapturedRun r = run("ADD", c.stdin_text);
    EXPECT_EQ(errorCode(r), c.code) << r.stdout_text;
    EXPECT_EQ(r.stderr_text.find("AddressSanitizer"), std::string::npos) << r.stderr_text;
  }
  EXPECT_TRUE(agent_.requests().empty()) << "bad input reached the agent";
}

TEST_F(CniBinaryTest, BadVariablesAreCode4) {
  const std::string good = conf("1.0.0", "", kPrev);
  for (const auto& env : std::vector<std::vector<std::string>>{{"CNI_CONTAINERID="},
                                                               {"CNI_CONTAINERID=../etc"},
                                                               {"CNI_NETNS="},
                                                               {"CNI_IFNAME=this-name-is-too-long"},
                                                               {"CNI_ARGS=K8S_POD_NAME"}}) {
    SCOPED_TRACE(env[0]);
    EXPECT_EQ(errorCode(run("ADD", good, env)), 4);
  }
  EXPECT_EQ(errorCode(run("RESTART", good)), 4);
}

TEST_F(CniBinaryTest, VersionListsTheSupportedVersions) {
  CapturedRun r = run("VERSION", R"({"cniVersion":"1.0.0"})");
  EXPECT_EQ(r.exitCode(), 0);
  Json v = Json::parse(r.stdout_text);
  EXPECT_EQ(v["cniVersion"], "1.0.0");
  EXPECT_EQ(v["supportedVersions"], Json::parse(R"(["0.3.0","0.3.1","0.4.0","1.0.0"])"));
}

TEST_F(CniBinaryTest, AddCheckDelAgainstTheAgentSocket) {
  const std::string log = dir_.file("rdmesh-cni.log");
  const std::string good = conf("1.0.0", R"("logFile":")" + log + "\"", kPrev);
  CapturedRun add = run("ADD", good);
  ASSERT_EQ(add.exitCode(), 0) << add.stdout_text << add.stderr_text;
  EXPECT_EQ(add.stdout_text, kPrev);  // passed through byte for byte
  EXPECT_EQ(add.stderr_text, "");     // quiet on success: info goes to logFile only
  auto pods = agent_.pods();
  ASSERT_EQ(pods.count("it-pod-1"), 1U);
  EXPECT_EQ(pods["it-pod-1"].request["ips"], Json::array({"10.91.0.9"}));
  EXPECT_EQ(pods["it-pod-1"].request["pod_namespace"], "shop");
  EXPECT_NE(readFile(log).find("ADD it-pod-1: registered pod shop/web-0"), std::string::npos)
      << readFile(log);

  CapturedRun check = run("CHECK", good);
  EXPECT_EQ(check.exitCode(), 0) << check.stdout_text;
  EXPECT_EQ(check.stdout_text, "");

  // DEL as runtimes send it after the pod is gone: no netns, maybe no prevResult.
  for (int i = 0; i < 2; ++i) {
    CapturedRun del = run("DEL", conf("1.0.0", "", nullptr), {"CNI_NETNS="});
    EXPECT_EQ(del.exitCode(), 0) << del.stdout_text;
    EXPECT_EQ(del.stdout_text, "");
  }
  EXPECT_TRUE(agent_.pods().empty());
  EXPECT_EQ(errorCode(run("CHECK", good)), 100);
}

TEST_F(CniBinaryTest, AgentDown) {
  const std::string absent = R"("nodeSocket":")" + dir_.file("absent.sock") + "\"";
  CapturedRun add = run("ADD", conf("1.0.0", absent, kPrev));
  EXPECT_EQ(errorCode(add), 11);
  EXPECT_NE(add.stdout_text.find("node agent unavailable"), std::string::npos);
  EXPECT_NE(add.stderr_text.find("pod_add failed"), std::string::npos) << add.stderr_text;
  EXPECT_EQ(run("DEL", conf("1.0.0", absent, nullptr)).exitCode(), 0);
}

}  // namespace
}  // namespace rdmesh::it
