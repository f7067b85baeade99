// HTTP/1.1 client calls on libevent's evhttp, plain or TLS (bufferevent_openssl), with the response
// body handed over as it arrives. One code path serves short calls (etcd KV, a Kubernetes list)
// and long-lived streams (a Kubernetes watch, etcd's watch through its gRPC gateway).
//
// Every user callback runs from a deferred event, never from inside evhttp, so a callback may
// destroy its HttpCall (that is how a watch is restarted or abandoned).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rdmesh/common/status.h"

struct event;
struct event_base;
struct evhttp_connection;
struct evhttp_request;
struct ssl_ctx_st;

namespace rdmesh::xds {

struct HttpEndpoint {
  std::string host;  // DNS name or IP literal
  uint16_t port = 0;
  bool tls = false;
  // TLS: PEM bundle the server certificate must chain to; empty = the system trust store.
  std::string ca_file;
  // TLS: the name (or IP) the certificate must carry; empty = host.
  std::string server_name;
  // "host:port" as the Host header wants it (IPv6 literals bracketed).
  std::string authority() const;
  std::string url() const;  // "http[s]://authority"
};

// "http://host:port" or "https://host[:port]" (no path, query or user info).
Result<HttpEndpoint> parseHttpUrl(std::string_view url);

// TLS client settings shared by the calls of one HttpClient (verification is always on).
class TlsClientContext {
 public:
  static Result<std::shared_ptr<TlsClientContext>> create(const std::string& ca_file);
  ~TlsClientContext();
  TlsClientContext(const TlsClientContext&) = delete;
  TlsClientContext& operator=(const TlsClientContext&) = delete;
  ssl_ctx_st* get() const { return ctx_; }

 private:
  explicit TlsClientContext(ssl_ctx_st* ctx) : ctx_(ctx) {}
  ssl_ctx_st* ctx_;
};

struct HttpRequest {
  std::string method = "GET";  // GET, POST, PUT, DELETE
  std::string target;          // path and query, e.g. "/api/v1/pods?watch=1"
  std::string body;
  std::string content_type;  // sent when non-empty
  std::vector<std::pair<std::string, std::string>> headers;
  // The call fails with kTimeout when no byte moves for this long (connect included).
  std::chrono::seconds idle_timeout{30};
};

// One request in flight. Destroying it cancels the request and closes its connection; no
// callback runs afterwards.
class HttpCall {
 public:
  struct Callbacks {
    std::function<void(int status)> on_status;            // response headers arrived
    std::function<void(std::string_view bytes)> on_body;  // body bytes, in order, any pieces
    // Last callback: OK after the whole body, else why the call failed (connect error,
    // timeout, connection closed mid-body). on_body has delivered every byte received before.
    std::function<void(Status)> on_done;
  };

  ~HttpCall();
  HttpCall(const HttpCall&) = delete;
  HttpCall& operator=(const HttpCall&) = delete;

 private:
  friend class HttpClient;
  HttpCall(event_base* base, Callbacks callbacks);
  Status start(const HttpEndpoint& endpoint, ssl_ctx_st* tls, const HttpRequest& request);

  static void onHeaders(evhttp_request* request, void* arg);
  static void onChunk(evhttp_request* request, void* arg);
  static void onDone(evhttp_request* request, void* arg);
  static void onError(int error, void* arg);
  static void onDeliver(int fd, short what, void* arg);
  void takeBody(evhttp_request* request);
  void scheduleDelivery();
  void deliver();

  event_base* base_;
  std::shared_ptr<Callbacks> callbacks_;
  evhttp_connection* connection_ = nullptr;
  evhttp_request* request_ = nullptr;  // null once libevent has finished (and freed) it
  event* deliver_event_ = nullptr;
  bool closing_ = false;
  bool* destroyed_flag_ = nullptr;  // set by the destructor while deliver() runs
  // Gathered inside evhttp callbacks, handed to the user by deliver().
  int status_ = 0;
  bool status_pending_ = false;
  std::string body_pending_;
  bool finished_ = false;
  Status result_;
  bool done_delivered_ = false;
};

// Makes calls to one endpoint. Cheap; each call has its own connection (a watch holds its
// connection for its whole life, and short calls are rare next to it).
class HttpClient {
 public:
  // A TLS endpoint needs `tls` (created once per CA file).
  HttpClient(event_base* base, HttpEndpoint endpoint, std::shared_ptr<TlsClientContext> tls = {});
  static Result<std::unique_ptr<HttpClient>> create(event_base* base, HttpEndpoint endpoint);

  const HttpEndpoint& endpoint() const { return endpoint_; }
  Result<std::unique_ptr<HttpCall>> start(const HttpRequest& request,
                                          HttpCall::Callbacks callbacks);

  // A short call with the whole body collected. The client owns the call: `done` runs exactly
  // once (status code and body, or the failure) unless the client is destroyed first.
  struct Response {
    int status = 0;
    std::string body;
  };
  using ResponseHandler = std::function<void(Result<Response>)>;
  Status fetch(const HttpRequest& request, ResponseHandler done,
               size_t max_body_bytes = size_t{64} << 20);
  size_t fetchesInFlight() const { return fetches_.size(); }

 private:
  event_base* base_;
  HttpEndpoint endpoint_;
  std::shared_ptr<TlsClientContext> tls_;
  uint64_t next_fetch_id_ = 0;
  std::map<uint64_t, std::unique_ptr<HttpCall>> fetches_;
};

}  // namespace rdmesh::xds
