#include "fake_xds_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

#include "rdmesh/xds/ndjson_framer.h"

namespace rdmesh::xds::testing {

namespace {

struct Connection {
  FakeXdsServer* server = nullptr;
  std::mutex* mu = nullptr;
  std::condition_variable* cv = nullptr;
  std::deque<std::string>* received = nullptr;
  std::string* outbox = nullptr;
  std::string* last_path = nullptr;
  std::atomic<int>* streams = nullptr;
  nghttp2_session* session = nullptr;
  int32_t stream_id = -1;
  bool deferred = false;
  NdjsonFramer framer;
};

ssize_t readOutbox(nghttp2_session*, int32_t, uint8_t* buffer, size_t length, uint32_t* flags,
                   nghttp2_data_source*, void* user) {
  auto* c = static_cast<Connection*>(user);
  std::lock_guard<std::mutex> lock(*c->mu);
  if (c->outbox->empty()) {
    c->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  size_t n = std::min(length, c->outbox->size());
  std::memcpy(buffer, c->outbox->data(), n);
  c->outbox->erase(0, n);
  *flags = NGHTTP2_DATA_FLAG_NONE;
  return static_cast<ssize_t>(n);
}

int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t name_len,
             const uint8_t* value, size_t value_len, uint8_t, void* user) {
  auto* c = static_cast<Connection*>(user);
  if (std::string_view(reinterpret_cast<const char*>(name), name_len) == ":path") {
    std::lock_guard<std::mutex> lock(*c->mu);
    *c->last_path = std::string(reinterpret_cast<const char*>(value), value_len);
  }
  c->stream_id = frame->hd.stream_id;
  return 0;
}

int onFrame(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  auto* c = static_cast<Connection*>(user);
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    nghttp2_nv headers[] = {
        {(uint8_t*)":status", (uint8_t*)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t*)"content-type", (uint8_t*)"application/x-ndjson", 12, 20, NGHTTP2_NV_FLAG_NONE}};
    nghttp2_data_provider body{};
    body.read_callback = &readOutbox;
    nghttp2_submit_response(session, frame->hd.stream_id, headers, 2, &body);
    c->streams->fetch_add(1);
  }
  return 0;
}

int onData(nghttp2_session*, uint8_t, int32_t, const uint8_t* data, size_t len, void* user) {
  auto* c = static_cast<Connection*>(user);
  (void)c->framer.feed(std::string_view(reinterpret_cast<const char*>(data), len),
                       [c](std::string_view line) {
                         std::lock_guard<std::mutex> lock(*c->mu);
                         c->received->emplace_back(line);
                         c->cv->notify_all();
                         return Status::ok();
                       });
  return 0;
}

}  // namespace

FakeXdsServer::FakeXdsServer() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 ||
      ::listen(listen_fd_, 16) != 0) {
    throw std::runtime_error("fake xds server: cannot listen");
  }
  socklen_t len = sizeof(sa);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&sa), &len);
  port_ = ntohs(sa.sin_port);
  if (::pipe2(wake_fds_, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("pipe");
  thread_ = std::thread([this] { loop(); });
}

FakeXdsServer::~FakeXdsServer() {
  stop_ = true;
  wake();
  thread_.join();
  ::close(listen_fd_);
  ::close(wake_fds_[0]);
  ::close(wake_fds_[1]);
}

void FakeXdsServer::wake() {
  char byte = 1;
  (void)!::write(wake_fds_[1], &byte, 1);
}

std::optional<DiscoveryRequest> FakeXdsServer::nextRequest(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, timeout, [this] { return !received_.empty(); })) return std::nullopt;
  std::string line = std::move(received_.front());
  received_.pop_front();
  lock.unlock();
  auto parsed = parseDiscoveryRequest(line);
  if (!parsed) throw std::runtime_error("client sent a bad request: " + parsed.status().message());
  return std::move(parsed).value();
}

void FakeXdsServer::push(const std::string& line) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    outbox_ += line + "\n";
  }
  wake();
}

void FakeXdsServer::push(const DiscoveryResponse& response) {
  push(serialize(response));
}

void FakeXdsServer::dropConnection() {
  drop_ = true;
  wake();
}

std::string FakeXdsServer::lastPath() {
  std::lock_guard<std::mutex> lock(mu_);
  return last_path_;
}

void FakeXdsServer::loop() {
  while (!stop_) {
    pollfd accept_wait[2] = {{listen_fd_, POLLIN, 0}, {wake_fds_[0], POLLIN, 0}};
    if (::poll(accept_wait, 2, -1) <= 0) continue;
    if (accept_wait[1].revents) {
      char drain[64];
      while (::read(wake_fds_[0], drain, sizeof(drain)) > 0) {
      }
      drop_ = false;
      continue;
    }
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    {
      std::lock_guard<std::mutex> lock(mu_);
      outbox_.clear();  // lines for a dead stream are not replayed on a new one
    }
    Connection c;
    c.server = this;
    c.mu = &mu_;
    c.cv = &cv_;
    c.received = &received_;
    c.outbox = &outbox_;
    c.last_path = &last_path_;
    c.streams = &streams_;
    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, &onHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &onFrame);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &onData);
    nghttp2_session_server_new(&c.session, cbs, &c);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(c.session, NGHTTP2_FLAG_NONE, nullptr, 0);
    bool alive = true;
    while (alive && !stop_ && !drop_) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (c.deferred && !outbox_.empty() && c.stream_id > 0) {
          c.deferred = false;
          nghttp2_session_resume_data(c.session, c.stream_id);
        }
      }
      for (;;) {
        const uint8_t* data = nullptr;
        ssize_t n = nghttp2_session_mem_send(c.session, &data);
        if (n <= 0) break;
        if (::send(fd, data, static_cast<size_t>(n), MSG_NOSIGNAL) != n) alive = false;
      }
      pollfd wait[2] = {{fd, POLLIN, 0}, {wake_fds_[0], POLLIN, 0}};
      if (::poll(wait, 2, -1) <= 0) continue;
      if (wait[1].revents) {
        char drain[64];
        while (::read(wake_fds_[0], drain, sizeof(drain)) > 0) {
        }
      }
      if (wait[0].revents) {
        uint8_t buffer[16384];
        ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
        if (n <= 0) {
          alive = false;
        } else if (nghttp2_session_mem_recv(c.session, buffer, static_cast<size_t>(n)) < 0) {
          alive = false;
        }
      }
    }
    nghttp2_session_del(c.session);
    ::close(fd);
    drop_ = false;
  }
}

}  // namespace rdmesh::xds::testing
