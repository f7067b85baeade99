#include "h2_test_client.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "fmt/format.h"
#include "rdmesh/common/timeval.h"

namespace rdmesh::xds_test {
namespace {

nghttp2_nv header(const std::string& name, const std::string& value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

H2TestClient::H2TestClient(event_base* base, InetAddress server, Request request, OnLine on_line)
    : base_(base), server_(server), request_(std::move(request)), on_line_(std::move(on_line)) {}

H2TestClient::~H2TestClient() {
  if (session_ != nullptr) nghttp2_session_del(session_);
  if (bev_ != nullptr) bufferevent_free(bev_);
}

Status H2TestClient::start() {
  bev_ = bufferevent_socket_new(base_, -1, BEV_OPT_CLOSE_ON_FREE);
  bufferevent_setcb(bev_, &H2TestClient::onRead, &H2TestClient::onWrite, &H2TestClient::onEvent,
                    this);
  bufferevent_enable(bev_, EV_READ | EV_WRITE);
  if (bufferevent_socket_connect(bev_, const_cast<sockaddr*>(server_.sockaddrPtr()),
                                 static_cast<int>(server_.sockaddrLen())) != 0) {
    return unavailable(fmt::format("connect {}: {}", server_.toString(), std::strerror(errno)));
  }
  return Status::ok();
}

void H2TestClient::beginSession() {
  int one = 1;
  setsockopt(bufferevent_getfd(bev_), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  nghttp2_session_callbacks* callbacks = nullptr;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, &H2TestClient::onHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &H2TestClient::onFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &H2TestClient::onDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &H2TestClient::onStreamClose);
  nghttp2_session_client_new(&session_, callbacks, this);
  nghttp2_session_callbacks_del(callbacks);
  if (request_.receive_window == 0) {
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, nullptr, 0);
  } else {
    const nghttp2_settings_entry window{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
                                        request_.receive_window};
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, &window, 1);
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                          static_cast<int32_t>(request_.receive_window));
  }

  const std::string authority = server_.toString();
  const std::string method_key = ":method", path_key = ":path", scheme_key = ":scheme",
                    authority_key = ":authority", scheme = "http";
  std::vector<nghttp2_nv> headers = {header(method_key, request_.method),
                                     header(path_key, request_.path), header(scheme_key, scheme),
                                     header(authority_key, authority)};
  for (const auto& [name, value] : request_.headers) headers.push_back(header(name, value));
  nghttp2_data_provider provider{};
  provider.read_callback = &H2TestClient::readRequestBody;
  stream_id_ =
      nghttp2_submit_request(session_, nullptr, headers.data(), headers.size(), &provider, this);
  flush();
}

void H2TestClient::write(std::string_view bytes) {
  request_body_.append(bytes);
  if (session_ != nullptr && stream_id_ > 0) {
    nghttp2_session_resume_data(session_, stream_id_);
    flush();
  }
}

void H2TestClient::endRequest() {
  request_ended_ = true;
  if (session_ != nullptr && stream_id_ > 0) {
    nghttp2_session_resume_data(session_, stream_id_);
    flush();
  }
}

void H2TestClient::abort() {
  if (bev_ != nullptr) {
    bufferevent_free(bev_);
    bev_ = nullptr;
  }
  connection_closed_ = true;
}

void H2TestClient::flush() {
  if (session_ == nullptr || bev_ == nullptr) return;
  while (true) {
    const uint8_t* data = nullptr;
    ssize_t length = nghttp2_session_mem_send(session_, &data);
    if (length < 0) return fail(nghttp2_strerror(static_cast<int>(length)));
    if (length == 0) break;
    bufferevent_write(bev_, data, static_cast<size_t>(length));
  }
}

void H2TestClient::fail(std::string reason) {
  if (error_.empty()) error_ = std::move(reason);
  abort();
}

void H2TestClient::onRead(bufferevent* bev, void* arg) {
  auto* self = static_cast<H2TestClient*>(arg);
  evbuffer* input = bufferevent_get_input(bev);
  while (self->session_ != nullptr && evbuffer_get_length(input) > 0) {
    size_t length = evbuffer_get_contiguous_space(input);
    const uint8_t* data = evbuffer_pullup(input, static_cast<ssize_t>(length));
    ssize_t consumed = nghttp2_session_mem_recv(self->session_, data, length);
    if (consumed < 0) return self->fail(nghttp2_strerror(static_cast<int>(consumed)));
    evbuffer_drain(input, length);
  }
  self->flush();
}

void H2TestClient::onWrite(bufferevent*, void* arg) {
  static_cast<H2TestClient*>(arg)->flush();
}

void H2TestClient::onEvent(bufferevent*, short events, void* arg) {
  auto* self = static_cast<H2TestClient*>(arg);
  if ((events & BEV_EVENT_CONNECTED) != 0) {
    self->beginSession();
    return;
  }
  if ((events & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) != 0) {
    if ((events & BEV_EVENT_ERROR) != 0 && self->error_.empty()) {
      self->error_ = std::strerror(EVUTIL_SOCKET_ERROR());
    }
    self->abort();
  }
}

ssize_t H2TestClient::readRequestBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                                      uint32_t* data_flags, nghttp2_data_source*, void* user_data) {
  auto* self = static_cast<H2TestClient*>(user_data);
  size_t n = std::min(length, self->request_body_.size() - self->request_offset_);
  std::memcpy(buf, self->request_body_.data() + self->request_offset_, n);
  self->request_offset_ += n;
  if (self->request_offset_ == self->request_body_.size()) {
    self->request_body_.clear();
    self->request_offset_ = 0;
    if (self->request_ended_) {
      *data_flags |= NGHTTP2_DATA_FLAG_EOF;
      return static_cast<ssize_t>(n);
    }
  }
  return n == 0 ? NGHTTP2_ERR_DEFERRED : static_cast<ssize_t>(n);
}

int H2TestClient::onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                           size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                           void* user_data) {
  auto* self = static_cast<H2TestClient*>(user_data);
  if (frame->hd.type == NGHTTP2_HEADERS &&
      std::string_view(reinterpret_cast<const char*>(name), namelen) == ":status") {
    self->response_status_ =
        std::atoi(std::string(reinterpret_cast<const char*>(value), valuelen).c_str());
  }
  return 0;
}

int H2TestClient::onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  auto* self = static_cast<H2TestClient*>(user_data);
  if (frame->hd.stream_id == self->stream_id_ && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0 &&
      (frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS)) {
    self->response_ended_ = true;
  }
  return 0;
}

int H2TestClient::onDataChunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                              size_t len, void* user_data) {
  auto* self = static_cast<H2TestClient*>(user_data);
  if (stream_id != self->stream_id_) return 0;
  std::string_view chunk(reinterpret_cast<const char*>(data), len);
  if (!self->on_line_) {
    self->response_body_.append(chunk);
    return 0;
  }
  while (!chunk.empty()) {
    size_t newline = chunk.find('\n');
    const size_t room =
        self->request_.max_line_bytes - std::min(self->request_.max_line_bytes, self->line_.size());
    if (newline == std::string_view::npos) {
      self->line_.append(chunk.substr(0, room));
      break;
    }
    self->line_.append(chunk.substr(0, std::min(newline, room)));
    chunk.remove_prefix(newline + 1);
    std::string line;
    line.swap(self->line_);
    self->on_line_(line);
  }
  return 0;
}

int H2TestClient::onStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                                void* user_data) {
  auto* self = static_cast<H2TestClient*>(user_data);
  if (stream_id == self->stream_id_) {
    self->stream_closed_ = true;
    self->reset_code_ = error_code;
  }
  return 0;
}

bool runUntil(event_base* base, const std::function<bool()>& done,
              std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  event* tick = evtimer_new(
      base, [](int, short, void*) {}, nullptr);
  bool result = done();
  while (!result && std::chrono::steady_clock::now() < deadline) {
    timeval interval = toTimeval(std::chrono::milliseconds(5));
    evtimer_add(tick, &interval);
    event_base_loop(base, EVLOOP_ONCE);
    result = done();
  }
  event_free(tick);
  return result;
}

}  // namespace rdmesh::xds_test
