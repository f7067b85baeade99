#include "webhook_server.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <exception>

#include "rdmesh/common/http_reply.h"

namespace rdmesh::xds_server::webhook {
namespace {

// The API server's own connections: requests are small and answered at once; an idle
// connection is dropped after this.
constexpr int kIdleTimeoutSeconds = 60;
constexpr size_t kMaxHeadersBytes = size_t{32} * 1024;

constexpr std::string_view kEndpointList =
    "webhook endpoints:\n"
    "  POST /inject    AdmissionReview (admission.k8s.io/v1 or v1beta1) -> JSONPatch\n"
    "  GET  /healthz   200 ok\n";

std::string requestBody(evhttp_request* request) {
  evbuffer* input = evhttp_request_get_input_buffer(request);
  std::string body(evbuffer_get_length(input), '\0');
  evbuffer_copyout(input, body.data(), body.size());
  return body;
}

}  // namespace

WebhookServer::WebhookServer(event_base* base, const SidecarInjector& injector, StatsStore& stats,
                             TlsContextSource tls)
    : base_(base),
      injector_(injector),
      tls_(std::move(tls)),
      requests_(stats.counter("xds.webhook", "requests")),
      injected_(stats.counter("xds.webhook", "injected")),
      skipped_(stats.counter("xds.webhook", "skipped")),
      bad_requests_(stats.counter("xds.webhook", "bad_requests")),
      internal_errors_(stats.counter("xds.webhook", "internal_errors")),
      tls_refused_(stats.counter("xds.webhook", "tls_refused")) {}

WebhookServer::~WebhookServer() {
  if (http_ != nullptr) evhttp_free(http_);
}

Status WebhookServer::listen(const InetAddress& address) {
  if (http_ != nullptr) return internalError("webhook: already listening");
  http_ = evhttp_new(base_);
  if (http_ == nullptr) return internalError("webhook: out of memory creating evhttp");
  http::allowAllMethods(http_);
  evhttp_set_timeout(http_, kIdleTimeoutSeconds);
  evhttp_set_max_headers_size(http_, kMaxHeadersBytes);
  // Twice the parser's limit, so an oversized review still gets an AdmissionReview error that
  // says so; past this, evhttp answers 413 and closes.
  evhttp_set_max_body_size(http_, 2 * kMaxAdmissionReviewBytes);
  evhttp_set_gencb(http_, &WebhookServer::onRequest, this);
  if (tls_) evhttp_set_bevcb(http_, &WebhookServer::makeConnection, this);

  const std::string ip = address.ipString();
  evhttp_bound_socket* bound = evhttp_bind_socket_with_handle(http_, ip.c_str(), address.port());
  if (bound == nullptr) {
    const int error = errno;
    evhttp_free(http_);
    http_ = nullptr;
    return unavailable(
        fmt::format("webhook: cannot listen on {}: {}", address.toString(), std::strerror(error)));
  }
  // Accepted sockets inherit it: a reply leaves as TLS records without waiting for the client's
  // delayed ACK of the previous one (40 ms per request otherwise).
  const int one = 1;
  ::setsockopt(evhttp_bound_socket_get_fd(bound), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  Result<InetAddress> actual = InetAddress::localOf(evhttp_bound_socket_get_fd(bound));
  if (!actual) return internalError(fmt::format("webhook: {}", actual.status().message()));
  bound_port_ = actual->port();
  spdlog::info("rdmesh-xds: injection webhook listening on {} ({})", actual->toString(),
               tls_ ? "HTTPS" : "plaintext HTTP, tests only");
  return Status::ok();
}

bufferevent* WebhookServer::makeConnection(event_base* base, void* arg) {
  auto* self = static_cast<WebhookServer*>(arg);
  std::shared_ptr<ssl_ctx_st> context = self->tls_();
  SSL* ssl = context ? SSL_new(context.get()) : nullptr;  // the SSL holds its own context ref
  if (ssl == nullptr) {
    // evhttp closes a connection whose bufferevent cannot be made.
    self->tls_refused_.inc();
    spdlog::warn("webhook: no TLS context for a new connection; refused");
    return nullptr;
  }
  return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                        BEV_OPT_CLOSE_ON_FREE);
}

void WebhookServer::onRequest(evhttp_request* request, void* arg) {
  static_cast<WebhookServer*>(arg)->handle(request);
}

void WebhookServer::handle(evhttp_request* request) {
  const std::string_view path = http::requestPath(request);
  const evhttp_cmd_type method = evhttp_request_get_command(request);
  if (path == "/healthz") {
    if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
      return http::replyMethodNotAllowed(request, "GET");
    }
    return http::reply(request, HTTP_OK, "OK", http::kTextPlain, "ok\n");
  }
  if (path == kInjectPath) {
    if (method != EVHTTP_REQ_POST) return http::replyMethodNotAllowed(request, "POST");
    return handleInject(request);
  }
  http::reply(request, HTTP_NOTFOUND, "Not Found", http::kTextPlain,
              fmt::format("no such endpoint: {}\n{}", path, kEndpointList));
}

void WebhookServer::handleInject(evhttp_request* request) {
  requests_.inc();
  const std::string body = requestBody(request);
  ParsedAdmissionReview parsed = parseAdmissionReview(body);
  if (!parsed.request) {
    // Not an AdmissionReview we can answer: 400 makes the API server apply the failurePolicy
    // (Ignore by default: the pod is created without a sidecar) and log the message.
    bad_requests_.inc();
    const AdmissionParseError& error = *parsed.error;
    spdlog::warn("webhook: bad request: {}", error.message);
    AdmissionResponse response;
    response.allowed = false;
    response.status_code = 400;
    response.status_message = fmt::format("rdmesh injection webhook: {}", error.message);
    http::reply(request, HTTP_BADREQUEST, "Bad Request", http::kJson,
                renderAdmissionReview(error.api_version, error.uid, response));
    return;
  }
  const AdmissionRequest& admission = *parsed.request;
  AdmissionResponse response;  // allowed: the webhook never refuses a pod
  try {
    InjectionDecision decision = injector_.decide(admission);
    if (decision.inject) {
      injected_.inc();
      response.patch = std::move(decision.patch);
      response.audit_annotations.emplace_back("injected", "true");
      spdlog::info("webhook: injected the sidecar into a pod of {} ({})", admission.namespace_name,
                   admission.name.empty() ? "name pending" : admission.name);
    } else {
      skipped_.inc();
      response.audit_annotations.emplace_back("skipped", decision.reason);
      // Only worth a warning when the user may have expected a sidecar.
      if (decision.reason.rfind("annotation ", 0) == 0) {
        response.warnings.push_back(
            fmt::format("rdmesh: sidecar not injected: {}", decision.reason));
      }
      spdlog::debug("webhook: not injected ({}/{}): {}", admission.namespace_name, admission.name,
                    decision.reason);
    }
    for (std::string& warning : decision.warnings) response.warnings.push_back(std::move(warning));
  } catch (const std::exception& e) {
    // A library surprise must not reach the loop, nor block the pod.
    internal_errors_.inc();
    spdlog::error("webhook: internal error on {}/{}: {}", admission.namespace_name, admission.name,
                  e.what());
    response = AdmissionResponse{};
    response.warnings.push_back(
        fmt::format("rdmesh: sidecar not injected: internal error: {}", e.what()));
  }
  http::reply(request, HTTP_OK, "OK", http::kJson,
              renderAdmissionReview(admission.api_version, admission.uid, response));
}

}  // namespace rdmesh::xds_server::webhook
