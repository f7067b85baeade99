// node.sock over a real SOCK_SEQPACKET socket on a libevent loop: replies in order, bad input
// answered without losing the connection, oversize requests, attached fds closed.
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <thread>

#include "node_socket_server.h"
#include "op_table.h"

namespace rdmesh::node {
namespace {

class NodeSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() / ("rdmesh-sock-test-" + std::to_string(getpid()));
    path_ = (dir_ / "run" / "node.sock").string();
    ops_.add("echo", [](const RequestEnvelope& r, RequestFds& fds) -> Result<nlohmann::json> {
      return nlohmann::json{{"body", r.body}, {"fds", fds.size()}};
    });
    ops_.add("fail", [](const RequestEnvelope&, RequestFds&) -> Result<nlohmann::json> {
      return invalidArgument("field 'x': wrong");
    });
    ops_.add("throw", [](const RequestEnvelope&, RequestFds&) -> Result<nlohmann::json> {
      throw std::runtime_error("surprise");
    });
    evthread_use_pthreads();  // the loop runs on its own thread; TearDown breaks it from here
    base_ = event_base_new();
    server_ = std::make_unique<NodeSocketServer>(base_, ops_, stats_);
    ASSERT_TRUE(server_->listen(path_));
    loop_ = std::thread([this] { event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY); });
  }
  void TearDown() override {
    // A loopbreak issued before the thread enters event_base_loop() would be forgotten (the loop
    // clears the flag when it starts); a zero timeout runs once the loop runs, whenever that is.
    const timeval now{0, 0};
    event_base_once(
        base_, -1, EV_TIMEOUT,
        [](evutil_socket_t, short, void* base) {
          event_base_loopbreak(static_cast<event_base*>(base));
        },
        base_, &now);
    loop_.join();
    server_.reset();
    event_base_free(base_);
    std::filesystem::remove_all(dir_);
  }

  int connectClient() {
    int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
  }
  static nlohmann::json roundTrip(int fd, const std::string& request, int pass_fd = -1) {
    iovec iov{const_cast<char*>(request.data()), request.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    if (pass_fd >= 0) {
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      cmsghdr* cm = CMSG_FIRSTHDR(&msg);
      cm->cmsg_level = SOL_SOCKET;
      cm->cmsg_type = SCM_RIGHTS;
      cm->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
    }
    if (::sendmsg(fd, &msg, MSG_NOSIGNAL) < 0) return {{"send_error", strerror(errno)}};
    std::string reply(128 * 1024, '\0');
    ssize_t n = ::recv(fd, reply.data(), reply.size(), 0);
    if (n <= 0) return {{"recv_error", n}};
    reply.resize(static_cast<size_t>(n));
    return nlohmann::json::parse(reply);
  }

  std::filesystem::path dir_;
  std::string path_;
  OpTable ops_;
  StatsStore stats_;
  event_base* base_ = nullptr;
  std::unique_ptr<NodeSocketServer> server_;
  std::thread loop_;
};

TEST_F(NodeSocketTest, CreatesTheDirectoryAndASocketOnlyRootMayUse) {
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  ASSERT_EQ(::stat((dir_ / "run").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);
}

TEST_F(NodeSocketTest, BadRequestsGetErrorRepliesAndTheConnectionStaysUsable) {
  int fd = connectClient();
  EXPECT_EQ(roundTrip(fd, "not json")["error"], "request is not valid JSON");
  EXPECT_EQ(roundTrip(fd, R"({"v":1,"op":"fail"})")["error"], "field 'x': wrong");
  nlohmann::json thrown = roundTrip(fd, R"({"v":1,"op":"throw"})");
  EXPECT_EQ(thrown["ok"], false);
  EXPECT_EQ(thrown["error"], "internal error in op 'throw': surprise");
  std::string big = R"({"v":1,"op":"echo","pad":")" + std::string(70000, 'x') + R"("})";
  EXPECT_EQ(roundTrip(fd, big)["error"], "request larger than 65536 bytes");
  nlohmann::json ok = roundTrip(fd, R"({"v":1,"op":"echo","n":7})");
  EXPECT_EQ(ok["ok"], true);
  EXPECT_EQ(ok["body"]["n"], 7);
  EXPECT_EQ(stats_.counter("node.socket", "error_replies_total").value(), 4u);
  ::close(fd);
}

TEST_F(NodeSocketTest, RepliesComeInOrderAndFdsArriveAndAreClosed) {
  int fd = connectClient();
  for (int i = 0; i < 3; ++i) {
    std::string req = R"({"v":1,"op":"echo","n":)" + std::to_string(i) + "}";
    ASSERT_EQ(::send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
  }
  for (int i = 0; i < 3; ++i) {
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    ASSERT_GT(n, 0);
    EXPECT_EQ(nlohmann::json::parse(std::string(buf, n))["body"]["n"], i);
  }
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  nlohmann::json with_fd = roundTrip(fd, R"({"v":1,"op":"echo"})", pipe_fds[0]);
  EXPECT_EQ(with_fd["fds"], 1);
  ::close(pipe_fds[0]);
  // The agent closed its copy: the pipe's only reader is gone, so a write fails with EPIPE.
  signal(SIGPIPE, SIG_IGN);
  EXPECT_EQ(::write(pipe_fds[1], "x", 1), -1);
  EXPECT_EQ(errno, EPIPE);
  ::close(pipe_fds[1]);
  ::close(fd);
}

}  // namespace
}  // namespace rdmesh::node
