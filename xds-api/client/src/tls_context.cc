#include "tls_context.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <memory>

#include "rdmesh/xds/wire.h"

namespace rdmesh::xds {

namespace {

std::string queuedErrors() {
  std::string text;
  while (unsigned long code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof(buffer));
    text += text.empty() ? buffer : std::string("; ") + buffer;
  }
  return text;
}

// Adds every certificate of a PEM bundle to the context's trust store.
Status trustPem(SSL_CTX* ctx, const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                                BIO_free);
  if (bio == nullptr) return internalError("BIO_new_mem_buf: " + queuedErrors());
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int added = 0;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    const int ok = X509_STORE_add_cert(store, cert);
    X509_free(cert);
    if (ok != 1) return invalidArgument("ca_pem: cannot trust a certificate: " + queuedErrors());
    ++added;
  }
  ERR_clear_error();  // the loop ends on "no start line"
  if (added == 0) return invalidArgument("ca_pem: no PEM certificate in it");
  return Status::ok();
}

}  // namespace

TlsContext::~TlsContext() {
  SSL_CTX_free(ctx_);
}

Result<std::shared_ptr<TlsContext>> TlsContext::create(const std::string& ca_file,
                                                       const std::string& ca_pem) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return internalError("SSL_CTX_new: " + queuedErrors());
  std::shared_ptr<TlsContext> context(new TlsContext(ctx));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (ca_file.empty()) {
    if (Status s = trustPem(ctx, ca_pem); !s) return s;
  } else if (SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
    return invalidArgument(fmt::format("cannot load CA bundle '{}': {}", ca_file, queuedErrors()));
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  // ALPN wire format: length-prefixed protocol names.
  std::string alpn = std::string(1, static_cast<char>(kAlpnH2.size())) + std::string(kAlpnH2);
  SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>(alpn.data()),
                          static_cast<unsigned>(alpn.size()));
  return context;
}

Result<SSL*> TlsContext::newConnection(const std::string& server_name) const {
  SSL* ssl = SSL_new(ctx_);
  if (ssl == nullptr) return internalError("SSL_new: " + queuedErrors());
  in6_addr ip{};
  bool is_ip = inet_pton(AF_INET, server_name.c_str(), &ip) == 1 ||
               inet_pton(AF_INET6, server_name.c_str(), &ip) == 1;
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, server_name.c_str())
                 : SSL_set1_host(ssl, server_name.c_str());
  if (!is_ip) SSL_set_tlsext_host_name(ssl, server_name.c_str());
  if (ok != 1) {
    SSL_free(ssl);
    return invalidArgument(fmt::format("bad TLS server name '{}'", server_name));
  }
  return ssl;
}

bool negotiatedH2(SSL* ssl) {
  const unsigned char* protocol = nullptr;
  unsigned length = 0;
  SSL_get0_alpn_selected(ssl, &protocol, &length);
  return protocol != nullptr &&
         std::string_view(reinterpret_cast<const char*>(protocol), length) == kAlpnH2;
}

std::string tlsErrorText(SSL* ssl) {
  std::string text = queuedErrors();
  long verify = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
  if (verify != X509_V_OK) {
    std::string reason = X509_verify_cert_error_string(verify);
    text = text.empty() ? "certificate: " + reason : text + " (certificate: " + reason + ")";
  }
  return text.empty() ? "TLS handshake failed" : text;
}

}  // namespace rdmesh::xds
