#include "h2_connection.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <array>
#include <cstring>

#include "rdmesh/xds/wire.h"
#include "spdlog/spdlog.h"

namespace rdmesh::xds_server {
namespace {

// Streams a client may open at once (a client needs one; status scrapes and registrations
// come and go). Bounds per-connection memory against a hostile peer.
constexpr uint32_t kMaxConcurrentStreams = 32;
// Request header block per stream.
constexpr size_t kMaxHeaderBytes = 16 * 1024;
// Input read per callback before frames are processed: bounds the input buffer.
constexpr size_t kInputHighWater = 256 * 1024;
// RFC 9113 4.1.
constexpr size_t kFrameHeaderBytes = 9;

nghttp2_nv header(std::string_view name, std::string_view value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

void appendCopy(evbuffer* out, std::string_view bytes) {
  // Makes room in the last chain, or adds one of about `bytes.size()`, before copying.
  evbuffer_expand(out, bytes.size());
  evbuffer_add(out, bytes.data(), bytes.size());
}

const std::string& H2Stream::peer() const {
  return connection_.peer();
}

void H2Stream::respond(int status, std::string_view content_type) {
  connection_.submitResponse(*this, status, content_type);
}

void H2Stream::resume() {
  if (connection_.closed_ || connection_.session_ == nullptr) return;
  nghttp2_session_resume_data(connection_.session_, id_);
  connection_.scheduleSend();
}

H2Connection::H2Connection(event_base* base, bufferevent* bev, std::string peer, bool tls,
                           H2Router& router, std::function<void(H2Connection*)> on_closed)
    : base_(base),
      bev_(bev),
      peer_(std::move(peer)),
      tls_(tls),
      router_(router),
      on_closed_(std::move(on_closed)) {
  send_event_ = event_new(base_, -1, 0, &H2Connection::onSendEvent, this);
  bufferevent_setcb(bev_, &H2Connection::onRead, &H2Connection::onWrite, &H2Connection::onEvent,
                    this);
  // The write callback fires when the output drains to half the budget: time to send more.
  bufferevent_setwatermark(bev_, EV_WRITE, kOutputHighWater / 2, 0);
  bufferevent_setwatermark(bev_, EV_READ, 0, kInputHighWater);
}

H2Connection::~H2Connection() {
  if (!closed_) {
    closed_ = true;
    for (auto& [id, stream] : streams_) {
      if (stream->handler_) stream->handler_->onClose();
    }
    streams_.clear();
    if (session_ != nullptr) nghttp2_session_del(session_);
    if (bev_ != nullptr) bufferevent_free(bev_);
  }
  if (send_event_ != nullptr) event_free(send_event_);
}

void H2Connection::start() {
  bufferevent_enable(bev_, EV_READ | EV_WRITE);
  if (!tls_) beginSession();
}

void H2Connection::beginSession() {
  nghttp2_session_callbacks* callbacks = nullptr;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, &H2Connection::onBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, &H2Connection::onHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &H2Connection::onFrameRecv);
  nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, &H2Connection::onFrameSend);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &H2Connection::onDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &H2Connection::onStreamClose);
  nghttp2_session_callbacks_set_send_data_callback(callbacks, &H2Connection::sendDataCallback);
  nghttp2_session_server_new(&session_, callbacks, this);
  nghttp2_session_callbacks_del(callbacks);

  const std::array<nghttp2_settings_entry, 2> settings = {{
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, kMaxConcurrentStreams},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, kMaxHeaderBytes},
  }};
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
  handleInput();  // bytes that arrived with the handshake
}

void H2Connection::onRead(bufferevent*, void* arg) {
  auto* self = static_cast<H2Connection*>(arg);
  if (self->session_ != nullptr) self->handleInput();
}

void H2Connection::onWrite(bufferevent*, void* arg) {
  static_cast<H2Connection*>(arg)->sendPending();
}

void H2Connection::onEvent(bufferevent*, short events, void* arg) {
  auto* self = static_cast<H2Connection*>(arg);
  if ((events & BEV_EVENT_CONNECTED) != 0) {
    if (self->tls_) {
      const unsigned char* alpn = nullptr;
      unsigned int alpn_length = 0;
      SSL_get0_alpn_selected(bufferevent_openssl_get_ssl(self->bev_), &alpn, &alpn_length);
      if (alpn == nullptr ||
          std::string_view(reinterpret_cast<const char*>(alpn), alpn_length) != xds::kAlpnH2) {
        spdlog::debug("xds: {}: TLS client did not negotiate ALPN h2; closing", self->peer_);
        self->close();
        return;
      }
      self->beginSession();
    }
    return;
  }
  if ((events & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) != 0) {
    if ((events & BEV_EVENT_ERROR) != 0 && self->tls_) {
      unsigned long error = bufferevent_get_openssl_error(self->bev_);
      if (error != 0) {
        char text[256];
        ERR_error_string_n(error, text, sizeof text);
        spdlog::debug("xds: {}: TLS error: {}", self->peer_, text);
      }
    }
    self->close();
  }
}

void H2Connection::onSendEvent(int, short, void* arg) {
  static_cast<H2Connection*>(arg)->sendPending();
}

void H2Connection::scheduleSend() {
  if (!closed_) event_active(send_event_, 0, 0);
}

void H2Connection::handleInput() {
  evbuffer* input = bufferevent_get_input(bev_);
  while (!closed_ && evbuffer_get_length(input) > 0) {
    size_t length = evbuffer_get_contiguous_space(input);
    const uint8_t* data = evbuffer_pullup(input, static_cast<ssize_t>(length));
    ++in_callbacks_;
    ssize_t consumed = nghttp2_session_mem_recv(session_, data, length);
    --in_callbacks_;
    if (consumed < 0) {
      spdlog::debug("xds: {}: HTTP/2 error: {}", peer_,
                    nghttp2_strerror(static_cast<int>(consumed)));
      close();
      return;
    }
    evbuffer_drain(input, length);
  }
  sendPending();
}

void H2Connection::sendPending() {
  if (closed_ || session_ == nullptr) return;
  evbuffer* output = bufferevent_get_output(bev_);
  while (evbuffer_get_length(output) < kOutputHighWater) {
    const uint8_t* data = nullptr;
    ++in_callbacks_;
    ssize_t length = nghttp2_session_mem_send(session_, &data);
    --in_callbacks_;
    if (length < 0) {
      spdlog::debug("xds: {}: HTTP/2 send error: {}", peer_,
                    nghttp2_strerror(static_cast<int>(length)));
      close();
      return;
    }
    if (length == 0) break;
    appendCopy(output,
               std::string_view(reinterpret_cast<const char*>(data), static_cast<size_t>(length)));
  }
  if (nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0 &&
      evbuffer_get_length(output) == 0) {
    close();
  }
}

void H2Connection::goAway() {
  if (closed_ || session_ == nullptr) return;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
  scheduleSend();
}

void H2Connection::close() {
  if (closed_) return;
  closed_ = true;
  for (auto& [id, stream] : streams_) {
    if (stream->handler_) stream->handler_->onClose();
  }
  streams_.clear();
  if (session_ != nullptr) {
    nghttp2_session_del(session_);
    session_ = nullptr;
  }
  bufferevent_free(bev_);
  bev_ = nullptr;
  event_del(send_event_);
  on_closed_(this);  // the owner destroys us later, from the loop
}

H2Stream* H2Connection::stream(int32_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

void H2Connection::submitResponse(H2Stream& stream, int status, std::string_view content_type) {
  if (stream.responded_ || closed_) return;
  stream.responded_ = true;
  const std::string status_text = std::to_string(status);
  const std::array<nghttp2_nv, 3> headers = {
      header(":status", status_text),
      header("content-type", content_type),
      header("cache-control", "no-store"),
  };
  nghttp2_data_provider provider{};
  provider.read_callback = &H2Connection::readBodyCallback;
  nghttp2_submit_response(session_, stream.id_, headers.data(), headers.size(), &provider);
  if (in_callbacks_ == 0) scheduleSend();
}

ssize_t H2Connection::readBodyCallback(nghttp2_session*, int32_t stream_id, uint8_t*, size_t length,
                                       uint32_t* data_flags, nghttp2_data_source*,
                                       void* user_data) {
  auto* self = static_cast<H2Connection*>(user_data);
  H2Stream* stream = self->stream(stream_id);
  if (stream == nullptr || !stream->handler_) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  bool eof = false;
  size_t ready = stream->handler_->bodyReady(length, &eof);
  if (eof) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  if (ready == 0) return eof ? 0 : NGHTTP2_ERR_DEFERRED;
  // sendDataCallback() writes the frame, from the handler's own bytes.
  *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  return static_cast<ssize_t>(ready);
}

int H2Connection::sendDataCallback(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd,
                                   size_t length, nghttp2_data_source*, void* user_data) {
  auto* self = static_cast<H2Connection*>(user_data);
  H2Stream* stream = self->stream(frame->hd.stream_id);
  // No padding is ever asked for (no select_padding callback), so the frame is header + data.
  if (stream == nullptr || !stream->handler_ || frame->data.padlen != 0) {
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  evbuffer* output = bufferevent_get_output(self->bev_);
  appendCopy(output, std::string_view(reinterpret_cast<const char*>(framehd), kFrameHeaderBytes));
  stream->handler_->writeBody(output, length);
  return 0;
}

int H2Connection::onBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame,
                                 void* user_data) {
  auto* self = static_cast<H2Connection*>(user_data);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  self->streams_.emplace(frame->hd.stream_id,
                         std::make_unique<H2Stream>(*self, frame->hd.stream_id));
  return 0;
}

int H2Connection::onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                           size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                           void* user_data) {
  auto* self = static_cast<H2Connection*>(user_data);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  H2Stream* stream = self->stream(frame->hd.stream_id);
  if (stream == nullptr) return 0;
  stream->header_bytes_ += namelen + valuelen;
  if (stream->header_bytes_ > kMaxHeaderBytes) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  std::string_view key(reinterpret_cast<const char*>(name), namelen);
  std::string text(reinterpret_cast<const char*>(value), valuelen);
  H2Request& request = stream->request_;
  if (key == ":method") {
    request.method = std::move(text);
  } else if (key == ":path") {
    request.path = std::move(text);
  } else if (key == ":authority") {
    request.authority = std::move(text);
  } else if (key == "content-type") {
    request.content_type = std::move(text);
  } else if (key == "authorization") {
    request.authorization = std::move(text);
  }
  return 0;
}

int H2Connection::onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  auto* self = static_cast<H2Connection*>(user_data);
  H2Stream* stream = self->stream(frame->hd.stream_id);
  if (stream == nullptr) return 0;
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    stream->handler_ = self->router_.route(*stream);
  }
  if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0 && stream->handler_) {
    stream->remote_closed_ = true;
    stream->handler_->onBodyEnd();
  }
  return 0;
}

int H2Connection::onFrameSend(nghttp2_session* session, const nghttp2_frame* frame,
                              void* user_data) {
  auto* self = static_cast<H2Connection*>(user_data);
  if ((frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS) ||
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) {
    return 0;
  }
  H2Stream* stream = self->stream(frame->hd.stream_id);
  // Our response is complete while the client still sends: tell it to stop (RFC 9113 8.1).
  if (stream != nullptr && !stream->remote_closed_) {
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
  }
  return 0;
}

int H2Connection::onDataChunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                              size_t len, void* user_data) {
  auto* self = static_cast<H2Connection*>(user_data);
  H2Stream* stream = self->stream(stream_id);
  if (stream != nullptr && stream->handler_) {
    stream->handler_->onBody(std::string_view(reinterpret_cast<const char*>(data), len));
  }
  return 0;
}

int H2Connection::onStreamClose(nghttp2_session*, int32_t stream_id, uint32_t, void* user_data) {
  auto* self = static_cast<H2Connection*>(user_data);
  auto it = self->streams_.find(stream_id);
  if (it == self->streams_.end()) return 0;
  std::unique_ptr<H2Stream> stream = std::move(it->second);
  self->streams_.erase(it);
  if (stream->handler_) stream->handler_->onClose();
  return 0;
}

}  // namespace rdmesh::xds_server
