// One HTTP/2 connection carrying one long-lived bidirectional request: a POST whose request body
// stays open for as long as the caller keeps sending, and whose response body arrives in pieces.
// libevent bufferevents (plain TCP for h2c with prior knowledge, or OpenSSL with ALPN h2) and
// nghttp2's client session. Single-threaded: everything runs on the given event_base.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rdmesh/common/status.h"

struct event_base;
struct evdns_base;

namespace rdmesh::xds {

class TlsContext;

struct H2Target {
  std::string host;  // DNS name or IP
  uint16_t port = 0;
  std::string path;  // ":path" of the request
  std::string authority;
  std::string content_type;
  std::string method = "POST";
  std::vector<std::pair<std::string, std::string>> headers;  // beyond the pseudo-headers
  // One request, one response (the registration API): any :status opens the stream, the
  // request body ends at finish(), and the server's END_STREAM completes it (on_closed(OK)).
  // Otherwise the long-lived discovery stream: only 200 opens it and END_STREAM is an error.
  bool unary = false;
  std::shared_ptr<const TlsContext> tls;  // null: h2c with prior knowledge
  std::string tls_server_name;            // expected certificate name (default: host)
  std::chrono::milliseconds connect_timeout{5000};
};

// Splits "host:port" / "[v6]:port".
Result<std::pair<std::string, uint16_t>> splitHostPort(std::string_view text);

class H2Stream {
 public:
  struct Callbacks {
    std::function<void()> on_open;  // response headers (:status 200 unless unary)
    std::function<void(std::string_view bytes)> on_data;  // response body bytes
    // The stream or the connection ended; called once, never from inside send() or close().
    std::function<void(const Status& why)> on_closed;
  };

  H2Stream(event_base* base, evdns_base* dns, Callbacks callbacks);
  ~H2Stream();
  H2Stream(const H2Stream&) = delete;
  H2Stream& operator=(const H2Stream&) = delete;

  // Starts connecting; failures arrive through on_closed.
  void open(const H2Target& target);
  // Appends to the request body.
  void send(std::string bytes);
  // Ends the request body (unary requests).
  void finish();
  // The response's :status (0 before the headers arrive).
  int statusCode() const;
  // Resets the stream and drops the connection; on_closed(why) follows from the loop.
  void close(const Status& why);
  bool isOpen() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rdmesh::xds
