// The injection webhook in a real rdmesh-xds process, over real HTTPS: curl and a C++ client
// post the AdmissionReview fixtures (tests/fixtures/admission) for every rule, the returned
// JSONPatch is applied to the pod, and the patched pod is validated against the Kubernetes
// OpenAPI schema (tests/helm/validate, kubernetes-models from npm).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>

#include "base64.h"
#include "harness.h"
#include "https_test_client.h"
#include "xds_fixture.h"

namespace rdmesh::it {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kServiceName = "rdmesh-xds.rdmesh-system.svc";

std::string fixture(const std::string& name) {
  return std::string(RDMESH_ADMISSION_FIXTURES_DIR) + "/" + name + ".json";
}

class WebhookTest : public ::testing::Test {
 protected:
  // Extra rdmesh-xds flags of a test (before SetUp starts it).
  virtual std::vector<std::string> extraArgs() const { return {}; }

  void SetUp() override {
    if (findExecutable("openssl").empty() || findExecutable("curl").empty()) {
      GTEST_SKIP() << "openssl and curl are needed";
    }
    makeTestCertificates(dir_);
    writeFile(dir_.file("injection.yaml"),
              "image: registry.example/rdmesh-proxy:0.1.0\n"
              "xdsAddress: rdmesh-xds.rdmesh-system.svc:15012\n"
              "resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {memory: 256Mi}}\n");
    XdsProcess::Options options;
    options.extra_args = {"--port",
                          "0",
                          "--ca-cert",
                          dir_.file("ca.pem"),
                          "--ca-key",
                          dir_.file("ca.key"),
                          "--service-dns",
                          kServiceName,
                          "--webhook-port",
                          "0",
                          "--webhook-listen-ip",
                          "127.0.0.1",
                          "--injection-config",
                          dir_.file("injection.yaml")};
    for (const std::string& arg : extraArgs()) options.extra_args.push_back(arg);
    xds_ = std::make_unique<XdsProcess>(dir_, options);
    const std::regex listening(R"(injection webhook listening on 127\.0\.0\.1:(\d+))");
    ASSERT_TRUE(waitFor(
        [&] {
          std::smatch m;
          const std::string log = xds_->process().output();
          if (!std::regex_search(log, m, listening)) return false;
          port_ = static_cast<uint16_t>(std::stoi(m[1]));
          return true;
        },
        20s))
        << xds_->process().output();
  }

  struct CurlReply {
    int status = 0;
    double seconds = 0;
    Json body;
  };
  CurlReply curlPost(const std::string& body_file) {
    const std::string url =
        "https://" + std::string(kServiceName) + ":" + std::to_string(port_) + "/inject";
    CommandResult result =
        runCommand({"curl", "-sS", "--cacert", dir_.file("ca.pem"), "--resolve",
                    std::string(kServiceName) + ":" + std::to_string(port_) + ":127.0.0.1", "-H",
                    "Content-Type: application/json", "--data-binary", "@" + body_file, "-o",
                    dir_.file("reply.json"), "-w", "%{http_code} %{time_total}", url},
                   dir_.file("curl.log"));
    EXPECT_TRUE(result.ok()) << result.describe();
    CurlReply reply;
    // The last line is curl's -w output (runCommand's log starts with the command).
    const size_t last = result.output.rfind('\n', result.output.size() - 2);
    const std::string written =
        last == std::string::npos ? result.output : result.output.substr(last + 1);
    std::sscanf(written.c_str(), "%d %lf", &reply.status, &reply.seconds);
    reply.body = Json::parse(readFile(dir_.file("reply.json")), nullptr, false);
    return reply;
  }

  // The pod of a fixture with the reply's patch applied (the pod itself without a patch).
  static Json patchedPod(const std::string& fixture_name, const Json& reply) {
    Json pod = Json::parse(readFile(fixture(fixture_name)))["request"]["object"];
    const Json& response = reply["response"];
    if (!response.contains("patch")) return pod;
    EXPECT_EQ(response["patchType"], "JSONPatch");
    Result<std::string> patch = xds_server::base64Decode(response["patch"].get<std::string>());
    EXPECT_TRUE(patch.isOk());
    return pod.patch(Json::parse(*patch));
  }

  TempDir dir_{"rdwh"};
  std::unique_ptr<XdsProcess> xds_;
  uint16_t port_ = 0;
};

TEST_F(WebhookTest, EveryRuleOverCurl) {
  struct Case {
    std::string fixture;
    bool injected;
    std::string api_version = "admission.k8s.io/v1";
    std::string warning;  // a substring of response.warnings[0], when one is expected
  };
  const std::vector<Case> cases = {
      {"pod-basic", true},
      {"pod-v1beta1", true, "admission.k8s.io/v1beta1"},
      {"pod-with-volumes", true},
      {"pod-exclude-ports", true},
      {"pod-opt-out", false},
      {"pod-host-network", false},
      {"pod-already-injected", false},
      {"pod-bad-exclude-ports", false, "admission.k8s.io/v1", "'postgres' is not a port number"},
      {"not-a-pod", false},
      {"pod-update", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.fixture);
    CurlReply reply = curlPost(fixture(c.fixture));
    ASSERT_EQ(reply.status, 200);
    EXPECT_LT(reply.seconds, 0.1) << "the API server's budget is 100 ms";
    const Json request = Json::parse(readFile(fixture(c.fixture)));
    EXPECT_EQ(reply.body["apiVersion"], c.api_version);
    EXPECT_EQ(reply.body["kind"], "AdmissionReview");
    EXPECT_EQ(reply.body["response"]["uid"], request["request"]["uid"]);
    EXPECT_EQ(reply.body["response"]["allowed"], true) << "the webhook never refuses a pod";
    EXPECT_EQ(reply.body["response"].contains("patch"), c.injected) << reply.body.dump();
    if (!c.warning.empty()) {
      ASSERT_TRUE(reply.body["response"].contains("warnings")) << reply.body.dump();
      EXPECT_NE(reply.body["response"]["warnings"][0].get<std::string>().find(c.warning),
                std::string::npos);
    }
    if (!c.injected) continue;
    const Json pod = patchedPod(c.fixture, reply.body);
    ASSERT_GE(pod["spec"]["containers"].size(), 2U);
    const Json& sidecar = pod["spec"]["containers"][0];
    EXPECT_EQ(sidecar["name"], "rdmesh-proxy");
    EXPECT_EQ(sidecar["securityContext"]["runAsUser"], 1337);
    EXPECT_EQ(sidecar["readinessProbe"]["httpGet"]["path"], "/ready");
    EXPECT_EQ(pod["metadata"]["annotations"]["rdmesh.io/injected-version"], "0.1.0");
    bool has_socket_volume = false;
    for (const Json& volume : pod["spec"]["volumes"]) {
      has_socket_volume |=
          volume["name"] == "rdmesh-node-socket" && volume["hostPath"]["path"] == "/var/run/rdmesh";
    }
    EXPECT_TRUE(has_socket_volume);
    // The injected bootstrap trusts the CA that rdmesh-xds issues its certificates from.
    std::string bootstrap;
    for (const Json& env : sidecar["env"]) {
      if (env["name"] == "RDMESH_PROXY_CONFIG") bootstrap = env["value"];
    }
    EXPECT_NE(bootstrap.find(Json(readFile(dir_.file("ca.pem"))).dump()), std::string::npos)
        << bootstrap;
  }
}

TEST_F(WebhookTest, PatchedPodsValidateAgainstTheKubernetesSchema) {
  const std::string validator = std::string(RDMESH_SOURCE_DIR) + "/tests/helm/validate/validate.js";
  if (findExecutable("node").empty() || !std::filesystem::exists(validator) ||
      !std::filesystem::exists(std::string(RDMESH_SOURCE_DIR) +
                               "/tests/helm/validate/node_modules/kubernetes-models")) {
    GTEST_SKIP() << "node and tests/helm/validate (npm ci) are needed";
  }
  std::vector<std::string> argv = {"node", validator};
  for (const char* name : {"pod-basic", "pod-v1beta1", "pod-with-volumes", "pod-exclude-ports"}) {
    CurlReply reply = curlPost(fixture(name));
    ASSERT_EQ(reply.status, 200);
    const std::string path = dir_.file(std::string(name) + "-patched.json");
    writeFile(path, patchedPod(name, reply.body).dump(1));
    argv.push_back(path);
  }
  CommandResult valid = runCommand(argv, dir_.file("validate.log"));
  EXPECT_TRUE(valid.ok()) << valid.describe();

  // The validator is not a rubber stamp: a sidecar with a string port fails it.
  Json broken = Json::parse(readFile(argv[2]));
  broken["spec"]["containers"][0]["ports"][0]["containerPort"] = "15021";
  writeFile(dir_.file("broken.json"), broken.dump());
  CommandResult invalid =
      runCommand({"node", validator, dir_.file("broken.json")}, dir_.file("invalid.log"));
  EXPECT_FALSE(invalid.ok()) << invalid.describe();
}

TEST_F(WebhookTest, CppClientKeepsAliveAndEveryAnswerIsFast) {
  Result<std::unique_ptr<HttpsTestClient>> client =
      HttpsTestClient::connect(port_, dir_.file("ca.pem"), kServiceName);
  ASSERT_TRUE(client.isOk()) << client.status().message();
  const std::string body = readFile(fixture("pod-basic"));
  std::vector<double> millis;
  for (int i = 0; i < 200; ++i) {
    const auto start = std::chrono::steady_clock::now();
    Result<HttpsReply> reply = (*client)->post("/inject", body);
    millis.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
            .count());
    ASSERT_TRUE(reply.isOk()) << reply.status().message();
    ASSERT_EQ(reply->status, 200);
    ASSERT_TRUE(Json::parse(reply->body)["response"].contains("patch"));
  }
  std::sort(millis.begin(), millis.end());
  const double p99 = millis[millis.size() * 99 / 100];
  std::printf("webhook round trip over one kept-alive HTTPS connection: p50 %.2f ms, p99 %.2f ms\n",
              millis[millis.size() / 2], p99);
  EXPECT_LT(p99, 100.0);
}

TEST_F(WebhookTest, BadRequestsGetAnAdmissionReviewErrorAndTheServerLivesOn) {
  struct Case {
    std::string body;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"this is not json", "not valid JSON"},
      {R"({"apiVersion":"admission.k8s.io/v1","kind":"Pod"})", "is not AdmissionReview"},
      {R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"})", "request: missing"},
      {R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-1"}})",
       "request.kind: missing"},
      {std::string(5 << 20, ' '), "over the 4194304-byte limit"},
      {std::string(4096, '['), "nested deeper than"},
  };
  Result<std::unique_ptr<HttpsTestClient>> client =
      HttpsTestClient::connect(port_, dir_.file("ca.pem"), kServiceName);
  ASSERT_TRUE(client.isOk()) << client.status().message();
  for (const Case& c : cases) {
    SCOPED_TRACE(c.expected);
    Result<HttpsReply> reply = (*client)->post("/inject", c.body);
    ASSERT_TRUE(reply.isOk()) << reply.status().message();
    EXPECT_EQ(reply->status, 400);
    Json review = Json::parse(reply->body, nullptr, false);
    ASSERT_FALSE(review.is_discarded()) << reply->body;
    EXPECT_EQ(review["kind"], "AdmissionReview");
    EXPECT_EQ(review["response"]["allowed"], false);
    EXPECT_EQ(review["response"]["status"]["code"], 400);
    EXPECT_NE(review["response"]["status"]["message"].get<std::string>().find(c.expected),
              std::string::npos)
        << review.dump();
  }
  // The uid of a half-readable request is echoed.
  Result<HttpsReply> half = (*client)->post(
      "/inject",
      R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-1"}})");
  ASSERT_TRUE(half.isOk());
  EXPECT_EQ(Json::parse(half->body)["response"]["uid"], "u-1");
  // Still serving.
  CurlReply ok = curlPost(fixture("pod-basic"));
  EXPECT_EQ(ok.status, 200);
  EXPECT_TRUE(xds_->process().running());
  // Plain HTTP on the HTTPS port is refused, not served.
  CommandResult plain = runCommand(
      {"curl", "-sS", "-m", "5", "http://127.0.0.1:" + std::to_string(port_) + "/healthz"},
      dir_.file("plain.log"));
  EXPECT_FALSE(plain.ok() && plain.output.find("ok") != std::string::npos) << plain.output;
}

// A serving certificate of 3 s is renewed at 2 s: a new connection gets the new one, and an open
// connection keeps working on the old one.
class WebhookRotationTest : public WebhookTest {
 protected:
  std::vector<std::string> extraArgs() const override { return {"--cert-validity-s", "3"}; }
};

TEST_F(WebhookRotationTest, RenewedCertificateServesNewConnectionsWithoutRestart) {
  Result<std::unique_ptr<HttpsTestClient>> first =
      HttpsTestClient::connect(port_, dir_.file("ca.pem"), kServiceName);
  ASSERT_TRUE(first.isOk()) << first.status().message();
  const std::string old_serial = (*first)->peerCertificateSerial();
  ASSERT_FALSE(old_serial.empty());
  ASSERT_TRUE(waitFor(
      [&] {
        const std::string log = xds_->process().output();
        size_t issued = 0;
        for (size_t at = log.find("serving certificate "); at != std::string::npos;
             at = log.find("serving certificate ", at + 1)) {
          ++issued;
        }
        return issued >= 2;
      },
      10s))
      << xds_->process().output();
  Result<std::unique_ptr<HttpsTestClient>> second =
      HttpsTestClient::connect(port_, dir_.file("ca.pem"), kServiceName);
  ASSERT_TRUE(second.isOk()) << second.status().message();  // verified against the same root
  EXPECT_NE((*second)->peerCertificateSerial(), old_serial);
  const std::string body = readFile(fixture("pod-basic"));
  for (auto* client : {first->get(), second->get()}) {
    Result<HttpsReply> reply = client->post("/inject", body);
    ASSERT_TRUE(reply.isOk()) << reply.status().message();
    EXPECT_EQ(reply->status, 200);
  }
  EXPECT_TRUE(xds_->process().running());
}

}  // namespace
}  // namespace rdmesh::it
