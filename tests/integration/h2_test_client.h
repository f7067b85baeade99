// A small HTTP/2 client (nghttp2 over a libevent bufferevent, h2c with prior knowledge) for
// tests and the benchmark: one connection, one request stream whose body is sent as it is
// written (NDJSON requests) and whose response body is handed over line by line.
#pragma once

#include <nghttp2/nghttp2.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "rdmesh/common/address.h"
#include "rdmesh/common/status.h"

struct bufferevent;
struct event;
struct event_base;

namespace rdmesh::xds_test {

class H2TestClient {
 public:
  struct Request {
    std::string method = "POST";
    std::string path;
    std::vector<std::pair<std::string, std::string>> headers;
    // Receive window (stream and connection) in bytes; 0 keeps nghttp2's 64 KiB. The benchmark
    // sets what rdmesh's own xDS client sets, so a big push does not wait on WINDOW_UPDATEs.
    uint32_t receive_window = 0;
    // OnLine gets at most this many leading bytes of each line (the rest is skipped unread).
    size_t max_line_bytes = SIZE_MAX;
  };
  using OnLine = std::function<void(std::string_view line)>;

  H2TestClient(event_base* base, InetAddress server, Request request, OnLine on_line = nullptr);
  ~H2TestClient();
  H2TestClient(const H2TestClient&) = delete;
  H2TestClient& operator=(const H2TestClient&) = delete;

  // Starts connecting; the request goes out once connected.
  Status start();
  // Appends to the request body (e.g. one NDJSON line with its "\n").
  void write(std::string_view bytes);
  // Ends the request body.
  void endRequest();
  // Closes the connection now (like a killed client).
  void abort();

  int responseStatus() const { return response_status_; }
  const std::string& responseBody() const { return response_body_; }  // when no OnLine
  bool responseEnded() const { return response_ended_; }
  bool streamClosed() const { return stream_closed_; }
  uint32_t resetCode() const { return reset_code_; }
  bool connectionClosed() const { return connection_closed_; }
  const std::string& error() const { return error_; }

 private:
  static void onRead(bufferevent* bev, void* arg);
  static void onWrite(bufferevent* bev, void* arg);
  static void onEvent(bufferevent* bev, short events, void* arg);
  static ssize_t readRequestBody(nghttp2_session* session, int32_t stream_id, uint8_t* buf,
                                 size_t length, uint32_t* data_flags, nghttp2_data_source* source,
                                 void* user_data);
  static int onHeader(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                      void* user_data);
  static int onFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user_data);
  static int onDataChunk(nghttp2_session* session, uint8_t flags, int32_t stream_id,
                         const uint8_t* data, size_t len, void* user_data);
  static int onStreamClose(nghttp2_session* session, int32_t stream_id, uint32_t error_code,
                           void* user_data);

  void beginSession();
  void flush();
  void fail(std::string reason);

  event_base* base_;
  InetAddress server_;
  Request request_;
  OnLine on_line_;
  bufferevent* bev_ = nullptr;
  nghttp2_session* session_ = nullptr;
  int32_t stream_id_ = -1;
  std::string request_body_;  // written, not yet taken by nghttp2
  size_t request_offset_ = 0;
  bool request_ended_ = false;
  std::string line_;  // response line in progress (its first max_line_bytes)
  std::string response_body_;
  int response_status_ = 0;
  bool response_ended_ = false;
  bool stream_closed_ = false;
  uint32_t reset_code_ = 0;
  bool connection_closed_ = false;
  std::string error_;
};

// Runs the loop until `done()` or `timeout`; true when done.
bool runUntil(event_base* base, const std::function<bool()>& done,
              std::chrono::milliseconds timeout);

}  // namespace rdmesh::xds_test
