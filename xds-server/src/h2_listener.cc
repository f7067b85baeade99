#include "h2_listener.h"

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cerrno>
#include <cstring>

#include "fmt/format.h"
#include "rdmesh/xds/wire.h"
#include "spdlog/spdlog.h"

namespace rdmesh::xds_server {
namespace {

constexpr int kListenBacklog = 4096;

std::string opensslError() {
  unsigned long code = ERR_get_error();
  if (code == 0) return "unknown OpenSSL error";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  ERR_clear_error();
  return text;
}

int selectAlpn(SSL*, const unsigned char** out, unsigned char* out_length, const unsigned char* in,
               unsigned int in_length, void*) {
  static const unsigned char kProtocols[] = {2, 'h', '2'};
  static_assert(sizeof kProtocols == 1 + xds::kAlpnH2.size());
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, out_length, kProtocols, sizeof kProtocols, in, in_length) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;  // no h2 offered: this port speaks nothing else
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

Result<std::shared_ptr<ssl_ctx_st>> makeServerTlsContext(const TlsFiles& files) {
  std::shared_ptr<SSL_CTX> context(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  if (!context) return internalError("TLS: " + opensslError());
  SSL_CTX_set_min_proto_version(context.get(), TLS1_2_VERSION);
  // Idle clients hold no TLS record buffers (tens of KB each otherwise).
  SSL_CTX_set_mode(context.get(), SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_options(context.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(context.get(), files.cert_chain.c_str()) != 1) {
    return invalidArgument(
        fmt::format("{}: cannot use as TLS certificate: {}", files.cert_chain, opensslError()));
  }
  if (SSL_CTX_use_PrivateKey_file(context.get(), files.private_key.c_str(), SSL_FILETYPE_PEM) !=
      1) {
    return invalidArgument(
        fmt::format("{}: cannot use as TLS private key: {}", files.private_key, opensslError()));
  }
  if (SSL_CTX_check_private_key(context.get()) != 1) {
    return invalidArgument(
        fmt::format("{}: does not match the certificate {}", files.private_key, files.cert_chain));
  }
  if (!files.client_ca.empty()) {
    if (SSL_CTX_load_verify_locations(context.get(), files.client_ca.c_str(), nullptr) != 1) {
      return invalidArgument(
          fmt::format("{}: cannot load as client CA bundle: {}", files.client_ca, opensslError()));
    }
    SSL_CTX_set_verify(context.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  SSL_CTX_set_alpn_select_cb(context.get(), selectAlpn, nullptr);
  return context;
}

H2Listener::H2Listener(event_base* base, H2Router& router, std::shared_ptr<ssl_ctx_st> tls)
    : base_(base), router_(router), tls_(std::move(tls)) {
  reap_event_ = event_new(base_, -1, 0, &H2Listener::onReap, this);
}

H2Listener::~H2Listener() {
  stopAccepting();
  connections_.clear();
  closed_.clear();
  event_free(reap_event_);
}

Status H2Listener::listen(const InetAddress& address) {
  listener_ = evconnlistener_new_bind(
      base_, &H2Listener::onAccept, this,
      LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, kListenBacklog,
      address.sockaddrPtr(), static_cast<int>(address.sockaddrLen()));
  if (listener_ == nullptr) {
    return unavailable(
        fmt::format("cannot listen on {}: {}", address.toString(), std::strerror(errno)));
  }
  bound_port_ = InetAddress::localOf(evconnlistener_get_fd(listener_)).valueOr(address).port();
  return Status::ok();
}

void H2Listener::stopAccepting() {
  if (listener_ != nullptr) {
    evconnlistener_free(listener_);
    listener_ = nullptr;
  }
}

void H2Listener::goAwayAll() {
  for (auto& [raw, connection] : connections_) connection->goAway();
}

void H2Listener::onAccept(evconnlistener*, int fd, struct sockaddr* address, int length,
                          void* arg) {
  static_cast<H2Listener*>(arg)->accept(
      fd, InetAddress::fromSockaddr(address, static_cast<socklen_t>(length)));
}

void H2Listener::accept(int fd, const InetAddress& peer) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  evutil_make_socket_nonblocking(fd);
  bufferevent* bev = nullptr;
  if (tls_) {
    SSL* ssl = SSL_new(tls_.get());
    if (ssl == nullptr) {
      evutil_closesocket(fd);
      return;
    }
    bev = bufferevent_openssl_socket_new(base_, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                         BEV_OPT_CLOSE_ON_FREE);
  } else {
    bev = bufferevent_socket_new(base_, fd, BEV_OPT_CLOSE_ON_FREE);
  }
  if (bev == nullptr) {
    evutil_closesocket(fd);
    return;
  }
  auto connection = std::make_unique<H2Connection>(
      base_, bev, peer.toString(), tls_ != nullptr, router_,
      [this](H2Connection* closed_connection) { closed(closed_connection); });
  H2Connection* raw = connection.get();
  connections_.emplace(raw, std::move(connection));
  raw->start();
}

void H2Listener::closed(H2Connection* connection) {
  auto it = connections_.find(connection);
  if (it == connections_.end()) return;
  closed_.push_back(std::move(it->second));
  connections_.erase(it);
  event_active(reap_event_, 0, 0);
}

void H2Listener::onReap(int, short, void* arg) {
  static_cast<H2Listener*>(arg)->closed_.clear();
}

}  // namespace rdmesh::xds_server
