#include "certificate_authority.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>

namespace rdmesh::xds_server {
namespace {

constexpr long kRootValiditySeconds = 10L * 365 * 24 * 3600;
constexpr long kBackdateSeconds = 60;  // clients whose clocks lag a little still accept it

std::string opensslReason() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "no OpenSSL error queued";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

std::shared_ptr<x509_st> ownX509(X509* x) {
  return {x, X509_free};
}
std::shared_ptr<evp_pkey_st> ownKey(EVP_PKEY* k) {
  return {k, EVP_PKEY_free};
}

Result<std::shared_ptr<evp_pkey_st>> newEcKey() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (key == nullptr) return internalError("EC key generation: " + opensslReason());
  return ownKey(key);
}

// One X509v3 extension, by its config-file spelling.
Status addExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) {
    return internalError(fmt::format("extension '{}': {}", value, opensslReason()));
  }
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok == 1 ? Status::ok() : internalError("X509_add_ext: " + opensslReason());
}

Status setRandomSerial(X509* cert, std::string* hex_out) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return internalError("RAND_bytes: " + opensslReason());
  bytes[0] &= 0x7f;  // positive
  BIGNUM* serial = BN_bin2bn(bytes, sizeof bytes, nullptr);
  ASN1_INTEGER* asn1 = serial ? BN_to_ASN1_INTEGER(serial, nullptr) : nullptr;
  if (hex_out != nullptr && serial != nullptr) {
    char* hex = BN_bn2hex(serial);
    *hex_out = hex;
    OPENSSL_free(hex);
  }
  BN_free(serial);
  if (asn1 == nullptr) return internalError("serial: " + opensslReason());
  X509_set_serialNumber(cert, asn1);
  ASN1_INTEGER_free(asn1);
  return Status::ok();
}

std::string toPem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(length));
  BIO_free(bio);
  return pem;
}

// RFC 5280's upper bound for a common name; longer ones are refused by OpenSSL.
constexpr size_t kMaxCommonNameBytes = 64;

Status addNameEntry(X509_NAME* name, const char* field, const std::string& value) {
  if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                 0) != 1) {
    return internalError(fmt::format("subject {}='{}': {}", field, value, opensslReason()));
  }
  return Status::ok();
}

bool isIpLiteral(const std::string& name) {
  unsigned char buffer[16];
  return inet_pton(AF_INET, name.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, name.c_str(), buffer) == 1;
}

}  // namespace

CertificateAuthority::CertificateAuthority(std::shared_ptr<x509_st> root,
                                           std::shared_ptr<evp_pkey_st> key)
    : root_(std::move(root)), key_(std::move(key)), root_pem_(toPem(root_.get())) {}

Result<std::unique_ptr<CertificateAuthority>> CertificateAuthority::load(
    const std::string& certificate_path, const std::string& key_path) {
  FILE* cert_file = std::fopen(certificate_path.c_str(), "r");
  if (cert_file == nullptr) {
    return invalidArgument(fmt::format("{}: cannot read", certificate_path));
  }
  X509* cert = PEM_read_X509(cert_file, nullptr, nullptr, nullptr);
  std::fclose(cert_file);
  if (cert == nullptr) {
    return invalidArgument(
        fmt::format("{}: not a PEM certificate: {}", certificate_path, opensslReason()));
  }
  auto root = ownX509(cert);
  FILE* key_file = std::fopen(key_path.c_str(), "r");
  if (key_file == nullptr) return invalidArgument(fmt::format("{}: cannot read", key_path));
  EVP_PKEY* raw_key = PEM_read_PrivateKey(key_file, nullptr, nullptr, nullptr);
  std::fclose(key_file);
  if (raw_key == nullptr) {
    return invalidArgument(fmt::format("{}: not a PEM private key: {}", key_path, opensslReason()));
  }
  auto key = ownKey(raw_key);
  if (X509_check_private_key(root.get(), key.get()) != 1) {
    ERR_clear_error();
    return invalidArgument(
        fmt::format("{}: does not belong to the certificate {}", key_path, certificate_path));
  }
  if (X509_check_ca(root.get()) == 0) {
    return invalidArgument(
        fmt::format("{}: not a CA certificate (basicConstraints CA:TRUE)", certificate_path));
  }
  return std::unique_ptr<CertificateAuthority>(new CertificateAuthority(root, key));
}

Result<std::unique_ptr<CertificateAuthority>> CertificateAuthority::generate(
    const std::string& common_name) {
  if (common_name.empty() || common_name.size() > kMaxCommonNameBytes) {
    return invalidArgument(fmt::format("a root's common name has 1..{} bytes, '{}' has {}",
                                       kMaxCommonNameBytes, common_name, common_name.size()));
  }
  Result<std::shared_ptr<evp_pkey_st>> key = newEcKey();
  if (!key) return key.status();
  auto root = ownX509(X509_new());
  X509_set_version(root.get(), 2);
  if (Status s = setRandomSerial(root.get(), nullptr); !s) return s;
  X509_gmtime_adj(X509_getm_notBefore(root.get()), -kBackdateSeconds);
  X509_gmtime_adj(X509_getm_notAfter(root.get()), kRootValiditySeconds);
  X509_NAME* name = X509_get_subject_name(root.get());
  for (auto [field, value] :
       {std::pair{"O", std::string("rdmesh")}, std::pair{"CN", common_name}}) {
    if (Status s = addNameEntry(name, field, value); !s) return s;
  }
  X509_set_issuer_name(root.get(), name);
  X509_set_pubkey(root.get(), key->get());
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE"},
                            std::pair{NID_key_usage, "critical,keyCertSign,cRLSign"},
                            std::pair{NID_subject_key_identifier, "hash"}}) {
    if (Status s = addExtension(root.get(), root.get(), nid, value); !s) return s;
  }
  if (X509_sign(root.get(), key->get(), EVP_sha256()) == 0) {
    return internalError("signing the root: " + opensslReason());
  }
  return std::unique_ptr<CertificateAuthority>(new CertificateAuthority(root, *key));
}

Result<IssuedCertificate> CertificateAuthority::issueServing(
    const std::vector<std::string>& dns_names, std::chrono::seconds validity) const {
  if (dns_names.empty()) return invalidArgument("a serving certificate needs at least one name");
  Result<std::shared_ptr<evp_pkey_st>> key = newEcKey();
  if (!key) return key.status();
  IssuedCertificate issued;
  auto cert = ownX509(X509_new());
  X509_set_version(cert.get(), 2);
  if (Status s = setRandomSerial(cert.get(), &issued.serial_hex); !s) return s;
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -kBackdateSeconds);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(validity.count()));
  X509_NAME* name = X509_get_subject_name(cert.get());
  // The first name is also the common name if it fits (a long service DNS name may not); with
  // an empty subject the names live in the subjectAltName alone, which must then be critical.
  const bool named = dns_names.front().size() <= kMaxCommonNameBytes;
  if (named) {
    if (Status s = addNameEntry(name, "CN", dns_names.front()); !s) return s;
  }
  X509_set_issuer_name(cert.get(), X509_get_subject_name(root_.get()));
  X509_set_pubkey(cert.get(), key->get());
  std::string san;
  for (const std::string& n : dns_names) {
    san += (san.empty() ? "" : ",") + std::string(isIpLiteral(n) ? "IP:" : "DNS:") + n;
  }
  for (auto [nid, value] :
       {std::pair{NID_basic_constraints, std::string("critical,CA:FALSE")},
        std::pair{NID_key_usage, std::string("critical,digitalSignature")},
        std::pair{NID_ext_key_usage, std::string("serverAuth")},
        // A root without a subject key id (an older, loaded one) is named by
        // its issuer and serial instead.
        std::pair{NID_authority_key_identifier,
                  std::string(X509_get0_subject_key_id(root_.get()) != nullptr ? "keyid:always"
                                                                               : "issuer:always")},
        std::pair{NID_subject_alt_name, (named ? "" : "critical,") + san}}) {
    if (Status s = addExtension(cert.get(), root_.get(), nid, value); !s) return s;
  }
  if (X509_sign(cert.get(), key_.get(), EVP_sha256()) == 0) {
    return internalError("signing a serving certificate: " + opensslReason());
  }
  issued.certificate = cert;
  issued.private_key = *key;
  issued.not_after = std::time(nullptr) + validity.count();
  return issued;
}

namespace {

int selectOnlyH2(SSL*, const unsigned char** out, unsigned char* out_length,
                 const unsigned char* in, unsigned int in_length, void*) {
  static const unsigned char kH2[] = {2, 'h', '2'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, out_length, kH2, sizeof kH2, in, in_length) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

Result<std::shared_ptr<ssl_ctx_st>> makeBareServerTlsContext(const std::string& alpn) {
  std::shared_ptr<SSL_CTX> context(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  if (!context) return internalError("TLS: " + opensslReason());
  SSL_CTX_set_min_proto_version(context.get(), TLS1_2_VERSION);
  SSL_CTX_set_mode(context.get(), SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_options(context.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (alpn == "h2") {
    SSL_CTX_set_alpn_select_cb(context.get(), selectOnlyH2, nullptr);
  } else if (!alpn.empty()) {
    return invalidArgument(fmt::format("ALPN '{}' is not supported here", alpn));
  }
  return context;
}

ServingCertificate::ServingCertificate(event_base* base, const CertificateAuthority& ca,
                                       std::vector<std::string> dns_names,
                                       std::chrono::seconds validity)
    : base_(base), ca_(ca), dns_names_(std::move(dns_names)), validity_(validity) {}

ServingCertificate::~ServingCertificate() {
  if (timer_ != nullptr) event_free(timer_);
}

void ServingCertificate::addContext(std::shared_ptr<ssl_ctx_st> context) {
  if (current_.certificate) {
    SSL_CTX_use_certificate(context.get(), current_.certificate.get());
    SSL_CTX_use_PrivateKey(context.get(), current_.private_key.get());
  }
  contexts_.push_back(std::move(context));
}

Status ServingCertificate::start() {
  timer_ = evtimer_new(base_, &ServingCertificate::onRenew, this);
  if (timer_ == nullptr) return internalError("serving certificate: out of memory for a timer");
  return renew();
}

Status ServingCertificate::renew() {
  Result<IssuedCertificate> issued = ca_.issueServing(dns_names_, validity_);
  if (!issued) return issued.status();
  for (const auto& context : contexts_) {
    if (SSL_CTX_use_certificate(context.get(), issued->certificate.get()) != 1 ||
        SSL_CTX_use_PrivateKey(context.get(), issued->private_key.get()) != 1) {
      return internalError("installing the serving certificate: " + opensslReason());
    }
  }
  current_ = std::move(*issued);
  spdlog::info("rdmesh-xds: serving certificate {} for {} issued, valid {} s", current_.serial_hex,
               fmt::join(dns_names_, ","), validity_.count());
  arm(std::chrono::seconds(std::max<int64_t>(1, validity_.count() * 2 / 3)));
  return Status::ok();
}

void ServingCertificate::arm(std::chrono::seconds delay) {
  timeval tv{static_cast<time_t>(delay.count()), 0};
  evtimer_add(timer_, &tv);
}

void ServingCertificate::onRenew(int, short, void* arg) {
  auto* self = static_cast<ServingCertificate*>(arg);
  if (Status s = self->renew(); !s) {
    // The current certificate is still valid for a third of its life: try again soon.
    spdlog::error("rdmesh-xds: renewing the serving certificate: {}; retrying in 10 s",
                  s.message());
    self->arm(std::chrono::seconds(10));
  }
}

}  // namespace rdmesh::xds_server
