#include "h2_stream.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <vector>

#include "rdmesh/common/timeval.h"
#include "tls_context.h"

namespace rdmesh::xds {

namespace {
// A silent connection is probed with PING; one that stays silent this long is dead.
constexpr std::chrono::seconds kPingInterval{10};
constexpr std::chrono::seconds kDeadAfter{25};
}  // namespace

Result<std::pair<std::string, uint16_t>> splitHostPort(std::string_view text) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return invalidArgument(fmt::format("'{}' is not host:port", text));
  }
  std::string_view host = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') {
      return invalidArgument(fmt::format("'{}' is not [ipv6]:port", text));
    }
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return invalidArgument(fmt::format("'{}': write an IPv6 address as [ip]:port", text));
  }
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 ||
      port > 65535) {
    return invalidArgument(fmt::format("'{}' has no valid port (1-65535)", text));
  }
  return std::pair<std::string, uint16_t>(std::string(host), static_cast<uint16_t>(port));
}

class H2Stream::Impl {
 public:
  Impl(event_base* base, evdns_base* dns, Callbacks callbacks)
      : base_(base), dns_(dns), callbacks_(std::move(callbacks)) {
    closed_ev_ = event_new(base_, -1, 0, &Impl::onClosedEvent, this);
    timer_ev_ = event_new(base_, -1, 0, &Impl::onTimer, this);
  }

  ~Impl() {
    teardown();
    event_free(closed_ev_);
    event_free(timer_ev_);
  }

  void open(const H2Target& target) {
    target_ = target;
    if (target_.tls) {
      Result<SSL*> ssl = target_.tls->newConnection(
          target_.tls_server_name.empty() ? target_.host : target_.tls_server_name);
      if (!ssl) return fail(ssl.status());
      ssl_ = *ssl;
      bev_ = bufferevent_openssl_socket_new(base_, -1, ssl_, BUFFEREVENT_SSL_CONNECTING,
                                            BEV_OPT_CLOSE_ON_FREE);
    } else {
      bev_ = bufferevent_socket_new(base_, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    if (bev_ == nullptr) return fail(internalError("cannot create a bufferevent"));
    bufferevent_setcb(bev_, &Impl::onRead, nullptr, &Impl::onEvent, this);
    bufferevent_enable(bev_, EV_READ | EV_WRITE);
    armTimer(target_.connect_timeout);
    if (bufferevent_socket_connect_hostname(bev_, dns_, AF_UNSPEC, target_.host.c_str(),
                                            target_.port) != 0) {
      fail(unavailable(fmt::format("cannot connect to {}:{}", target_.host, target_.port)));
    }
  }

  void send(std::string_view bytes) {
    if (closed_) return;
    pending_.append(bytes);
    if (session_ != nullptr && stream_id_ > 0 && deferred_) {
      deferred_ = false;
      nghttp2_session_resume_data(session_, stream_id_);
    }
    if (!in_receive_) flush();  // inside mem_recv nghttp2 must not send; onRead flushes after
  }

  void close(const Status& why) { fail(why); }

  void finish() {
    if (closed_) return;
    finished_ = true;
    send({});
  }

  int statusCode() const { return status_code_; }

  bool isOpen() const { return opened_ && !closed_; }

 private:
  void armTimer(std::chrono::milliseconds after) {
    timeval tv = toTimeval(after);
    event_add(timer_ev_, &tv);
  }

  void fail(const Status& why) {
    if (closed_) return;
    closed_ = true;
    close_reason_ = why;
    event_del(timer_ev_);
    // Deliver from the loop: the owner may delete us in on_closed.
    event_active(closed_ev_, 0, 0);
  }

  void teardown() {
    if (session_ != nullptr) nghttp2_session_del(session_);
    session_ = nullptr;
    if (bev_ != nullptr) bufferevent_free(bev_);  // frees ssl_ and the socket
    bev_ = nullptr;
    ssl_ = nullptr;
  }

  static void onClosedEvent(int, short, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    self->teardown();
    Status why = self->close_reason_;
    auto on_closed = self->callbacks_.on_closed;
    if (on_closed) on_closed(why);  // may delete self: nothing after this
  }

  static void onTimer(int, short, void* arg) { static_cast<Impl*>(arg)->onTimerFired(); }

  void onTimerFired() {
    if (!opened_) {
      return fail(
          unavailable(fmt::format("no HTTP/2 response from {}:{} within {} ms", target_.host,
                                  target_.port, target_.connect_timeout.count())));
    }
    auto silent = std::chrono::steady_clock::now() - last_received_;
    if (silent >= kDeadAfter) {
      return fail(unavailable(fmt::format(
          "connection to {}:{} silent for {} s (PING unanswered)", target_.host, target_.port,
          std::chrono::duration_cast<std::chrono::seconds>(silent).count())));
    }
    nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, nullptr);
    flush();
    armTimer(kPingInterval);
  }

  static void onEvent(bufferevent*, short what, void* arg) {
    static_cast<Impl*>(arg)->handleEvent(what);
  }

  void handleEvent(short what) {
    if (what & BEV_EVENT_CONNECTED) {
      if (ssl_ != nullptr && !negotiatedH2(ssl_)) {
        return fail(unavailable(
            fmt::format("{}:{} did not negotiate ALPN h2", target_.host, target_.port)));
      }
      int one = 1;
      ::setsockopt(bufferevent_getfd(bev_), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      return startSession();
    }
    std::string where = fmt::format("{}:{}", target_.host, target_.port);
    if (what & BEV_EVENT_EOF) return fail(unavailable(where + ": connection closed by the server"));
    if (what & BEV_EVENT_ERROR) {
      int dns_error = bufferevent_socket_get_dns_error(bev_);
      if (dns_error != 0) {
        return fail(unavailable(
            fmt::format("{}: cannot resolve: {}", target_.host, evutil_gai_strerror(dns_error))));
      }
      if (ssl_ != nullptr && SSL_is_init_finished(ssl_) == 0) {
        return fail(unavailable(fmt::format("{}: TLS: {}", where, tlsErrorText(ssl_))));
      }
      int error = EVUTIL_SOCKET_ERROR();
      return fail(unavailable(
          fmt::format("{}: {}", where, error ? std::strerror(error) : "connection error")));
    }
  }

  void startSession() {
    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, &Impl::onHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &Impl::onFrame);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &Impl::onDataChunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &Impl::onStreamClose);
    nghttp2_session_client_new(&session_, cbs, this);
    nghttp2_session_callbacks_del(cbs);

    // A large window: a full config push should not wait on WINDOW_UPDATE round trips.
    nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1},
                                         {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 24}};
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, 1 << 26);

    std::string authority = target_.authority.empty()
                                ? fmt::format("{}:{}", target_.host, target_.port)
                                : target_.authority;
    std::string scheme = target_.tls ? "https" : "http";
    auto header = [](std::string_view name, std::string_view value) {
      return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                        reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                        value.size(), NGHTTP2_NV_FLAG_NONE};
    };
    std::vector<nghttp2_nv> headers = {header(":method", target_.method), header(":scheme", scheme),
                                       header(":authority", authority),
                                       header(":path", target_.path),
                                       header("content-type", target_.content_type)};
    for (const auto& [name, value] : target_.headers) headers.push_back(header(name, value));
    nghttp2_data_provider body{};
    body.read_callback = &Impl::readBody;
    stream_id_ =
        nghttp2_submit_request(session_, nullptr, headers.data(), headers.size(), &body, this);
    if (stream_id_ < 0) {
      return fail(internalError(
          fmt::format("cannot submit the request: {}", nghttp2_strerror(stream_id_))));
    }
    last_received_ = std::chrono::steady_clock::now();
    flush();
  }

  static void onRead(bufferevent*, void* arg) { static_cast<Impl*>(arg)->receive(); }

  void receive() {
    evbuffer* input = bufferevent_get_input(bev_);
    last_received_ = std::chrono::steady_clock::now();
    while (!closed_ && evbuffer_get_length(input) > 0) {
      evbuffer_iovec chunk{};
      if (evbuffer_peek(input, -1, nullptr, &chunk, 1) < 1) break;
      in_receive_ = true;
      ssize_t used =
          nghttp2_session_mem_recv(session_, static_cast<uint8_t*>(chunk.iov_base), chunk.iov_len);
      in_receive_ = false;
      if (used < 0) {
        return fail(protocolError(fmt::format("HTTP/2 from {}: {}", target_.host,
                                              nghttp2_strerror(static_cast<int>(used)))));
      }
      evbuffer_drain(input, static_cast<size_t>(used));
    }
    flush();
  }

  void flush() {
    if (closed_ || session_ == nullptr) return;
    for (;;) {
      const uint8_t* data = nullptr;
      ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) {
        return fail(
            internalError(fmt::format("HTTP/2: {}", nghttp2_strerror(static_cast<int>(n)))));
      }
      if (n == 0) break;
      bufferevent_write(bev_, data, static_cast<size_t>(n));
    }
    if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
      fail(unavailable(fmt::format("{}: HTTP/2 session ended (GOAWAY)", target_.host)));
    }
  }

  static ssize_t readBody(nghttp2_session*, int32_t, uint8_t* buffer, size_t length,
                          uint32_t* flags, nghttp2_data_source*, void* user) {
    auto* self = static_cast<Impl*>(user);
    size_t available = self->pending_.size() - self->pending_offset_;
    if (available == 0 && self->finished_) {
      *flags = NGHTTP2_DATA_FLAG_EOF;
      return 0;
    }
    if (available == 0) {
      self->pending_.clear();
      self->pending_offset_ = 0;
      self->deferred_ = true;
      return NGHTTP2_ERR_DEFERRED;  // resumed by send()
    }
    size_t n = std::min(available, length);
    std::memcpy(buffer, self->pending_.data() + self->pending_offset_, n);
    self->pending_offset_ += n;
    *flags = NGHTTP2_DATA_FLAG_NONE;
    return static_cast<ssize_t>(n);
  }

  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t name_length, const uint8_t* value, size_t value_length, uint8_t,
                      void* user) {
    auto* self = static_cast<Impl*>(user);
    if (frame->hd.stream_id != self->stream_id_) return 0;
    std::string_view key(reinterpret_cast<const char*>(name), name_length);
    if (key == ":status") {
      std::string_view text(reinterpret_cast<const char*>(value), value_length);
      std::from_chars(text.data(), text.data() + text.size(), self->status_code_);
    }
    return 0;
  }

  static int onFrame(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto* self = static_cast<Impl*>(user);
    if (frame->hd.type == NGHTTP2_GOAWAY) {
      self->fail(unavailable(fmt::format("{}: server sent GOAWAY", self->target_.host)));
      return 0;
    }
    if (frame->hd.stream_id != self->stream_id_) return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_RESPONSE) {
      if (self->status_code_ != 200 && !self->target_.unary) {
        self->fail(unavailable(fmt::format("{}: HTTP status {} for {}", self->target_.host,
                                           self->status_code_, self->target_.path)));
        return 0;
      }
      self->opened_ = true;
      self->armTimer(kPingInterval);
      if (self->callbacks_.on_open) self->callbacks_.on_open();
    }
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && !self->closed_) {
      if (self->target_.unary && self->opened_) {
        self->fail(Status::ok());  // the whole response has arrived
        return 0;
      }
      self->fail(unavailable(fmt::format("{}: the server ended the stream", self->target_.host)));
    }
    return 0;
  }

  static int onDataChunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                         size_t length, void* user) {
    auto* self = static_cast<Impl*>(user);
    if (stream_id != self->stream_id_ || self->closed_ || !self->opened_) return 0;
    if (self->callbacks_.on_data) {
      self->callbacks_.on_data(std::string_view(reinterpret_cast<const char*>(data), length));
    }
    return 0;
  }

  static int onStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user) {
    auto* self = static_cast<Impl*>(user);
    if (stream_id != self->stream_id_) return 0;
    self->fail(unavailable(fmt::format("{}: stream closed ({})", self->target_.host,
                                       nghttp2_http2_strerror(error_code))));
    return 0;
  }

  event_base* base_;
  evdns_base* dns_;
  Callbacks callbacks_;
  H2Target target_;
  bufferevent* bev_ = nullptr;
  SSL* ssl_ = nullptr;  // owned by bev_
  nghttp2_session* session_ = nullptr;
  int32_t stream_id_ = -1;
  int status_code_ = 0;
  std::string pending_;  // request body not yet taken by nghttp2
  size_t pending_offset_ = 0;
  bool deferred_ = false;
  bool finished_ = false;  // the request body has ended (unary)
  bool in_receive_ = false;
  bool opened_ = false;
  bool closed_ = false;
  Status close_reason_;
  event* closed_ev_ = nullptr;
  event* timer_ev_ = nullptr;
  std::chrono::steady_clock::time_point last_received_;
};

H2Stream::H2Stream(event_base* base, evdns_base* dns, Callbacks callbacks)
    : impl_(std::make_unique<Impl>(base, dns, std::move(callbacks))) {}
H2Stream::~H2Stream() = default;
void H2Stream::open(const H2Target& target) {
  impl_->open(target);
}
void H2Stream::send(std::string bytes) {
  impl_->send(bytes);
}
void H2Stream::finish() {
  impl_->finish();
}
int H2Stream::statusCode() const {
  return impl_->statusCode();
}
void H2Stream::close(const Status& why) {
  impl_->close(why);
}
bool H2Stream::isOpen() const {
  return impl_->isOpen();
}

}  // namespace rdmesh::xds
