// Accepts HTTP/2 connections on one address, plaintext (h2c with prior knowledge) or TLS with
// ALPN "h2", and owns them until they close.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "h2_connection.h"
#include "rdmesh/common/address.h"
#include "rdmesh/common/status.h"

struct evconnlistener;
struct event;
struct event_base;
struct ssl_ctx_st;

namespace rdmesh::xds_server {

struct TlsFiles {
  std::string cert_chain;   // PEM: server certificate (+ intermediates)
  std::string private_key;  // PEM
  std::string client_ca;    // PEM bundle; when set, clients must present a certificate it signed
};

// An OpenSSL server context: TLS >= 1.2, the given certificate, ALPN "h2" only. Errors name the
// file and OpenSSL's reason.
Result<std::shared_ptr<ssl_ctx_st>> makeServerTlsContext(const TlsFiles& files);

class H2Listener {
 public:
  // `tls` null = plaintext.
  H2Listener(event_base* base, H2Router& router, std::shared_ptr<ssl_ctx_st> tls);
  ~H2Listener();
  H2Listener(const H2Listener&) = delete;
  H2Listener& operator=(const H2Listener&) = delete;

  Status listen(const InetAddress& address);
  uint16_t boundPort() const { return bound_port_; }
  bool tls() const { return tls_ != nullptr; }
  // Stops accepting; existing connections go on.
  void stopAccepting();
  // GOAWAY on every connection (drain).
  void goAwayAll();
  size_t connectionCount() const { return connections_.size(); }

 private:
  static void onAccept(evconnlistener* listener, int fd, struct sockaddr* address, int length,
                       void* arg);
  static void onReap(int fd, short what, void* arg);
  void accept(int fd, const InetAddress& peer);
  void closed(H2Connection* connection);

  event_base* base_;
  H2Router& router_;
  std::shared_ptr<ssl_ctx_st> tls_;
  evconnlistener* listener_ = nullptr;
  uint16_t bound_port_ = 0;
  std::unordered_map<H2Connection*, std::unique_ptr<H2Connection>> connections_;
  // Closed connections, destroyed from the loop (never inside their own callbacks).
  std::vector<std::unique_ptr<H2Connection>> closed_;
  event* reap_event_ = nullptr;
};

}  // namespace rdmesh::xds_server
