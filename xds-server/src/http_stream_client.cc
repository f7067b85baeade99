#include "http_stream_client.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <charconv>
#include <cstring>

namespace rdmesh::xds {
namespace {

bool isIpLiteral(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::string opensslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

Result<evhttp_cmd_type> commandOf(const std::string& method) {
  if (method == "GET") return EVHTTP_REQ_GET;
  if (method == "POST") return EVHTTP_REQ_POST;
  if (method == "PUT") return EVHTTP_REQ_PUT;
  if (method == "DELETE") return EVHTTP_REQ_DELETE;
  if (method == "PATCH") return EVHTTP_REQ_PATCH;
  return invalidArgument(fmt::format("unsupported HTTP method '{}'", method));
}

}  // namespace

std::string HttpEndpoint::authority() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

std::string HttpEndpoint::url() const {
  return fmt::format("{}://{}", tls ? "https" : "http", authority());
}

Result<HttpEndpoint> parseHttpUrl(std::string_view url) {
  HttpEndpoint endpoint;
  std::string_view rest;
  if (url.starts_with("http://")) {
    rest = url.substr(7);
    endpoint.port = 80;
  } else if (url.starts_with("https://")) {
    rest = url.substr(8);
    endpoint.tls = true;
    endpoint.port = 443;
  } else {
    return invalidArgument(fmt::format("URL '{}': expected http:// or https://", url));
  }
  if (rest.ends_with('/')) rest.remove_suffix(1);
  if (rest.find_first_of("/?#@") != std::string_view::npos) {
    return invalidArgument(fmt::format("URL '{}': expected scheme://host[:port] only", url));
  }
  std::string_view port_text;
  if (rest.starts_with('[')) {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) {
      return invalidArgument(fmt::format("URL '{}': unterminated IPv6 literal", url));
    }
    endpoint.host = std::string(rest.substr(1, close - 1));
    rest.remove_prefix(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return invalidArgument(fmt::format("URL '{}': bad port", url));
      port_text = rest.substr(1);
    }
  } else {
    size_t colon = rest.rfind(':');
    endpoint.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) port_text = rest.substr(colon + 1);
  }
  if (endpoint.host.empty()) return invalidArgument(fmt::format("URL '{}': no host", url));
  if (!port_text.empty()) {
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 ||
        port > 65535) {
      return invalidArgument(fmt::format("URL '{}': bad port '{}'", url, port_text));
    }
    endpoint.port = static_cast<uint16_t>(port);
  }
  return endpoint;
}

// ------------------------------------------------------------------------------------ TLS

Result<std::shared_ptr<TlsClientContext>> TlsClientContext::create(const std::string& ca_file) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return internalError("SSL_CTX_new: " + opensslErrors());
  std::shared_ptr<TlsClientContext> context(new TlsClientContext(ctx));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  int loaded = ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx)
                               : SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr);
  if (loaded != 1) {
    return invalidArgument(fmt::format("CA bundle '{}': {}", ca_file, opensslErrors()));
  }
  static constexpr unsigned char kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(ctx, kAlpnHttp11, sizeof(kAlpnHttp11));
  return context;
}

TlsClientContext::~TlsClientContext() {
  SSL_CTX_free(ctx_);
}

// ------------------------------------------------------------------------------------ HttpCall

HttpCall::HttpCall(event_base* base, Callbacks callbacks)
    : base_(base), callbacks_(std::make_shared<Callbacks>(std::move(callbacks))) {}

HttpCall::~HttpCall() {
  if (destroyed_flag_ != nullptr) *destroyed_flag_ = true;
  closing_ = true;
  // Frees a request still in flight without calling its callbacks, and the bufferevent.
  if (connection_ != nullptr) evhttp_connection_free(connection_);
  if (deliver_event_ != nullptr) event_free(deliver_event_);
}

Status HttpCall::start(const HttpEndpoint& endpoint, ssl_ctx_st* tls, const HttpRequest& request) {
  auto command = commandOf(request.method);
  if (!command) return command.status();
  deliver_event_ = event_new(base_, -1, 0, &HttpCall::onDeliver, this);
  if (deliver_event_ == nullptr) return internalError("event_new failed");

  bufferevent* bev = nullptr;
  if (endpoint.tls) {
    if (tls == nullptr) return invalidArgument(endpoint.url() + ": TLS endpoint without a context");
    SSL* ssl = SSL_new(tls);
    if (ssl == nullptr) return internalError("SSL_new: " + opensslErrors());
    const std::string& name = endpoint.server_name.empty() ? endpoint.host : endpoint.server_name;
    if (isIpLiteral(name)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl, name.c_str());
      SSL_set1_host(ssl, name.c_str());
    }
    // No BEV_OPT_DEFER_CALLBACKS (here or below): libevent 2.1 can leak a deferred
    // bufferevent's last reference (and with it the SSL and the socket) when evhttp frees it
    // mid-call, e.g. after a failed handshake (libevent issue #228). Deferral is not needed:
    // results reach the caller through deliver_event_ anyway.
    bev = bufferevent_openssl_socket_new(base_, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    if (bev == nullptr) {
      SSL_free(ssl);
      return internalError("bufferevent_openssl_socket_new failed");
    }
    // Servers often drop TLS connections without close_notify; the HTTP framing already tells
    // whether the body was complete.
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
  } else {
    bev = bufferevent_socket_new(base_, -1, BEV_OPT_CLOSE_ON_FREE);
    if (bev == nullptr) return internalError("bufferevent_socket_new failed");
  }
  // The connection owns the bufferevent from here on.
  connection_ = evhttp_connection_base_bufferevent_new(base_, nullptr, bev, endpoint.host.c_str(),
                                                       endpoint.port);
  if (connection_ == nullptr) {
    bufferevent_free(bev);
    return internalError("evhttp_connection_base_bufferevent_new failed");
  }
  evhttp_connection_set_retries(connection_, 0);
  evhttp_connection_set_timeout(connection_, static_cast<int>(request.idle_timeout.count()));

  request_ = evhttp_request_new(&HttpCall::onDone, this);
  if (request_ == nullptr) return internalError("evhttp_request_new failed");
  evhttp_request_set_header_cb(request_, [](evhttp_request* r, void* arg) -> int {
    onHeaders(r, arg);
    return 0;
  });
  evhttp_request_set_chunked_cb(request_, &HttpCall::onChunk);
  evhttp_request_set_error_cb(
      request_, [](evhttp_request_error e, void* arg) { onError(static_cast<int>(e), arg); });
  evkeyvalq* headers = evhttp_request_get_output_headers(request_);
  evhttp_add_header(headers, "Host", endpoint.authority().c_str());
  for (const auto& [name, value] : request.headers) {
    evhttp_add_header(headers, name.c_str(), value.c_str());
  }
  if (!request.content_type.empty()) {
    evhttp_add_header(headers, "Content-Type", request.content_type.c_str());
  }
  if (!request.body.empty() || *command == EVHTTP_REQ_POST || *command == EVHTTP_REQ_PUT) {
    evhttp_add_header(headers, "Content-Length", std::to_string(request.body.size()).c_str());
    evbuffer_add(evhttp_request_get_output_buffer(request_), request.body.data(),
                 request.body.size());
  }
  if (evhttp_make_request(connection_, request_, *command, request.target.c_str()) != 0) {
    request_ = nullptr;  // libevent has released it
    return unavailable(fmt::format("{}: cannot start request", endpoint.url()));
  }
  return Status::ok();
}

void HttpCall::onHeaders(evhttp_request* request, void* arg) {
  auto* self = static_cast<HttpCall*>(arg);
  self->status_ = evhttp_request_get_response_code(request);
  self->status_pending_ = true;
  self->scheduleDelivery();
}

void HttpCall::onChunk(evhttp_request* request, void* arg) {
  auto* self = static_cast<HttpCall*>(arg);
  self->takeBody(request);
  self->scheduleDelivery();
}

void HttpCall::onDone(evhttp_request* request, void* arg) {
  auto* self = static_cast<HttpCall*>(arg);
  if (self->closing_) return;
  self->request_ = nullptr;
  self->finished_ = true;
  if (request == nullptr || evhttp_request_get_response_code(request) == 0) {
    if (self->result_.isOk()) self->result_ = unavailable("connection failed");
  } else {
    self->takeBody(request);
  }
  self->scheduleDelivery();
}

void HttpCall::onError(int error, void* arg) {
  auto* self = static_cast<HttpCall*>(arg);
  if (self->closing_) return;
  self->request_ = nullptr;  // libevent frees it after this callback
  std::string tls_errors;
  if (bufferevent* bev = evhttp_connection_get_bufferevent(self->connection_)) {
    while (unsigned long e = bufferevent_get_openssl_error(bev)) {
      if (ERR_GET_LIB(e) == 0) continue;  // a system errno, reported below
      char buf[256];
      ERR_error_string_n(e, buf, sizeof(buf));
      tls_errors += tls_errors.empty() ? buf : std::string("; ") + buf;
    }
  }
  if (!tls_errors.empty()) {
    self->result_ = unavailable("TLS: " + tls_errors);
    return;
  }
  int socket_error = EVUTIL_SOCKET_ERROR();
  switch (static_cast<evhttp_request_error>(error)) {
    case EVREQ_HTTP_TIMEOUT:
      self->result_ = Status(StatusCode::kTimeout, "no data within the idle timeout");
      break;
    case EVREQ_HTTP_EOF:
      self->result_ = unavailable("connection closed by the server");
      break;
    case EVREQ_HTTP_INVALID_HEADER:
      self->result_ = protocolError("malformed HTTP response");
      break;
    case EVREQ_HTTP_DATA_TOO_LONG:
      self->result_ = protocolError("HTTP response too large");
      break;
    case EVREQ_HTTP_BUFFER_ERROR:
    default:
      self->result_ = unavailable(fmt::format(
          "connection error: {}", socket_error != 0 ? std::strerror(socket_error) : "I/O failure"));
      break;
  }
}

void HttpCall::takeBody(evhttp_request* request) {
  evbuffer* input = evhttp_request_get_input_buffer(request);
  size_t length = evbuffer_get_length(input);
  if (length == 0) return;
  size_t old_size = body_pending_.size();
  body_pending_.resize(old_size + length);
  evbuffer_remove(input, body_pending_.data() + old_size, length);
}

void HttpCall::scheduleDelivery() {
  event_active(deliver_event_, EV_TIMEOUT, 0);
}

void HttpCall::onDeliver(int /*fd*/, short /*what*/, void* arg) {
  static_cast<HttpCall*>(arg)->deliver();
}

void HttpCall::deliver() {
  // Keeps the callbacks alive if one of them destroys this call.
  std::shared_ptr<Callbacks> callbacks = callbacks_;
  bool destroyed = false;
  destroyed_flag_ = &destroyed;
  if (status_pending_) {
    status_pending_ = false;
    if (callbacks->on_status) callbacks->on_status(status_);
    if (destroyed) return;
  }
  if (!body_pending_.empty()) {
    std::string bytes;
    bytes.swap(body_pending_);
    if (callbacks->on_body) callbacks->on_body(bytes);
    if (destroyed) return;
  }
  destroyed_flag_ = nullptr;
  if (finished_ && !done_delivered_) {
    done_delivered_ = true;
    if (callbacks->on_done) callbacks->on_done(result_);  // may destroy this
  }
}

// ------------------------------------------------------------------------------------ HttpClient

HttpClient::HttpClient(event_base* base, HttpEndpoint endpoint,
                       std::shared_ptr<TlsClientContext> tls)
    : base_(base), endpoint_(std::move(endpoint)), tls_(std::move(tls)) {}

Result<std::unique_ptr<HttpClient>> HttpClient::create(event_base* base, HttpEndpoint endpoint) {
  std::shared_ptr<TlsClientContext> tls;
  if (endpoint.tls) {
    auto context = TlsClientContext::create(endpoint.ca_file);
    if (!context) return context.status();
    tls = std::move(*context);
  }
  return std::make_unique<HttpClient>(base, std::move(endpoint), std::move(tls));
}

Result<std::unique_ptr<HttpCall>> HttpClient::start(const HttpRequest& request,
                                                    HttpCall::Callbacks callbacks) {
  std::unique_ptr<HttpCall> call(new HttpCall(base_, std::move(callbacks)));
  Status started = call->start(endpoint_, tls_ ? tls_->get() : nullptr, request);
  if (!started) return started;
  return call;
}

Status HttpClient::fetch(const HttpRequest& request, ResponseHandler done, size_t max_body_bytes) {
  struct State {
    Response response;
    bool too_large = false;
  };
  auto state = std::make_shared<State>();
  uint64_t id = next_fetch_id_++;
  HttpCall::Callbacks callbacks;
  callbacks.on_status = [state](int status) { state->response.status = status; };
  callbacks.on_body = [state, max_body_bytes](std::string_view bytes) {
    if (state->response.body.size() + bytes.size() > max_body_bytes) {
      state->too_large = true;
      return;
    }
    state->response.body.append(bytes);
  };
  callbacks.on_done = [this, id, state, max_body_bytes, done = std::move(done)](Status status) {
    fetches_.erase(id);  // the running callback survives (HttpCall::deliver holds it)
    if (!status) {
      done(std::move(status));
    } else if (state->too_large) {
      done(Status(StatusCode::kResourceExhausted,
                  fmt::format("response body larger than {} bytes", max_body_bytes)));
    } else {
      done(std::move(state->response));
    }
  };
  auto call = start(request, std::move(callbacks));
  if (!call) return call.status();
  fetches_.emplace(id, std::move(*call));
  return Status::ok();
}

}  // namespace rdmesh::xds
