// rdmesh-xds as a real process with real clients: curl (h2c with prior knowledge, and h2 over
// TLS verifying the server against a CA) subscribing, ACKing and NACKing over NDJSON on stdin;
// the C++ HTTP/2 test client seeing a registration pushed within a second, NACKing and finding
// the NACK in /debug/syncz; delta reconnects with initial_resource_versions; bad requests get
// the error line and a reset while the server stays up; SIGTERM drains.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <regex>

#include "rdmesh/xds/messages.h"
#include "xds_fixture.h"

namespace rdmesh::it {
namespace {

using nlohmann::json;
using xds_test::H2TestClient;
using xds_test::runUntil;

constexpr const char* kClusterUrl = "type.rdmesh.io/rdmesh.v1.Cluster";
constexpr const char* kNodeUrl = "type.rdmesh.io/rdmesh.v1.Node";

std::vector<std::string> jsonLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    // JSON lines only: process logs start with the harness's "### argv" line.
    if (end > start && text[start] == '{') lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

json clusterSyncz(const InetAddress& server, const std::string& id) {
  H2Reply reply = h2Request(server, "GET", "/debug/syncz");
  if (reply.status != 200) return nullptr;
  const json syncz = json::parse(reply.body);
  for (const json& client : syncz["clients"]) {
    if (client.value("id", "") == id) return client["types"][kClusterUrl];
  }
  return nullptr;
}

class XdsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(findExecutable("curl").empty()) << "curl missing (scripts/install-deps.sh)";
    base_.reset(event_base_new());
  }
  // A subscription held by the C++ client; response lines collected.
  std::unique_ptr<H2TestClient> subscribe(const XdsProcess& xds, const std::string& path,
                                          const std::string& first_line) {
    auto client = std::make_unique<H2TestClient>(
        base_.get(), xds.address(),
        H2TestClient::Request{
            .method = "POST", .path = path, .headers = {{"content-type", "application/x-ndjson"}}},
        [this](std::string_view line) { lines_.emplace_back(line); });
    EXPECT_TRUE(client->start().isOk());
    client->write(first_line + "\n");
    return client;
  }
  bool waitLines(size_t count, Millis timeout = 5s) {
    return runUntil(
        base_.get(), [&] { return lines_.size() >= count; }, timeout);
  }

  TempDir dir_{"rdmxds"};
  std::unique_ptr<event_base, decltype(&event_base_free)> base_{nullptr, event_base_free};
  std::vector<std::string> lines_;
};

TEST_F(XdsServerTest, CurlPriorKnowledgeSubscribesAcksAndNacks) {
  XdsProcess xds(dir_);
  ASSERT_NE(xds.plaintextPort(), 0);
  // curl streams its stdin (a FIFO the test writes) as the request body: "-T ." reads stdin
  // without blocking, so responses show while the request body stays open.
  const std::string fifo = dir_.file("requests.fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  Process curl("curl",
               {"sh", "-c",
                "exec curl --http2-prior-knowledge -sS -N -X POST -H 'content-type: "
                "application/x-ndjson' -T . " +
                    xds.url("/rdmesh.xds.v1.Discovery/Stream") + " < " + fifo +
                    // curl 7.88 draws its progress meter with "-T ." despite -s: keep it apart.
                    " 2> " + dir_.file("curl.err")},
               dir_.file("curl.out"));
  UniqueFd requests(open(fifo.c_str(), O_WRONLY | O_CLOEXEC));
  ASSERT_TRUE(requests);
  // A FIFO, not a socket: write(2), not send(2).
  auto sendLine = [&](const std::string& line) {
    std::string bytes = line + "\n";
    ASSERT_EQ(write(requests.get(), bytes.data(), bytes.size()),
              static_cast<ssize_t>(bytes.size()));
  };
  auto responses = [&] {
    std::vector<json> out;
    for (const std::string& line : jsonLines(curl.output())) out.push_back(json::parse(line));
    return out;
  };

  sendLine(R"({"type_url":")" + std::string(kClusterUrl) + R"(","node":)" + sidecarNodeJson() +
           "}");
  ASSERT_TRUE(waitFor([&] { return responses().size() == 1; }, 5s)) << curl.output();
  json first = responses()[0];
  ASSERT_EQ(first["resources"].size(), 1u) << first.dump();
  EXPECT_EQ(first["resources"][0]["name"], "outbound|80||cart.shop");
  EXPECT_EQ(first["resources"][0]["endpoints"].size(), 1u);

  // ACK, then see it in /debug/syncz.
  sendLine(json({{"type_url", kClusterUrl},
                 {"version_info", first["version_info"]},
                 {"response_nonce", first["nonce"]}})
               .dump());
  ASSERT_TRUE(waitFor(
      [&] {
        json state = clusterSyncz(xds.address(), "web-0.shop");
        return state.is_object() && state["acked_version"] == first["version_info"];
      },
      5s));

  // A registration changes the cart cluster: pushed to curl.
  H2Reply put = h2Request(xds.address(), "PUT", "/v1/workloads/shop/cart-1",
                          cartWorkload("cart-1", "10.78.1.11"), bearer());
  ASSERT_EQ(put.status, 200) << put.body;
  ASSERT_TRUE(waitFor([&] { return responses().size() == 2; }, 5s)) << curl.output();
  json second = responses()[1];
  EXPECT_EQ(second["resources"][0]["endpoints"].size(), 2u);

  // NACK it: recorded in syncz with the message, acked version unchanged.
  sendLine(json({{"type_url", kClusterUrl},
                 {"version_info", first["version_info"]},
                 {"response_nonce", second["nonce"]},
                 {"error_detail", {{"code", 3}, {"message", "curl says no"}}}})
               .dump());
  ASSERT_TRUE(waitFor(
      [&] {
        json state = clusterSyncz(xds.address(), "web-0.shop");
        return state.is_object() && state.contains("last_nack");
      },
      5s));
  json state = clusterSyncz(xds.address(), "web-0.shop");
  EXPECT_EQ(state["last_nack"]["message"], "curl says no");
  EXPECT_EQ(state["last_nack"]["version"], second["version_info"]);
  EXPECT_EQ(state["acked_version"], first["version_info"]);
  H2Reply metrics = h2Request(xds.address(), "GET", "/metrics");
  EXPECT_NE(metrics.body.find("rdmesh_xds_nacks_total 1\n"), std::string::npos) << metrics.body;
  EXPECT_NE(metrics.body.find("rdmesh_xds_push_latency_seconds_count 1\n"), std::string::npos);

  // Ending the request body ends the subscription; curl exits cleanly.
  requests.reset();
  auto status = curl.wait(5s);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(describeWaitStatus(*status), describeWaitStatus(0)) << curl.output();
}

TEST_F(XdsServerTest, CurlOverTlsVerifiesTheServer) {
  ASSERT_FALSE(findExecutable("openssl").empty());
  XdsProcess xds(dir_, {.tls = true, .plaintext = false});
  ASSERT_NE(xds.tlsPort(), 0);
  const std::string base = "https://localhost:" + std::to_string(xds.tlsPort());
  writeFile(dir_.file("req.ndjson"), R"({"type_url":")" + std::string(kNodeUrl) + R"(","node":)" +
                                         sidecarNodeJson() + "}\n");
  // Fetch once: curl sends the whole body, the server answers it and ends the stream.
  CommandResult fetch =
      runCommand({"curl", "--http2", "-sS", "--cacert", dir_.file("ca.pem"), "-X", "POST",
                  "--data-binary", "@" + dir_.file("req.ndjson"), "-w",
                  "\nhttp_version=%{http_version}\n", base + "/rdmesh.xds.v1.Discovery/Stream"},
                 dir_.file("curl-tls.log"), "", 10s);
  ASSERT_TRUE(fetch.ok()) << fetch.describe();
  std::vector<std::string> lines = jsonLines(fetch.output);
  ASSERT_EQ(lines.size(), 1u) << fetch.output;
  EXPECT_NE(fetch.output.find("\nhttp_version=2\n"), std::string::npos) << fetch.output;
  json response = json::parse(lines[0]);
  EXPECT_EQ(response["type_url"], kNodeUrl);
  // The sidecar of shop/web-0 sees the node of its cluster's endpoint, not the whole mesh.
  ASSERT_EQ(response["resources"].size(), 1u);
  EXPECT_EQ(response["resources"][0]["name"], "node-b");

  CommandResult ready =
      runCommand({"curl", "--http2", "-sS", "--cacert", dir_.file("ca.pem"), base + "/ready"},
                 dir_.file("curl-ready.log"), "", 10s);
  EXPECT_TRUE(ready.ok()) << ready.describe();
  EXPECT_EQ(ready.output.substr(ready.output.size() - 7), "\nready\n") << ready.output;
  // Without the CA the server certificate does not verify.
  CommandResult unverified =
      runCommand({"curl", "--http2", "-sS", base + "/ready"}, dir_.file("curl-noca.log"), "", 10s);
  EXPECT_FALSE(unverified.ok()) << unverified.describe();
}

TEST_F(XdsServerTest, ClientSeesRegistrationWithinASecondThenNacks) {
  XdsProcess xds(dir_);
  auto client = subscribe(
      xds, "/rdmesh.xds.v1.Discovery/Stream",
      R"({"type_url":")" + std::string(kClusterUrl) + R"(","node":)" + sidecarNodeJson() + "}");
  ASSERT_TRUE(waitLines(1)) << xds.process().output();
  EXPECT_EQ(client->responseStatus(), 200);
  auto first = xds::parseDiscoveryResponse(lines_[0]);
  ASSERT_TRUE(first.isOk()) << first.status().message();
  client->write(json({{"type_url", kClusterUrl},
                      {"version_info", first->version_info},
                      {"response_nonce", first->nonce}})
                    .dump() +
                "\n");
  // The ACK leaves only while this loop runs: wait until the server has it, or a push racing it
  // would make its nonce stale (and the ACK ignored, as xDS says).
  ASSERT_TRUE(runUntil(
      base_.get(),
      [&] {
        json acked = clusterSyncz(xds.address(), "web-0.shop");
        return acked.is_object() && acked.value("acked_version", "") == first->version_info;
      },
      5s))
      << h2Request(xds.address(), "GET", "/debug/syncz").body;

  // Registration API: no token, wrong token, bad body, wrong name, then a good one.
  const std::string body = cartWorkload("cart-7", "10.78.1.17");
  EXPECT_EQ(h2Request(xds.address(), "PUT", "/v1/workloads/shop/cart-7", body).status, 401);
  EXPECT_EQ(h2Request(xds.address(), "PUT", "/v1/workloads/shop/cart-7", body,
                      {{"authorization", "Bearer wrong-token-0123456789"}})
                .status,
            401);
  H2Reply bad =
      h2Request(xds.address(), "PUT", "/v1/workloads/shop/cart-7", R"({"pod":1})", bearer());
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("name: missing (required)"), std::string::npos) << bad.body;
  EXPECT_EQ(h2Request(xds.address(), "PUT", "/v1/workloads/shop/other", body, bearer()).status,
            400);

  const auto registered_at = Clock::now();
  H2Reply put = h2Request(xds.address(), "PUT", "/v1/workloads/shop/cart-7", body, bearer());
  ASSERT_EQ(put.status, 200) << put.body;
  ASSERT_TRUE(waitLines(2, 1000ms)) << "no push within a second of the registration";
  const double seconds = secondsSince(registered_at);
  EXPECT_LT(seconds, 1.0);
  auto second = xds::parseDiscoveryResponse(lines_[1]);
  ASSERT_TRUE(second.isOk()) << second.status().message();
  const auto& cluster = std::get<xds::Cluster>(second->resources.at(0));
  ASSERT_EQ(cluster.endpoints.size(), 2u);
  EXPECT_EQ(cluster.endpoints[1].address, "10.78.1.17:9090");

  // NACK: recorded, shown, and the same version is not sent again.
  client->write(json({{"type_url", kClusterUrl},
                      {"version_info", first->version_info},
                      {"response_nonce", second->nonce},
                      {"error_detail", {{"code", 13}, {"message", "cannot reach 10.78.1.17"}}}})
                    .dump() +
                "\n");
  json state;
  ASSERT_TRUE(runUntil(
      base_.get(),
      [&] {
        state = clusterSyncz(xds.address(), "web-0.shop");
        return state.is_object() && state.contains("last_nack");
      },
      5s))
      << state.dump() << "\n"
      << h2Request(xds.address(), "GET", "/debug/syncz").body;
  EXPECT_EQ(state["last_nack"]["message"], "cannot reach 10.78.1.17");
  EXPECT_EQ(state["acked_version"], first->version_info);
  // Re-registering the same workload changes nothing: nothing is pushed.
  ASSERT_EQ(h2Request(xds.address(), "PUT", "/v1/workloads/shop/cart-7", body, bearer()).status,
            200);
  // A real change (deleting it) is pushed as a new version.
  ASSERT_EQ(h2Request(xds.address(), "DELETE", "/v1/workloads/shop/cart-7", "", bearer()).status,
            200);
  ASSERT_TRUE(waitLines(3, 2s));
  EXPECT_EQ(lines_.size(), 3u);
  auto third = xds::parseDiscoveryResponse(lines_[2]);
  ASSERT_TRUE(third.isOk());
  EXPECT_EQ(third->version_info, first->version_info) << "back to the first content";
  EXPECT_EQ(std::get<xds::Cluster>(third->resources.at(0)).endpoints.size(), 1u);
}

TEST_F(XdsServerTest, DeltaReconnectWithInitialResourceVersions) {
  XdsProcess xds(dir_);
  const std::string node_agent = R"({"id":"agent-a","role":"node","node_name":"node-a"})";
  auto client =
      subscribe(xds, "/rdmesh.xds.v1.Discovery/DeltaStream",
                R"({"type_url":")" + std::string(kNodeUrl) + R"(","node":)" + node_agent + "}");
  ASSERT_TRUE(waitLines(1)) << xds.process().output();
  auto first = xds::parseDeltaDiscoveryResponse(lines_[0]);
  ASSERT_TRUE(first.isOk()) << first.status().message();
  ASSERT_EQ(first->resources.size(), 2u);
  json versions = json::object();
  for (const auto& resource : first->resources) versions[resource.name] = resource.version;
  client->abort();
  client.reset();

  // Meanwhile node-b changes and node-c appears.
  ASSERT_EQ(
      h2Request(
          xds.address(), "PUT", "/v1/nodes/node-b",
          R"({"name":"node-b","addresses":["10.77.1.22"],"fabric":"tcp","session_address":"10.77.1.22:15008"})",
          bearer())
          .status,
      200);
  ASSERT_EQ(
      h2Request(
          xds.address(), "PUT", "/v1/nodes/node-c",
          R"({"name":"node-c","addresses":["10.77.1.3"],"fabric":"verbs","session_address":"10.77.1.3:15008"})",
          bearer())
          .status,
      200);
  lines_.clear();
  json reconnect = {{"type_url", kNodeUrl},
                    {"node", json::parse(node_agent)},
                    {"resource_names_subscribe", {"*"}},
                    {"initial_resource_versions", versions}};
  client = subscribe(xds, "/rdmesh.xds.v1.Discovery/DeltaStream", reconnect.dump());
  ASSERT_TRUE(waitLines(1));
  auto resync = xds::parseDeltaDiscoveryResponse(lines_[0]);
  ASSERT_TRUE(resync.isOk()) << resync.status().message();
  std::vector<std::string> names;
  for (const auto& resource : resync->resources) names.push_back(resource.name);
  EXPECT_EQ(names, (std::vector<std::string>{"node-b", "node-c"})) << "node-a was up to date";
  EXPECT_TRUE(resync->removed_resources.empty());

  // ACK, then a removal arrives as removed_resources only.
  client->write(json({{"type_url", kNodeUrl}, {"response_nonce", resync->nonce}}).dump() + "\n");
  ASSERT_EQ(h2Request(xds.address(), "DELETE", "/v1/nodes/node-c", "", bearer()).status, 200);
  ASSERT_TRUE(waitLines(2));
  auto removal = xds::parseDeltaDiscoveryResponse(lines_[1]);
  ASSERT_TRUE(removal.isOk());
  EXPECT_TRUE(removal->resources.empty());
  EXPECT_EQ(removal->removed_resources, std::vector<std::string>{"node-c"});
}

TEST_F(XdsServerTest, BadRequestsGetErrorLineAndResetServerStaysUp) {
  XdsProcess xds(dir_);
  struct Case {
    std::string name;
    std::string bytes;
    std::string message_part;
  };
  const std::vector<Case> cases = {
      {"garbage", "this is not json\n", "not valid JSON"},
      {"wrong type URL",
       R"({"type_url":"type.googleapis.com/envoy.config.cluster.v3.Cluster","node":)" +
           sidecarNodeJson() + "}\n",
       "type_url: unknown type URL"},
      {"no identity", R"({"type_url":")" + std::string(kClusterUrl) + "\"}\n",
       "node: required in the first request"},
      {"huge line", std::string(5u << 20, 'x'), "over the 4194304-byte limit"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    lines_.clear();
    auto client = std::make_unique<H2TestClient>(
        base_.get(), xds.address(),
        H2TestClient::Request{.method = "POST", .path = "/rdmesh.xds.v1.Discovery/Stream"},
        [this](std::string_view line) { lines_.emplace_back(line); });
    ASSERT_TRUE(client->start().isOk());
    client->write(c.bytes);
    ASSERT_TRUE(runUntil(
        base_.get(), [&] { return client->streamClosed() || client->connectionClosed(); }, 10s));
    ASSERT_EQ(lines_.size(), 1u);
    auto error = xds::parseStreamError(lines_[0]);
    ASSERT_TRUE(error.has_value()) << lines_[0];
    EXPECT_EQ(error->code, 400);
    EXPECT_NE(error->message.find(c.message_part), std::string::npos) << error->message;
    EXPECT_TRUE(client->streamClosed()) << "stream reset, connection kept";
    EXPECT_FALSE(client->connectionClosed());
  }
  EXPECT_TRUE(xds.process().running());
  EXPECT_EQ(h2Request(xds.address(), "GET", "/ready").status, 200);
  H2Reply metrics = h2Request(xds.address(), "GET", "/metrics");
  EXPECT_NE(metrics.body.find("rdmesh_xds_bad_requests_total 4\n"), std::string::npos)
      << metrics.body;
  // And still serves subscriptions.
  lines_.clear();
  auto client = subscribe(
      xds, "/rdmesh.xds.v1.Discovery/Stream",
      R"({"type_url":")" + std::string(kClusterUrl) + R"(","node":)" + sidecarNodeJson() + "}");
  EXPECT_TRUE(waitLines(1));
}

TEST_F(XdsServerTest, SigtermEndsStreamsAndExits) {
  XdsProcess xds(dir_);
  auto client = subscribe(
      xds, "/rdmesh.xds.v1.Discovery/Stream",
      R"({"type_url":")" + std::string(kClusterUrl) + R"(","node":)" + sidecarNodeJson() + "}");
  ASSERT_TRUE(waitLines(1));
  ASSERT_TRUE(xds.process().signal(SIGTERM));
  EXPECT_TRUE(runUntil(
      base_.get(), [&] { return client->responseEnded(); }, 5s))
      << "the subscription should end so the client moves to another replica";
  auto status = xds.process().wait(10s);
  ASSERT_TRUE(status.has_value()) << "still running after SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << describeWaitStatus(*status);
}

TEST_F(XdsServerTest, BadRegistryFileFailsWithPosition) {
  writeFile(dir_.file("bad.yaml"), "nodes:\n  - name: node-a\n    fabric: infiniband\n");
  CommandResult result =
      runCommand({xdsBinary(), "--plaintext-port", "0", "--registry-file", dir_.file("bad.yaml")},
                 dir_.file("bad.log"), "", 10s);
  EXPECT_FALSE(result.ok());
  EXPECT_NE(result.output.find(dir_.file("bad.yaml") + ":2:5: nodes[0].addresses: missing"),
            std::string::npos)
      << result.output;
}

}  // namespace
}  // namespace rdmesh::it
