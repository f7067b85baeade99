// rdmesh-xds's certificate authority (docs/certificates.md): a root loaded from PEM files (the
// chart's Secret rdmesh-ca) or generated at start, and serving certificates it issues for the
// xDS port and the injection webhook, renewed on the event loop before they expire.
#pragma once

#include <chrono>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "rdmesh/common/status.h"

struct event;
struct event_base;
struct evp_pkey_st;
struct ssl_ctx_st;
struct x509_st;

namespace rdmesh::xds_server {

struct IssuedCertificate {
  std::shared_ptr<x509_st> certificate;
  std::shared_ptr<evp_pkey_st> private_key;
  std::time_t not_after = 0;
  std::string serial_hex;
};

class CertificateAuthority {
 public:
  // A root from PEM files (certificate, and its private key). Refused unless it is a CA.
  static Result<std::unique_ptr<CertificateAuthority>> load(const std::string& certificate_path,
                                                            const std::string& key_path);
  // A new self-signed root (EC P-256, 10 years): a single replica's, gone at restart.
  static Result<std::unique_ptr<CertificateAuthority>> generate(const std::string& common_name);

  // The root certificate, PEM: what clients trust (the webhook's caBundle, sidecars' ca_pem).
  const std::string& rootPem() const { return root_pem_; }
  // A serving certificate (EC P-256, serverAuth) for `dns_names` (and IP literals among them),
  // valid from a minute ago (clock skew) for `validity`.
  Result<IssuedCertificate> issueServing(const std::vector<std::string>& dns_names,
                                         std::chrono::seconds validity) const;

 private:
  CertificateAuthority(std::shared_ptr<x509_st> root, std::shared_ptr<evp_pkey_st> key);
  std::shared_ptr<x509_st> root_;
  std::shared_ptr<evp_pkey_st> key_;
  std::string root_pem_;
};

// A server TLS context (TLS >= 1.2) without a certificate yet; `alpn` "h2" requires HTTP/2 by
// ALPN, "" accepts whatever the client offers (the webhook speaks HTTP/1.1).
Result<std::shared_ptr<ssl_ctx_st>> makeBareServerTlsContext(const std::string& alpn);

// Keeps one serving certificate in a set of server contexts: issued at start, renewed at two
// thirds of its lifetime. Connections accepted after a renewal get the new certificate (an SSL
// copies its context's certificate when it is made); open ones keep theirs.
class ServingCertificate {
 public:
  ServingCertificate(event_base* base, const CertificateAuthority& ca,
                     std::vector<std::string> dns_names, std::chrono::seconds validity);
  ~ServingCertificate();
  ServingCertificate(const ServingCertificate&) = delete;
  ServingCertificate& operator=(const ServingCertificate&) = delete;

  // Serves this certificate from `context` from now on.
  void addContext(std::shared_ptr<ssl_ctx_st> context);
  // Issues and installs the first certificate and arms the renewal.
  Status start();
  const IssuedCertificate& current() const { return current_; }

 private:
  static void onRenew(int fd, short what, void* arg);
  Status renew();
  void arm(std::chrono::seconds delay);

  event_base* base_;
  const CertificateAuthority& ca_;
  std::vector<std::string> dns_names_;
  std::chrono::seconds validity_;
  std::vector<std::shared_ptr<ssl_ctx_st>> contexts_;
  IssuedCertificate current_;
  event* timer_ = nullptr;
};

}  // namespace rdmesh::xds_server
