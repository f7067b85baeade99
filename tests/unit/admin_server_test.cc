#include "admin_server.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

namespace rdmesh::proxy {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

struct HttpResponse {
  int status = 0;    // 0: no response (connect or read failed)
  std::string head;  // status line and headers
  std::string body;
};

// A blocking HTTP/1.0 client: one request per connection, read until the server closes.
HttpResponse httpRequest(uint16_t port, const std::string& method, const std::string& target) {
  HttpResponse response;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return response;
  // A hung server fails the test instead of hanging it.
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return response;
  }
  std::string request =
      method + " " + target + " HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n";
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    close(fd);
    return response;
  }
  std::string raw;
  char buffer[4096];
  for (;;) {
    ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    raw.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos || raw.compare(0, 7, "HTTP/1.") != 0) return response;
  response.head = raw.substr(0, head_end);
  response.body = raw.substr(head_end + 4);
  response.status = std::atoi(raw.c_str() + 9);
  return response;
}

// Runs an AdminServer on its own event loop thread, as the proxy's main thread would.
class AdminServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { evthread_use_pthreads(); }

  void start(AdminServer::Handlers handlers, bool with_probe = false) {
    base_ = event_base_new();
    ASSERT_NE(base_, nullptr);
    server_ = std::make_unique<AdminServer>(base_, stats_, std::move(handlers));
    auto address = InetAddress::parse("127.0.0.1:0");
    ASSERT_TRUE(address.isOk());
    Status status = server_->listen(*address);
    ASSERT_TRUE(status.isOk()) << status.message();
    ASSERT_NE(server_->boundPort(), 0);
    if (with_probe) {
      Status probe = server_->listenProbe(*address);
      ASSERT_TRUE(probe.isOk()) << probe.message();
      ASSERT_NE(server_->probePort(), 0);
      ASSERT_NE(server_->probePort(), server_->boundPort());
    }
    loop_ = std::thread([this] { event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY); });
  }

  void startDefault(bool with_probe = false) {
    AdminServer::Handlers handlers;
    handlers.ready = [this] { return ready_.load(); };
    handlers.config_dump = [] { return std::string(R"({"node":{"name":"node-a"}})"); };
    handlers.quit = [this] { ++quit_calls_; };
    start(std::move(handlers), with_probe);
  }

  void TearDown() override {
    if (loop_.joinable()) {
      event_base_loopbreak(base_);
      loop_.join();
    }
    server_.reset();
    if (base_ != nullptr) event_base_free(base_);
  }

  HttpResponse get(const std::string& target) { return request("GET", target); }
  // The quit handler runs on the loop thread after the reply is written: poll for it.
  bool quitCalledWithin5s() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (quit_calls_ == 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return quit_calls_ > 0;
  }
  HttpResponse request(const std::string& method, const std::string& target) {
    return httpRequest(server_->boundPort(), method, target);
  }

  StatsStore stats_;
  std::atomic<bool> ready_{true};
  std::atomic<int> quit_calls_{0};
  event_base* base_ = nullptr;
  std::unique_ptr<AdminServer> server_;
  std::thread loop_;
};

// The kubelet's port: /ready follows the same handler; nothing else is served there.
TEST_F(AdminServerTest, ProbePortServesReadyAndNothingElse) {
  startDefault(/*with_probe=*/true);
  const uint16_t probe = server_->probePort();
  HttpResponse live = httpRequest(probe, "GET", "/ready");
  EXPECT_EQ(live.status, 200);
  EXPECT_EQ(live.body, "LIVE\n");
  ready_ = false;
  EXPECT_EQ(httpRequest(probe, "GET", "/ready").status, 503);
  for (const char* target : {"/stats", "/config_dump", "/quitquitquit", "/"}) {
    HttpResponse other = httpRequest(probe, "GET", target);
    EXPECT_EQ(other.status, 404) << target;
  }
  EXPECT_EQ(httpRequest(probe, "POST", "/ready").status, 405);
  EXPECT_EQ(quit_calls_, 0);
  // The full endpoint is unchanged.
  EXPECT_EQ(get("/stats").status, 200);
}

TEST_F(AdminServerTest, ReadyFollowsTheReadyHandler) {
  startDefault();
  HttpResponse live = get("/ready");
  EXPECT_EQ(live.status, 200);
  EXPECT_EQ(live.body, "LIVE\n");
  EXPECT_THAT(live.head, HasSubstr("Content-Type: text/plain"));

  // Probes may use HEAD: same status, no body.
  HttpResponse head = request("HEAD", "/ready");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.body, "");
  EXPECT_THAT(head.head, HasSubstr("Content-Length: 5"));
  EXPECT_EQ(head.head.find("Content-Length"), head.head.rfind("Content-Length")) << head.head;

  ready_ = false;
  HttpResponse draining = get("/ready");
  EXPECT_EQ(draining.status, 503);
  EXPECT_EQ(draining.body, "DRAINING\n");
}

TEST_F(AdminServerTest, StatsRendersEveryStatAsText) {
  stats_.counter("cluster.backend", "upstream_cx_total").inc(3);
  stats_.gauge("listener.outbound", "downstream_cx_active").set(2);
  stats_.setText("session.node-b", "fabric", "tcp");
  startDefault();
  HttpResponse response = get("/stats");
  EXPECT_EQ(response.status, 200);
  EXPECT_THAT(response.head, HasSubstr("Content-Type: text/plain"));
  EXPECT_EQ(response.body, stats_.renderText());
  EXPECT_THAT(response.body, HasSubstr("rdmesh.cluster.backend.upstream_cx_total: 3\n"));
  EXPECT_THAT(response.body, HasSubstr("rdmesh.session.node-b.fabric: \"tcp\"\n"));
}

TEST_F(AdminServerTest, StatsFilterKeepsMatchingNames) {
  stats_.counter("cluster.backend", "upstream_cx_total").inc(3);
  stats_.counter("listener.outbound", "downstream_cx_total").inc(4);
  startDefault();
  HttpResponse response = get("/stats?filter=upstream");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "rdmesh.cluster.backend.upstream_cx_total: 3\n");

  // Percent-encoded filter values are decoded.
  EXPECT_EQ(get("/stats?filter=listener%2Eoutbound").body,
            "rdmesh.listener.outbound.downstream_cx_total: 4\n");
  EXPECT_EQ(get("/stats?filter=nothing-matches").body, "");
  // An empty filter is no filter.
  EXPECT_EQ(get("/stats?filter=").body, stats_.renderText());
}

TEST_F(AdminServerTest, StatsPrometheusUsesTheExpositionFormat) {
  stats_.counter("cluster.backend", "upstream_cx_total").inc(3);
  stats_.gauge("session.node-b", "streams_active").set(5);
  startDefault();
  HttpResponse response = get("/stats/prometheus");
  EXPECT_EQ(response.status, 200);
  EXPECT_THAT(response.head, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  EXPECT_THAT(response.body, HasSubstr("# TYPE rdmesh_cluster_backend_upstream_cx_total counter\n"
                                       "rdmesh_cluster_backend_upstream_cx_total 3\n"));
  EXPECT_THAT(response.body, HasSubstr("# TYPE rdmesh_session_node_b_streams_active gauge\n"
                                       "rdmesh_session_node_b_streams_active 5\n"));
}

TEST_F(AdminServerTest, StatsReflectUpdatesBetweenRequests) {
  Stat& requests = stats_.counter("worker", "requests");
  startDefault();
  EXPECT_THAT(get("/stats").body, HasSubstr("rdmesh.worker.requests: 0\n"));
  requests.inc(7);
  EXPECT_THAT(get("/stats").body, HasSubstr("rdmesh.worker.requests: 7\n"));
}

TEST_F(AdminServerTest, ConfigDumpIsJson) {
  startDefault();
  HttpResponse response = get("/config_dump");
  EXPECT_EQ(response.status, 200);
  EXPECT_THAT(response.head, HasSubstr("Content-Type: application/json"));
  EXPECT_EQ(response.body, "{\"node\":{\"name\":\"node-a\"}}\n");
}

TEST_F(AdminServerTest, QuitQuitQuitRepliesThenCallsQuit) {
  startDefault();
  HttpResponse response = request("POST", "/quitquitquit");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "OK\n");
  // The handler runs once the reply is on the wire.
  EXPECT_TRUE(quitCalledWithin5s());
  EXPECT_EQ(quit_calls_, 1);
}

TEST_F(AdminServerTest, QuitQuitQuitAcceptsGet) {
  startDefault();
  EXPECT_EQ(get("/quitquitquit").status, 200);
  EXPECT_TRUE(quitCalledWithin5s());
  EXPECT_EQ(quit_calls_, 1);
}

TEST_F(AdminServerTest, UnknownPathIs404WithTheEndpointList) {
  startDefault();
  HttpResponse response = get("/nope");
  EXPECT_EQ(response.status, 404);
  EXPECT_THAT(response.body, HasSubstr("/ready"));
  EXPECT_THAT(response.body, HasSubstr("/stats/prometheus"));
  EXPECT_THAT(response.body, HasSubstr("/quitquitquit"));
  EXPECT_EQ(get("/").status, 404);
  EXPECT_EQ(get("/stats/").status, 404);
}

TEST_F(AdminServerTest, WrongMethodIs405) {
  startDefault();
  HttpResponse post_stats = request("POST", "/stats");
  EXPECT_EQ(post_stats.status, 405);
  EXPECT_THAT(post_stats.head, HasSubstr("Allow: GET"));
  EXPECT_EQ(request("PUT", "/ready").status, 405);
  EXPECT_EQ(request("DELETE", "/config_dump").status, 405);
  EXPECT_EQ(request("POST", "/stats/prometheus").status, 405);
  EXPECT_EQ(request("PUT", "/quitquitquit").status, 405);
  // A rejected quit must not quit. A quit fires once its reply is written; a later request being
  // answered shows the loop got past that point.
  EXPECT_EQ(get("/ready").status, 200);
  EXPECT_EQ(quit_calls_, 0);
}

TEST_F(AdminServerTest, MissingHandlersAreHarmless) {
  start(AdminServer::Handlers{});
  EXPECT_EQ(get("/ready").status, 200);
  HttpResponse dump = get("/config_dump");
  EXPECT_EQ(dump.status, 200);
  EXPECT_EQ(dump.body, "{}\n");
  EXPECT_EQ(request("POST", "/quitquitquit").status, 200);
  // The deferred quit fires (with no handler) once its reply is written; the server keeps serving.
  EXPECT_EQ(get("/ready").status, 200);
  EXPECT_EQ(get("/ready").status, 200);
}

TEST_F(AdminServerTest, ReportsTheKernelChosenPortAndWorksWithCurl) {
  startDefault();
  std::string command = "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:" +
                        std::to_string(server_->boundPort()) + "/ready";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char out[16] = {};
  size_t n = fread(out, 1, sizeof(out) - 1, pipe);
  int rc = pclose(pipe);
  if (rc != 0 && n == 0) GTEST_SKIP() << "curl not usable here";
  EXPECT_STREQ(out, "200");
}

TEST(AdminServerListen, PortInUseIsAnError) {
  event_base* base = event_base_new();
  StatsStore stats;
  AdminServer first(base, stats, {});
  ASSERT_TRUE(first.listen(InetAddress::parse("127.0.0.1:0").value()).isOk());
  AdminServer second(base, stats, {});
  Status status =
      second.listen(InetAddress::parse("127.0.0.1:" + std::to_string(first.boundPort())).value());
  EXPECT_FALSE(status.isOk());
  EXPECT_THAT(status.message(), HasSubstr(std::to_string(first.boundPort())));
  // A failed listen leaves the server usable: it can listen elsewhere.
  EXPECT_TRUE(second.listen(InetAddress::parse("127.0.0.1:0").value()).isOk());
  EXPECT_NE(second.boundPort(), first.boundPort());
  // Listening twice on one server is refused, not leaked.
  EXPECT_FALSE(first.listen(InetAddress::parse("127.0.0.1:0").value()).isOk());
  event_base_free(base);
}

}  // namespace
}  // namespace rdmesh::proxy
