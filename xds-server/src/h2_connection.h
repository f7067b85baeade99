// One HTTP/2 server connection (nghttp2 over a libevent bufferevent, plaintext or TLS).
// Requests are handed to an H2Router, which returns a handler per stream; response bodies are
// pulled from the handler only when the stream's flow-control window and the socket have room,
// so nothing queues up for a slow client: at most kOutputHighWater bytes per connection wait in
// the socket buffer, plus whatever one handler keeps for its current message. DATA frames go
// out without nghttp2's copy (NGHTTP2_DATA_FLAG_NO_COPY): the handler appends its bytes to the
// socket buffer itself, so one push body shared by 1,000 streams is referenced, not copied.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

struct bufferevent;
struct evbuffer;
struct event;
struct event_base;

namespace rdmesh::xds_server {

struct H2Request {
  std::string method;
  std::string path;
  std::string authority;
  std::string content_type;
  std::string authorization;
};

class H2Connection;

// Copies `bytes` to the end of `out`. Unlike a bare evbuffer_add(), a few bytes after a
// referenced chunk (a DATA frame's body) take a small new chain, not one twice that chunk's
// size: a 9-byte frame header after each 16 KiB frame would otherwise allocate 32 KiB.
void appendCopy(evbuffer* out, std::string_view bytes);

// The application side of one request stream.
class H2StreamHandler {
 public:
  virtual ~H2StreamHandler() = default;
  virtual void onBody(std::string_view data) = 0;
  // The client ended its half (END_STREAM).
  virtual void onBodyEnd() = 0;
  // How many response bytes (up to `max`) are ready for the next DATA frame; sets *eof when
  // they complete the response. Returning 0 without eof pauses the stream until
  // H2Stream::resume().
  virtual size_t bodyReady(size_t max, bool* eof) = 0;
  // Appends the `length` bytes that bodyReady() announced to `out`. Bytes that many streams
  // share may be added by reference (evbuffer_add_reference) instead of copied.
  virtual void writeBody(evbuffer* out, size_t length) = 0;
  // The stream is gone (finished, reset, or the connection closed); the handler is destroyed
  // right after.
  virtual void onClose() = 0;
};

// What a handler may do to its stream.
class H2Stream {
 public:
  H2Stream(H2Connection& connection, int32_t id) : connection_(connection), id_(id) {}
  const H2Request& request() const { return request_; }
  const std::string& peer() const;
  // Submits response headers; the body is pulled from the handler's readBody().
  void respond(int status, std::string_view content_type);
  // The handler has more body (after a paused readBody()).
  void resume();

 private:
  friend class H2Connection;
  H2Connection& connection_;
  int32_t id_;
  H2Request request_;
  std::unique_ptr<H2StreamHandler> handler_;
  size_t header_bytes_ = 0;
  bool responded_ = false;
  bool remote_closed_ = false;
};

class H2Router {
 public:
  virtual ~H2Router() = default;
  // Called once the request headers are complete. Never null.
  virtual std::unique_ptr<H2StreamHandler> route(H2Stream& stream) = 0;
};

class H2Connection {
 public:
  // Takes ownership of `bev` (already accepted; for TLS, handshaking). `on_closed` runs once
  // when the connection is finished; the owner destroys it from there (not inside this call).
  H2Connection(event_base* base, bufferevent* bev, std::string peer, bool tls, H2Router& router,
               std::function<void(H2Connection*)> on_closed);
  ~H2Connection();
  H2Connection(const H2Connection&) = delete;
  H2Connection& operator=(const H2Connection&) = delete;

  // Plaintext: starts at once. TLS: after the handshake (and ALPN "h2").
  void start();
  // Sends GOAWAY: no new streams; open ones go on.
  void goAway();
  // Runs sendPending() soon (from the loop), for changes made outside nghttp2 callbacks.
  void scheduleSend();
  const std::string& peer() const { return peer_; }
  size_t streamCount() const { return streams_.size(); }

  // Byte budget of the socket output buffer per connection. Push bodies are referenced, not
  // copied, into it, so the budget costs little memory; large enough that one writev() takes
  // a typical push (a sidecar's clusters, ~100 KB for 10 services x 100 endpoints) whole.
  static constexpr size_t kOutputHighWater = 256 * 1024;

 private:
  friend class H2Stream;
  static void onRead(bufferevent* bev, void* arg);
  static void onWrite(bufferevent* bev, void* arg);
  static void onEvent(bufferevent* bev, short events, void* arg);
  static void onSendEvent(int fd, short what, void* arg);
  static ssize_t readBodyCallback(nghttp2_session* session, int32_t stream_id, uint8_t* buf,
                                  size_t length, uint32_t* data_flags, nghttp2_data_source* source,
                                  void* user_data);
  static int sendDataCallback(nghttp2_session* session, nghttp2_frame* frame,
                              const uint8_t* framehd, size_t length, nghttp2_data_source* source,
                              void* user_data);
  static int onBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame, void* user_data);
  static int onHeader(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                      void* user_data);
  static int onFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user_data);
  static int onFrameSend(nghttp2_session* session, const nghttp2_frame* frame, void* user_data);
  static int onDataChunk(nghttp2_session* session, uint8_t flags, int32_t stream_id,
                         const uint8_t* data, size_t len, void* user_data);
  static int onStreamClose(nghttp2_session* session, int32_t stream_id, uint32_t error_code,
                           void* user_data);

  void beginSession();
  void handleInput();
  // Moves frames from nghttp2 to the socket while it has room; closes when both sides are done.
  void sendPending();
  void close();
  H2Stream* stream(int32_t id);
  void submitResponse(H2Stream& stream, int status, std::string_view content_type);

  event_base* base_;
  bufferevent* bev_;
  std::string peer_;
  bool tls_;
  H2Router& router_;
  std::function<void(H2Connection*)> on_closed_;
  nghttp2_session* session_ = nullptr;
  event* send_event_ = nullptr;
  std::map<int32_t, std::unique_ptr<H2Stream>> streams_;
  bool closed_ = false;
  int in_callbacks_ = 0;  // >0 while inside nghttp2_session_mem_recv/mem_send
};

}  // namespace rdmesh::xds_server
