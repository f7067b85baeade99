// The sidecar injection webhook: HTTPS (HTTP/1.1) on 15017, POST /inject with an AdmissionReview,
// answered with the injector's JSONPatch. GET /healthz for probes. Runs on rdmesh-xds's loop;
// every request is answered synchronously (well under the API server's timeout).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "rdmesh/common/address.h"
#include "rdmesh/common/stats.h"
#include "rdmesh/common/status.h"
#include "sidecar_injector.h"

struct bufferevent;
struct event_base;
struct evhttp;
struct evhttp_request;
struct ssl_ctx_st;

namespace rdmesh::xds_server::webhook {

inline constexpr uint16_t kWebhookPort = 15017;
inline constexpr std::string_view kInjectPath = "/inject";

class WebhookServer {
 public:
  // Called for every accepted connection, so a rotated certificate serves new connections at
  // once. Returning null refuses the connection. An empty function = plaintext (tests only).
  using TlsContextSource = std::function<std::shared_ptr<ssl_ctx_st>()>;

  WebhookServer(event_base* base, const SidecarInjector& injector, StatsStore& stats,
                TlsContextSource tls);
  ~WebhookServer();
  WebhookServer(const WebhookServer&) = delete;
  WebhookServer& operator=(const WebhookServer&) = delete;

  Status listen(const InetAddress& address);
  uint16_t boundPort() const { return bound_port_; }

 private:
  static bufferevent* makeConnection(event_base* base, void* arg);
  static void onRequest(evhttp_request* request, void* arg);
  void handle(evhttp_request* request);
  void handleInject(evhttp_request* request);

  event_base* base_;
  const SidecarInjector& injector_;
  TlsContextSource tls_;
  evhttp* http_ = nullptr;
  uint16_t bound_port_ = 0;
  Stat& requests_;
  Stat& injected_;
  Stat& skipped_;
  Stat& bad_requests_;
  Stat& internal_errors_;
  Stat& tls_refused_;
};

}  // namespace rdmesh::xds_server::webhook
