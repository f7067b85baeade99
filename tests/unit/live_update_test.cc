// Live configuration updates of a running proxy (Server::updateConfig, the path xDS drives):
// listeners start and stop, clusters swap endpoints, established connections survive, and a
// rejected update changes nothing. Real sockets on 127.0.0.1, servers from the test harness.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <string>

#include "config.h"
#include "config_update.h"
#include "harness.h"
#include "server.h"

namespace rdmesh::proxy {
namespace {

using namespace std::chrono_literals;

uint16_t freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(sa);
  ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &length);
  ::close(fd);
  return ntohs(sa.sin_port);
}

// Says its tag on accept, then echoes: which backend a connection reached, and that it is alive.
class TaggedServer {
 public:
  explicit TaggedServer(std::string tag)
      : port_(freePort()), server_("", "127.0.0.1", port_, [tag = std::move(tag)](int fd) {
          if (!it::sendAll(fd, tag + "\n")) return;
          char buffer[256];
          for (;;) {
            ssize_t n = ::read(fd, buffer, sizeof(buffer));
            if (n <= 0 || !it::sendAll(fd, buffer, static_cast<size_t>(n))) return;
          }
        }) {}
  uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  uint16_t port_;
  it::ThreadedServer server_;
};

// A connection through the proxy: reads the backend's tag, then can echo.
struct Client {
  it::UniqueFd fd;
  std::string tag;
};

Client connectTo(uint16_t port) {
  Client c;
  c.fd = it::tcpConnect("", "127.0.0.1", port, 2s, nullptr);
  if (!c.fd) return c;
  it::ReadResult r = it::readExactly(c.fd.get(), 2, 2s);
  if (r.data.size() == 2) c.tag = r.data.substr(0, 1);
  return c;
}

bool echoes(const Client& c, const std::string& text) {
  if (!it::sendAll(c.fd.get(), text)) return false;
  return it::readExactly(c.fd.get(), text.size(), 2s).data == text;
}

// Waits until a new connection to `port` reaches the backend tagged `tag`.
bool waitReaches(uint16_t port, const std::string& tag) {
  return it::waitFor([&] { return connectTo(port).tag == tag; }, 5s);
}

bool waitRefused(uint16_t port) {
  return it::waitFor([&] { return !it::tcpConnect("", "127.0.0.1", port, 1s, nullptr); }, 5s);
}

ListenerConfig outbound(const std::string& name, uint16_t port, const std::string& cluster) {
  ListenerConfig l;
  l.name = name;
  l.direction = ListenerDirection::kOutbound;
  l.address = InetAddress::fromIp("127.0.0.1", port).value();
  l.cluster = cluster;
  return l;
}

ClusterConfig cluster(const std::string& name, const TaggedServer& backend) {
  ClusterConfig c;
  c.name = name;
  c.endpoints.push_back({"local", InetAddress::parse(backend.address()).value()});
  return c;
}

class LiveUpdateTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    std::signal(SIGPIPE, SIG_IGN);
    listener_port_ = freePort();
    std::string yaml = fmt::format(R"(
node: {{name: local, workers: {}}}
admin: {{address: "127.0.0.1:0"}}
transport: {{backend: tcp, listen: "127.0.0.1:0"}}
listeners:
  - {{name: app, direction: outbound, address: "127.0.0.1:{}", cluster: backend}}
clusters:
  - name: backend
    endpoints: [{{node: local, address: "{}"}}]
)",
                                   GetParam(), listener_port_, a_.address());
    auto config = parseConfig(yaml, "test.yaml");
    ASSERT_TRUE(config) << config.status().message();
    server_ = std::make_unique<Server>(std::move(config.value()));
    ASSERT_TRUE(server_->start());
    ASSERT_TRUE(waitReaches(listener_port_, "A"));
  }

  ProxyConfig current() const { return server_->currentConfig(); }

  TaggedServer a_{"A"};
  TaggedServer b_{"B"};
  uint16_t listener_port_ = 0;
  std::unique_ptr<Server> server_;
};

TEST_P(LiveUpdateTest, ClusterEndpointsChangeForNewConnectionsOnly) {
  Client before = connectTo(listener_port_);
  ASSERT_EQ(before.tag, "A");

  ProxyConfig next = current();
  next.clusters = {cluster("backend", b_)};
  ASSERT_TRUE(server_->updateConfig(next));

  EXPECT_TRUE(waitReaches(listener_port_, "B"));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(connectTo(listener_port_).tag, "B");
  // The connection made before the update still reaches A.
  EXPECT_TRUE(echoes(before, "still here"));
}

TEST_P(LiveUpdateTest, NewListenerStartsRemovedListenerStopsButKeepsItsConnections) {
  Client before = connectTo(listener_port_);
  ASSERT_EQ(before.tag, "A");
  uint16_t second_port = freePort();

  ProxyConfig next = current();
  next.listeners = {outbound("second", second_port, "other")};
  next.clusters.push_back(cluster("other", b_));
  ASSERT_TRUE(server_->updateConfig(next));

  EXPECT_TRUE(waitReaches(second_port, "B"));
  EXPECT_TRUE(waitRefused(listener_port_));
  EXPECT_TRUE(echoes(before, "established streams are never dropped"));
}

TEST_P(LiveUpdateTest, ListenerMovesToAnotherCluster) {
  ProxyConfig next = current();
  next.clusters.push_back(cluster("other", b_));
  next.listeners[0].cluster = "other";
  ASSERT_TRUE(server_->updateConfig(next));
  EXPECT_TRUE(waitReaches(listener_port_, "B"));
}

TEST_P(LiveUpdateTest, RejectedUpdateChangesNothing) {
  // A port someone else holds (no SO_REUSEPORT): binding fails, the update is refused whole.
  it::UniqueFd squatter = it::tcpListen("", "127.0.0.1", freePort());
  sockaddr_in sa{};
  socklen_t length = sizeof(sa);
  ::getsockname(squatter.get(), reinterpret_cast<sockaddr*>(&sa), &length);
  uint16_t taken = ntohs(sa.sin_port);

  ProxyConfig next = current();
  next.clusters = {cluster("backend", b_)};  // would switch to B if it were applied
  next.listeners.push_back(outbound("taken", taken, "backend"));
  Status status = server_->updateConfig(next);
  ASSERT_FALSE(status);
  EXPECT_NE(status.message().find("cannot listen on 127.0.0.1:" + std::to_string(taken)),
            std::string::npos)
      << status.message();

  // Duplicate names and addresses are refused before anything is bound.
  ProxyConfig duplicate = current();
  duplicate.listeners.push_back(outbound("app", freePort(), "backend"));
  EXPECT_NE(server_->updateConfig(duplicate).message().find("duplicate listener 'app'"),
            std::string::npos);
  ProxyConfig same_address = current();
  same_address.listeners.push_back(outbound("again", listener_port_, "backend"));
  EXPECT_NE(server_->updateConfig(same_address).message().find("already used by listener app"),
            std::string::npos);

  EXPECT_EQ(current().clusters[0].endpoints[0].address.toString(), a_.address());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(connectTo(listener_port_).tag, "A");
}

TEST_P(LiveUpdateTest, ListenerWithoutItsClusterResetsUntilTheClusterArrives) {
  ProxyConfig next = current();
  next.clusters.clear();
  ASSERT_TRUE(server_->updateConfig(next));
  EXPECT_TRUE(it::waitFor([&] { return connectTo(listener_port_).tag.empty(); }, 5s));
  EXPECT_GE(server_->stats().counter("listener.app", "downstream_cx_no_cluster").value(), 1u);

  next.clusters = {cluster("backend", b_)};
  ASSERT_TRUE(server_->updateConfig(next));
  EXPECT_TRUE(waitReaches(listener_port_, "B"));
}

TEST_P(LiveUpdateTest, ManyUpdatesInARowEndOnTheLast) {
  for (int i = 0; i < 50; ++i) {
    ProxyConfig next = current();
    next.clusters = {cluster("backend", i % 2 == 0 ? b_ : a_)};
    ASSERT_TRUE(server_->updateConfig(next));
  }
  EXPECT_TRUE(waitReaches(listener_port_, "A"));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(connectTo(listener_port_).tag, "A");
}

INSTANTIATE_TEST_SUITE_P(Workers, LiveUpdateTest, ::testing::Values(1, 3),
                         [](const auto& info) { return std::to_string(info.param) + "_workers"; });

}  // namespace
}  // namespace rdmesh::proxy

namespace rdmesh::proxy {
namespace {

TEST(CheckSnapshot, EndpointThatIsOurOwnListenerIsALoop) {
  ProxyConfig config;
  config.node.name = "local";
  config.listeners = {outbound("app", 18080, "backend")};
  ClusterConfig c;
  c.name = "backend";
  c.endpoints.push_back({"local", InetAddress::parse("127.0.0.1:18080").value()});
  config.clusters = {c};
  EXPECT_EQ(checkSnapshot(config).message(),
            "cluster backend: endpoint 127.0.0.1:18080 on this node is listener app of this proxy "
            "(a routing loop)");
  config.clusters[0].endpoints[0].node = "remote";  // the same address elsewhere is fine
  EXPECT_TRUE(checkSnapshot(config));
  config.clusters[0].endpoints[0] = {"local", InetAddress::parse("10.0.0.1:18080").value()};
  EXPECT_TRUE(checkSnapshot(config));
  config.listeners[0].address = InetAddress::parse("0.0.0.0:18080").value();  // wildcard
  EXPECT_FALSE(checkSnapshot(config));
}

}  // namespace
}  // namespace rdmesh::proxy
