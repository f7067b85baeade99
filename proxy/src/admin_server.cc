#include "admin_server.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>

#include "rdmesh/common/http_reply.h"

namespace rdmesh::proxy {
namespace {

using http::kJson;
using http::kTextPlain;
using http::reply;
using http::replyMethodNotAllowed;

constexpr std::string_view kEndpointList =
    "admin endpoints:\n"
    "  GET  /ready              200 LIVE when serving, 503 DRAINING otherwise\n"
    "  GET  /stats[?filter=s]   all stats as text, optionally only names containing s\n"
    "  GET  /stats/prometheus   Prometheus text exposition format 0.0.4\n"
    "  GET  /config_dump        current configuration as JSON\n"
    "  POST /quitquitquit       drain and exit\n";

constexpr const char* kPrometheusText = "text/plain; version=0.0.4; charset=UTF-8";

// The admin port serves operators and probes: small requests only, and no idle connection kept
// open forever.
constexpr int kIdleTimeoutSeconds = 30;
constexpr size_t kMaxHeadersBytes = size_t{16} * 1024;
constexpr size_t kMaxBodyBytes = size_t{64} * 1024;
// If the client vanishes before the /quitquitquit reply is flushed, quit anyway after this.
constexpr timeval kQuitFallbackDelay = {1, 0};
constexpr timeval kQuitNow = {0, 0};

std::string queryParameter(const evhttp_uri* uri, const char* key) {
  const char* query = uri != nullptr ? evhttp_uri_get_query(uri) : nullptr;
  if (query == nullptr) return {};
  evkeyvalq params{};  // evhttp_parse_query_str initialises it, and clears it on failure
  std::string value;
  if (evhttp_parse_query_str(query, &params) == 0) {
    if (const char* found = evhttp_find_header(&params, key)) value = found;
  }
  evhttp_clear_headers(&params);
  return value;
}

}  // namespace

AdminServer::AdminServer(event_base* base, StatsStore& stats, Handlers handlers)
    : base_(base), stats_(stats), handlers_(std::move(handlers)) {}

AdminServer::~AdminServer() {
  if (http_ != nullptr) evhttp_free(http_);
  if (probe_http_ != nullptr) evhttp_free(probe_http_);
  if (quit_timer_ != nullptr) event_free(quit_timer_);
}

Result<evhttp*> AdminServer::bind(const InetAddress& address,
                                  void (*callback)(evhttp_request*, void*), uint16_t* bound_port) {
  evhttp* http = evhttp_new(base_);
  if (http == nullptr) return internalError("admin server: out of memory creating evhttp");
  http::allowAllMethods(http);
  evhttp_set_timeout(http, kIdleTimeoutSeconds);
  evhttp_set_max_headers_size(http, kMaxHeadersBytes);
  evhttp_set_max_body_size(http, kMaxBodyBytes);
  evhttp_set_gencb(http, callback, this);

  std::string ip = address.ipString();
  evhttp_bound_socket* bound = evhttp_bind_socket_with_handle(http, ip.c_str(), address.port());
  if (bound == nullptr) {
    int error = errno;
    evhttp_free(http);
    return unavailable(fmt::format("admin server: cannot listen on {}: {}", address.toString(),
                                   std::strerror(error)));
  }
  // With port 0 the kernel chose the port; read it back so callers (and tests) can connect.
  Result<InetAddress> actual = InetAddress::localOf(evhttp_bound_socket_get_fd(bound));
  if (!actual) {
    evhttp_free(http);
    return internalError(
        fmt::format("admin server on {}: {}", address.toString(), actual.status().message()));
  }
  *bound_port = actual->port();
  return http;
}

Status AdminServer::listen(const InetAddress& address) {
  if (http_ != nullptr) return internalError("admin server is already listening");
  if (quit_timer_ == nullptr) quit_timer_ = evtimer_new(base_, &AdminServer::onQuitTimer, this);
  if (quit_timer_ == nullptr) return internalError("admin server: out of memory creating a timer");
  // On failure the server stays as before, so listen() can be retried (e.g. on another port).
  Result<evhttp*> http = bind(address, &AdminServer::onRequest, &bound_port_);
  if (!http) return http.status();
  http_ = *http;
  InetAddress bound = address;
  bound.setPort(bound_port_);
  spdlog::info("admin endpoint listening on {}", bound.toString());
  return Status::ok();
}

Status AdminServer::listenProbe(const InetAddress& address) {
  if (probe_http_ != nullptr) return internalError("admin probe listener is already listening");
  Result<evhttp*> http = bind(address, &AdminServer::onProbeRequest, &probe_port_);
  if (!http) return http.status();
  probe_http_ = *http;
  InetAddress bound = address;
  bound.setPort(probe_port_);
  spdlog::info("readiness probe (/ready only) listening on {}", bound.toString());
  return Status::ok();
}

void AdminServer::onProbeRequest(evhttp_request* request, void* arg) {
  auto* self = static_cast<AdminServer*>(arg);
  if (http::requestPath(request) != "/ready") {
    return reply(request, HTTP_NOTFOUND, "Not Found", kTextPlain,
                 "this port serves GET /ready only\n");
  }
  self->replyReady(request);
}

void AdminServer::replyReady(evhttp_request* request) {
  const evhttp_cmd_type method = evhttp_request_get_command(request);
  if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
    return replyMethodNotAllowed(request, "GET");
  }
  // No readiness callback means nothing can make us unready.
  const bool ready = !handlers_.ready || handlers_.ready();
  if (ready) return reply(request, HTTP_OK, "OK", kTextPlain, "LIVE\n");
  reply(request, HTTP_SERVUNAVAIL, "Service Unavailable", kTextPlain, "DRAINING\n");
}

void AdminServer::onRequest(evhttp_request* request, void* arg) {
  static_cast<AdminServer*>(arg)->handle(request);
}

void AdminServer::handle(evhttp_request* request) {
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(request);
  const std::string_view path = http::requestPath(request);
  const evhttp_cmd_type method = evhttp_request_get_command(request);
  const bool is_read = method == EVHTTP_REQ_GET || method == EVHTTP_REQ_HEAD;

  if (path == "/ready") return replyReady(request);
  if (path == "/stats") {
    if (!is_read) return replyMethodNotAllowed(request, "GET");
    return reply(request, HTTP_OK, "OK", kTextPlain,
                 stats_.renderText(queryParameter(uri, "filter")));
  }
  if (path == "/stats/prometheus") {
    if (!is_read) return replyMethodNotAllowed(request, "GET");
    return reply(request, HTTP_OK, "OK", kPrometheusText, stats_.renderPrometheus());
  }
  if (path == "/config_dump") {
    if (!is_read) return replyMethodNotAllowed(request, "GET");
    std::string body = handlers_.config_dump ? handlers_.config_dump() : "{}";
    if (body.empty() || body.back() != '\n') body += '\n';
    return reply(request, HTTP_OK, "OK", kJson, body);
  }
  if (path == "/quitquitquit") {
    // GET too, so that `curl host:15000/quitquitquit` works without -X POST.
    if (method != EVHTTP_REQ_POST && !is_read) return replyMethodNotAllowed(request, "POST, GET");
    spdlog::info("admin: /quitquitquit received");
    // Quit once the reply has reached the socket: the drain may stop this loop, and the caller
    // should still see its 200.
    evhttp_request_set_on_complete_cb(request, &AdminServer::onQuitReplySent, this);
    evtimer_add(quit_timer_, &kQuitFallbackDelay);
    return reply(request, HTTP_OK, "OK", kTextPlain, "OK\n");
  }
  reply(request, HTTP_NOTFOUND, "Not Found", kTextPlain,
        fmt::format("no such endpoint: {}\n{}", path, kEndpointList));
}

void AdminServer::onQuitReplySent(evhttp_request*, void* arg) {
  // Still inside libevent's connection code here: leave before calling out, since quit() may
  // tear down this server.
  auto* self = static_cast<AdminServer*>(arg);
  evtimer_add(self->quit_timer_, &kQuitNow);
}

void AdminServer::onQuitTimer(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<AdminServer*>(arg);
  if (self->handlers_.quit) self->handlers_.quit();
}

}  // namespace rdmesh::proxy
