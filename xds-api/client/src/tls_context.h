// Client TLS for the xDS stream: verifies the server against a CA bundle and an expected name,
// and offers only ALPN "h2".
#pragma once

#include <memory>
#include <string>

#include "rdmesh/common/status.h"

struct ssl_ctx_st;
struct ssl_st;

namespace rdmesh::xds {

class TlsContext {
 public:
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // Trusts the CA bundle in `ca_file`, or the PEM text `ca_pem` when ca_file is empty.
  static Result<std::shared_ptr<TlsContext>> create(const std::string& ca_file,
                                                    const std::string& ca_pem = {});

  // A new connection object checking the certificate against `server_name` (and sending it as
  // SNI); the caller owns it.
  Result<ssl_st*> newConnection(const std::string& server_name) const;

 private:
  explicit TlsContext(ssl_ctx_st* ctx) : ctx_(ctx) {}
  ssl_ctx_st* ctx_;
};

// The negotiated ALPN protocol is h2.
bool negotiatedH2(ssl_st* ssl);
// OpenSSL's queued errors (or the verify result) as one line, and clears the queue.
std::string tlsErrorText(ssl_st* ssl);

}  // namespace rdmesh::xds
