// rdmesh-cni parsing and validation: environment, CNI_ARGS, network configuration, prevResult,
// and the result it passes through. Pure functions, no agent.
#include "cni_request.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "cni_result.h"
#include "cni_version.h"

namespace rdmesh::cni {
namespace {

using Json = nlohmann::ordered_json;

// A bridge + host-local result as the Debian plugins print it (host side first, pod side last).
constexpr const char* kBridgeResult =
    R"({"cniVersion":"1.0.0","interfaces":[{"name":"cni0","mac":"da:e9:64:a9:10:53"},{"name":"veth09a6f375","mac":"72:55:9b:10:74:83"},{"name":"eth0","mac":"a6:be:ec:b8:61:18","sandbox":"/proc/13076/ns/net"}],"ips":[{"interface":2,"address":"10.233.1.3/24","gateway":"10.233.1.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}})";

CniEnvironment addEnv() {
  return {"ADD",
          "default-redis1",
          "/proc/13076/ns/net",
          "eth0",
          "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=redis-0;K8S_POD_UID=u-1",
          ""};
}

std::string config(const std::string& extra = "", const char* prev = kBridgeResult) {
  std::string c = R"({"cniVersion":"1.0.0","name":"rdmesh-test","type":"rdmesh-cni")";
  if (!extra.empty()) c += "," + extra;
  if (prev) c += std::string(R"(,"prevResult":)") + prev;
  return c + "}";
}

CniRequest parseOk(const CniEnvironment& env, const std::string& stdin_text) {
  auto r = parseRequest(env, stdin_text);
  if (isError(r)) {
    ADD_FAILURE() << "unexpected error " << std::get<CniError>(r).code << ": "
                  << std::get<CniError>(r).msg << ": " << std::get<CniError>(r).details;
    return {};
  }
  return std::get<CniRequest>(r);
}

CniError parseError(const CniEnvironment& env, const std::string& stdin_text) {
  auto r = parseRequest(env, stdin_text);
  if (!isError(r)) {
    ADD_FAILURE() << "accepted: " << stdin_text;
    return {};
  }
  return std::get<CniError>(r);
}

TEST(CniVersion, ParsesAndCompares) {
  EXPECT_EQ(parseSpecVersion("1.0.0"), (SpecVersion{1, 0, 0}));
  EXPECT_EQ(parseSpecVersion("0.4.10"), (SpecVersion{0, 4, 10}));
  for (const char* bad :
       {"", "1", "1.0", "1.0.0.0", "1..0", "a.b.c", "1.0.0-rc1", " 1.0.0", "-1.0.0"})
    EXPECT_FALSE(parseSpecVersion(bad)) << bad;
  EXPECT_TRUE(versionAtLeast("1.0.0", "0.4.0"));
  EXPECT_TRUE(versionAtLeast("0.4.0", "0.4.0"));
  EXPECT_FALSE(versionAtLeast("0.3.1", "0.4.0"));
  EXPECT_FALSE(versionAtLeast("junk", "0.4.0"));
  EXPECT_TRUE(isSupportedVersion("0.3.1"));
  EXPECT_FALSE(isSupportedVersion("0.2.0"));
  EXPECT_FALSE(isSupportedVersion("1.1.0"));
}

TEST(CniArgs, ParsesPairsAndRejectsJunk) {
  auto args = parseCniArgs("IgnoreUnknown=1;K8S_POD_NAME=web-0;;K8S_POD_NAMESPACE=a=b;");
  ASSERT_FALSE(isError(args));
  auto kv = std::get<std::map<std::string, std::string>>(args);
  EXPECT_EQ(kv["K8S_POD_NAME"], "web-0");
  EXPECT_EQ(kv["K8S_POD_NAMESPACE"], "a=b");  // only the first '=' splits
  EXPECT_EQ(kv.size(), 3U);
  using Args = std::map<std::string, std::string>;
  EXPECT_TRUE(std::get<Args>(parseCniArgs("")).empty());
  for (const char* bad : {"novalue", "K=V;=x", "a=1;b"}) {
    auto r = parseCniArgs(bad);
    ASSERT_TRUE(isError(r)) << bad;
    EXPECT_EQ(std::get<CniError>(r).code, kErrInvalidEnvironment);
  }
}

TEST(CniRequestParse, AddReadsEverything) {
  auto env = addEnv();
  env.node_socket = "/run/env.sock";
  auto req = parseOk(
      env,
      config(
          R"("excludeOutboundPorts":[6379,5432,6379],"logFile":"/var/log/rdmesh-cni.log","agentTimeoutMs":2500)"));
  EXPECT_EQ(req.command, CniCommand::kAdd);
  EXPECT_EQ(req.container_id, "default-redis1");
  EXPECT_EQ(req.netns, "/proc/13076/ns/net");
  EXPECT_EQ(req.ifname, "eth0");
  EXPECT_EQ(req.pod.name, "redis-0");
  EXPECT_EQ(req.pod.pod_namespace, "shop");
  EXPECT_EQ(req.pod.uid, "u-1");
  EXPECT_EQ(req.config.cni_version, "1.0.0");
  EXPECT_EQ(req.config.network_name, "rdmesh-test");
  EXPECT_EQ(req.config.node_socket, "/run/env.sock");  // $RDMESH_NODE_SOCKET without "nodeSocket"
  EXPECT_EQ(req.config.exclude_outbound_ports, (std::vector<uint16_t>{5432, 6379}));
  EXPECT_EQ(req.config.log_file, "/var/log/rdmesh-cni.log");
  EXPECT_EQ(req.config.agent_timeout_ms, 2500);
  EXPECT_EQ(req.pod_ips, std::vector<std::string>{"10.233.1.3"});
  ASSERT_TRUE(req.prev_result);
  EXPECT_EQ(req.prev_result->dump(), Json::parse(kBridgeResult).dump());
}

TEST(CniRequestParse, NodeSocketPrecedence) {
  auto env = addEnv();
  EXPECT_EQ(parseOk(env, config()).config.node_socket, "/var/run/rdmesh/node.sock");
  env.node_socket = "/run/env.sock";
  EXPECT_EQ(parseOk(env, config(R"("nodeSocket":"/run/conf.sock")")).config.node_socket,
            "/run/conf.sock");
}

TEST(CniRequestParse, EnvironmentErrorsAreCode4) {
  struct Case {
    const char* what;
    CniEnvironment env;
  };
  auto with = [](auto mutate) {
    CniEnvironment e = addEnv();
    mutate(e);
    return e;
  };
  const std::vector<Case> cases = {
      {"no command", with([](auto& e) { e.command = ""; })},
      {"lowercase command", with([](auto& e) { e.command = "add"; })},
      {"no container id", with([](auto& e) { e.container_id = ""; })},
      {"container id with slash", with([](auto& e) { e.container_id = "a/b"; })},
      {"container id starting with dash", with([](auto& e) { e.container_id = "-a"; })},
      {"no netns on ADD", with([](auto& e) { e.netns = ""; })},
      {"relative netns", with([](auto& e) { e.netns = "proc/1/ns/net"; })},
      {"no ifname", with([](auto& e) { e.ifname = ""; })},
      {"ifname too long", with([](auto& e) { e.ifname = "abcdefghijklmnop"; })},
      {"ifname with slash", with([](auto& e) { e.ifname = "et/h0"; })},
      {"bad CNI_ARGS", with([](auto& e) { e.args = "K8S_POD_NAME"; })},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(parseError(c.env, config()).code, kErrInvalidEnvironment) << c.what;
  }
}

TEST(CniRequestParse, DecodeErrorsAreCode6) {
  for (const char* bad :
       {"", "not json", "[1,2]", "\"text\"", "{\"cniVersion\":\"1.0.0\"", "{\"a\":1}{\"b\":2}"}) {
    EXPECT_EQ(parseError(addEnv(), bad).code, kErrDecodingFailure) << bad;
  }
  // Nesting deep enough to exhaust the stack when printed is refused up front.
  std::string deep =
      R"({"cniVersion":"1.0.0","x":)" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_EQ(parseError(addEnv(), deep).code, kErrDecodingFailure);
  EXPECT_EQ(jsonNestingDepth(R"({"a":"[[[[{{{{","b":[[1]]})"), 3U);
}

TEST(CniRequestParse, VersionErrorsAreCode1) {
  for (const char* conf :
       {R"({"name":"n","prevResult":{}})", R"({"cniVersion":"0.2.0"})", R"({"cniVersion":"2.0.0"})",
        R"({"cniVersion":100})", R"({"cniVersion":"one"})"}) {
    EXPECT_EQ(parseError(addEnv(), conf).code, kErrIncompatibleVersion) << conf;
  }
  // CHECK came with 0.4.0.
  auto env = addEnv();
  env.command = "CHECK";
  std::string conf = R"({"cniVersion":"0.3.1","prevResult":)" + std::string(kBridgeResult) + "}";
  EXPECT_EQ(parseError(env, conf).code, kErrIncompatibleVersion);
}

TEST(CniRequestParse, OwnFieldErrorsAreCode7AndNameTheField) {
  struct Case {
    const char* extra;
    const char* field;
  };
  for (
      const Case& c : std::vector<Case>{
          {R"("nodeSocket":"relative.sock")", "nodeSocket"},
          {R"("nodeSocket":42)", "nodeSocket"},
          {R"("nodeSocket":"/a/very/long/path/that/does/not/fit/into/sun_path/because/it/is/longer/than/one/hundred/and/seven/bytes.sock")",
           "nodeSocket"},
          {R"("excludeOutboundPorts":"6379")", "excludeOutboundPorts"},
          {R"("excludeOutboundPorts":[0])", "excludeOutboundPorts"},
          {R"("excludeOutboundPorts":[65536])", "excludeOutboundPorts"},
          {R"("excludeOutboundPorts":[80,"81"])", "excludeOutboundPorts"},
          {R"("excludeOutboundPorts":[80.5])", "excludeOutboundPorts"},
          {R"("excludeNamespaces":"kube-system")", "excludeNamespaces"},
          {R"("excludeNamespaces":[""])", "excludeNamespaces"},
          {R"("logFile":"rel.log")", "logFile"},
          {R"("logFile":true)", "logFile"},
          {R"("agentTimeoutMs":0)", "agentTimeoutMs"},
          {R"("agentTimeoutMs":"5")", "agentTimeoutMs"},
          {R"("agentTimeoutMs":99999999)", "agentTimeoutMs"},
          {R"("name":7)", "name"},
      }) {
    CniError e = parseError(addEnv(), config(c.extra));
    EXPECT_EQ(e.code, kErrInvalidNetworkConfig) << c.extra;
    EXPECT_NE((e.msg + e.details).find(c.field), std::string::npos)
        << c.extra << " -> " << e.details;
  }
}

TEST(CniRequestParse, PrevResultRequiredForAddAndCheckNotDel) {
  CniError missing = parseError(addEnv(), config("", nullptr));
  EXPECT_EQ(missing.code, kErrInvalidNetworkConfig);
  EXPECT_EQ(missing.msg, "missing prevResult");

  auto check = addEnv();
  check.command = "CHECK";
  EXPECT_EQ(parseError(check, config("", nullptr)).code, kErrInvalidNetworkConfig);
  EXPECT_EQ(parseOk(check, config()).pod_ips, std::vector<std::string>{"10.233.1.3"});

  // DEL: no prevResult, no netns (the pod is gone), even a broken cached result is fine.
  auto del = addEnv();
  del.command = "DEL";
  del.netns = "";
  auto req = parseOk(del, config("", nullptr));
  EXPECT_EQ(req.command, CniCommand::kDel);
  EXPECT_TRUE(req.netns.empty());
  EXPECT_FALSE(req.prev_result);
  parseOk(del, config("", R"({"ips":"garbage"})"));
  parseOk(del, config("", "[]"));
}

TEST(CniRequestParse, PodAddressesComeFromThePodInterfaceOnly) {
  // Host-side addresses (the bridge's gateway on interface 0) are not the pod's.
  const char* result = R"({"cniVersion":"1.0.0",
    "interfaces":[{"name":"cni0"},{"name":"eth0","sandbox":"/var/run/netns/p"},{"name":"net1"}],
    "ips":[{"interface":0,"address":"10.0.0.1/24"},
           {"interface":1,"address":"10.0.0.5/24"},
           {"interface":1,"address":"fd00::0005/64"},
           {"interface":1,"address":"10.0.0.5/24"},
           {"address":"192.168.7.7/32"}]})";
  auto ips = podIpsFromResult(Json::parse(result), "eth0");
  ASSERT_FALSE(isError(ips));
  EXPECT_EQ(std::get<std::vector<std::string>>(ips),
            (std::vector<std::string>{"10.0.0.5", "fd00::5", "192.168.7.7"}));

  // The interface named CNI_IFNAME counts even without a sandbox field.
  ips = podIpsFromResult(Json::parse(R"({"interfaces":[{"name":"eth0"}],
      "ips":[{"interface":0,"address":"10.1.1.1/16","version":"4"}]})"),
                         "eth0");
  EXPECT_EQ(std::get<std::vector<std::string>>(ips), std::vector<std::string>{"10.1.1.1"});
}

TEST(CniRequestParse, MalformedPrevResultIsCode7) {
  for (const char* prev :
       {R"([])", R"({"ips":{}})", R"({"ips":[1]})", R"({"ips":[{"address":"10.0.0.1"}]})",
        R"({"ips":[{"address":"10.0.0.300/24"}]})", R"({"ips":[{"address":"10.0.0.1/33"}]})",
        R"({"ips":[{"address":"fd00::1/129"}]})", R"({"ips":[{"address":"10.0.0.1/"}]})",
        R"({"ips":[{"address":7}]})", R"({"ips":[{"interface":3,"address":"10.0.0.1/24"}]})",
        R"({"ips":[{"interface":-1,"address":"10.0.0.1/24"}]})",
        R"({"interfaces":"eth0","ips":[]})", R"({"interfaces":[1],"ips":[]})",
        R"({"cniVersion":1,"ips":[{"address":"10.0.0.1/24"}]})"}) {
    EXPECT_EQ(parseError(addEnv(), config("", prev)).code, kErrInvalidNetworkConfig) << prev;
  }
  // A result with no address for the pod: nothing to register.
  CniError none = parseError(
      addEnv(),
      config(
          "",
          R"({"interfaces":[{"name":"cni0"}],"ips":[{"interface":0,"address":"10.0.0.1/24"}]})"));
  EXPECT_EQ(none.code, kErrInvalidNetworkConfig);
  EXPECT_EQ(none.msg, "prevResult has no pod address");
}

TEST(CniRequestParse, ExcludedNamespaces) {
  auto req = parseOk(addEnv(), config(R"("excludeNamespaces":["kube-system","shop"])"));
  EXPECT_TRUE(req.podExcluded());
  req = parseOk(addEnv(), config(R"("excludeNamespaces":["kube-system"])"));
  EXPECT_FALSE(req.podExcluded());
}

TEST(CniRequestParse, VersionNeedsNothingElse) {
  CniEnvironment env;
  env.command = "VERSION";
  EXPECT_EQ(parseOk(env, "garbage").command, CniCommand::kVersion);
}

TEST(CniResult, ErrorAndVersionObjects) {
  auto e = Json::parse(errorJson({7, "bad", "field x"}, "0.4.0"));
  EXPECT_EQ(e.dump(), R"({"cniVersion":"0.4.0","code":7,"msg":"bad","details":"field x"})");
  EXPECT_FALSE(Json::parse(errorJson({11, "later", ""}, "1.0.0")).contains("details"));
  // Bytes that are not UTF-8 (from the runtime's variables) do not break the object.
  EXPECT_TRUE(Json::accept(errorJson({4, "bad", "id \xff\xfe"}, "1.0.0")));
  auto v = Json::parse(versionJson());
  EXPECT_EQ(v["cniVersion"], "1.0.0");
  EXPECT_EQ(v["supportedVersions"], Json::parse(R"(["0.3.0","0.3.1","0.4.0","1.0.0"])"));
  EXPECT_EQ(errorVersionFor(R"({"cniVersion":"0.4.0"})"), "0.4.0");
  EXPECT_EQ(errorVersionFor(R"({"cniVersion":"7.0.0"})"), "1.0.0");
  EXPECT_EQ(errorVersionFor("junk"), "1.0.0");
}

TEST(CniResult, PassThroughIsByteIdenticalInTheSameVersion) {
  auto out = passThroughResult(Json::parse(kBridgeResult), "1.0.0");
  ASSERT_FALSE(isError(out));
  EXPECT_EQ(std::get<Json>(out).dump(), std::string(kBridgeResult));
}

TEST(CniResult, PassThroughConvertsBetweenSupportedVersions) {
  // 0.4.0 -> 1.0.0: ips[].version goes, everything else stays.
  auto out = passThroughResult(
      Json::parse(
          R"({"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.0.0.5/24"}],"dns":{}})"),
      "1.0.0");
  ASSERT_FALSE(isError(out));
  EXPECT_EQ(std::get<Json>(out).dump(),
            R"({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.5/24"}],"dns":{}})");
  // 1.0.0 -> 0.4.0: ips[].version comes back.
  out = passThroughResult(
      Json::parse(
          R"({"cniVersion":"1.0.0","ips":[{"address":"fd00::5/64"},{"address":"10.0.0.5/24"}]})"),
      "0.4.0");
  EXPECT_EQ(
      std::get<Json>(out).dump(),
      R"({"cniVersion":"0.4.0","ips":[{"address":"fd00::5/64","version":"6"},{"address":"10.0.0.5/24","version":"4"}]})");
  // No version: the configuration's, first.
  out = passThroughResult(Json::parse(R"({"ips":[{"address":"10.0.0.5/24"}]})"), "1.0.0");
  EXPECT_EQ(std::get<Json>(out).dump(),
            R"({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.5/24"}]})");
  // A version it cannot convert.
  out = passThroughResult(Json::parse(R"({"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.5/24"}})"),
                          "1.0.0");
  ASSERT_TRUE(isError(out));
  EXPECT_EQ(std::get<CniError>(out).code, kErrIncompatibleVersion);
}

}  // namespace
}  // namespace rdmesh::cni
