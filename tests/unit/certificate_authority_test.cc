// rdmesh-xds's certificate authority, checked with OpenSSL itself: the root is a CA, what it
// issues verifies against it with the right names and usages, a root loaded from files (the
// chart's Secret) works the same, bad files are refused with the path and the reason, and a
// serving certificate is renewed in its TLS contexts on the event loop.
#include "certificate_authority.h"

#include <event2/event.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "temp_dir.h"

namespace rdmesh::xds_server {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

constexpr const char* kService = "rdmesh-xds.rdmesh-system.svc";

std::shared_ptr<X509> parsePem(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), int(pem.size())),
                                                BIO_free);
  return {PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), X509_free};
}

std::string pemOf(X509* cert) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return {data, static_cast<size_t>(n)};
}

std::string pemOf(EVP_PKEY* key) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return {data, static_cast<size_t>(n)};
}

// X509_verify_cert against a store holding only `root`, for serverAuth; "" when it verifies.
std::string verifyAgainst(X509* root, X509* leaf) {
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), X509_STORE_free);
  X509_STORE_add_cert(store.get(), root);
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(),
                                                                      X509_STORE_CTX_free);
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf, nullptr);
  X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_SERVER);
  if (X509_verify_cert(ctx.get()) == 1) return "";
  return X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
}

std::vector<std::string> subjectAltNames(X509* cert) {
  std::vector<std::string> out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type == GEN_DNS) {
      out.push_back("DNS:" + std::string(reinterpret_cast<const char*>(
                                             ASN1_STRING_get0_data(name->d.dNSName)),
                                         ASN1_STRING_length(name->d.dNSName)));
    } else if (name->type == GEN_IPADD) {
      const unsigned char* ip = ASN1_STRING_get0_data(name->d.iPAddress);
      if (ASN1_STRING_length(name->d.iPAddress) == 4) {
        out.push_back("IP:" + std::to_string(ip[0]) + "." + std::to_string(ip[1]) + "." +
                      std::to_string(ip[2]) + "." + std::to_string(ip[3]));
      } else {
        out.push_back("IP:v6");
      }
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

// Seconds from now to `t` (negative: in the past).
long secondsFromNow(const ASN1_TIME* t) {
  int days = 0, seconds = 0;
  ASN1_TIME_diff(&days, &seconds, nullptr, t);
  return days * 86400L + seconds;
}

int curveOf(EVP_PKEY* key) {
  char name[64] = {};
  size_t len = 0;
  if (EVP_PKEY_get_group_name(key, name, sizeof name, &len) != 1) return NID_undef;
  return OBJ_sn2nid(name) != NID_undef ? OBJ_sn2nid(name) : OBJ_ln2nid(name);
}

TEST(CertificateAuthority, AGeneratedRootIsASelfSignedP256Ca) {
  auto ca = CertificateAuthority::generate("rdmesh test root");
  ASSERT_TRUE(ca.isOk()) << ca.status().message();
  std::shared_ptr<X509> root = parsePem((*ca)->rootPem());
  ASSERT_TRUE(root) << "rootPem() is not PEM";
  EXPECT_EQ(X509_check_ca(root.get()), 1);
  EXPECT_TRUE(X509_get_key_usage(root.get()) & KU_KEY_CERT_SIGN);
  EXPECT_EQ(X509_check_issued(root.get(), root.get()), X509_V_OK) << "not self-issued";
  EXPECT_EQ(X509_verify(root.get(), X509_get0_pubkey(root.get())), 1) << "not self-signed";
  EXPECT_NE(X509_get0_subject_key_id(root.get()), nullptr);  // what issued certificates cite
  EXPECT_EQ(curveOf(X509_get0_pubkey(root.get())), NID_X9_62_prime256v1);
  EXPECT_LT(secondsFromNow(X509_get0_notBefore(root.get())), 0);
  EXPECT_GT(secondsFromNow(X509_get0_notAfter(root.get())), 9L * 365 * 86400);
  // A root's common name must fit X.509's 64 bytes.
  auto too_long = CertificateAuthority::generate(std::string(65, 'r'));
  ASSERT_FALSE(too_long.isOk());
  EXPECT_THAT(too_long.status().message(), HasSubstr("common name has 1..64 bytes"));
  // Two roots are two different CAs.
  auto other = CertificateAuthority::generate("rdmesh test root");
  ASSERT_TRUE(other.isOk());
  EXPECT_NE((*other)->rootPem(), (*ca)->rootPem());
}

TEST(CertificateAuthority, AServingCertificateVerifiesWithItsNamesAndUsages) {
  auto ca = CertificateAuthority::generate("rdmesh test root");
  ASSERT_TRUE(ca.isOk());
  auto root = parsePem((*ca)->rootPem());
  auto issued = (*ca)->issueServing({kService, "127.0.0.1"}, std::chrono::hours(24));
  ASSERT_TRUE(issued.isOk()) << issued.status().message();
  X509* leaf = issued->certificate.get();
  EXPECT_EQ(verifyAgainst(root.get(), leaf), "");
  // The IP literal is an IP SAN, not a DNS name; both verify as host names.
  EXPECT_THAT(subjectAltNames(leaf),
              ::testing::ElementsAre(std::string("DNS:") + kService, "IP:127.0.0.1"));
  EXPECT_EQ(X509_check_host(leaf, kService, 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
  EXPECT_NE(X509_check_host(leaf, "other.svc", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ca(leaf), 0);
  EXPECT_TRUE(X509_get_extended_key_usage(leaf) & XKU_SSL_SERVER);
  EXPECT_FALSE(X509_get_extended_key_usage(leaf) & XKU_SSL_CLIENT);
  EXPECT_EQ(X509_check_private_key(leaf, issued->private_key.get()), 1);
  EXPECT_EQ(curveOf(issued->private_key.get()), NID_X9_62_prime256v1);
  // Backdated a minute for clock skew; valid for what was asked.
  long not_before = secondsFromNow(X509_get0_notBefore(leaf));
  EXPECT_GE(not_before, -70);
  EXPECT_LE(not_before, -50);
  long not_after = secondsFromNow(X509_get0_notAfter(leaf));
  EXPECT_NEAR(not_after, 24 * 3600, 5);
  EXPECT_NEAR(static_cast<double>(issued->not_after - std::time(nullptr)), 24 * 3600.0, 5);
  // Every certificate gets its own serial and key.
  auto second = (*ca)->issueServing({kService}, std::chrono::hours(1));
  ASSERT_TRUE(second.isOk());
  EXPECT_NE(second->serial_hex, issued->serial_hex);
  EXPECT_FALSE(second->serial_hex.empty());
  EXPECT_NE(pemOf(second->private_key.get()), pemOf(issued->private_key.get()));
  // Another root does not vouch for it.
  auto stranger = CertificateAuthority::generate("someone else");
  ASSERT_TRUE(stranger.isOk());
  EXPECT_NE(verifyAgainst(parsePem((*stranger)->rootPem()).get(), leaf), "");

  // A service DNS name longer than a common name may be (64 bytes) is a SAN only: the subject
  // is empty, so the SAN is critical (RFC 5280), and nothing is left on OpenSSL's error queue.
  const std::string long_name =
      "rdmesh-xds-control-plane-for-tenants." + std::string(40, 'n') + ".svc.cluster.local";
  ASSERT_GT(long_name.size(), 64u);
  ERR_clear_error();
  auto long_issued = (*ca)->issueServing({long_name}, std::chrono::hours(1));
  ASSERT_TRUE(long_issued.isOk()) << long_issued.status().message();
  X509* long_leaf = long_issued->certificate.get();
  EXPECT_EQ(ERR_peek_error(), 0u);
  EXPECT_EQ(X509_NAME_entry_count(X509_get_subject_name(long_leaf)), 0);
  int san_at = X509_get_ext_by_NID(long_leaf, NID_subject_alt_name, -1);
  ASSERT_GE(san_at, 0);
  EXPECT_EQ(X509_EXTENSION_get_critical(X509_get_ext(long_leaf, san_at)), 1);
  EXPECT_EQ(X509_check_host(long_leaf, long_name.c_str(), 0, 0, nullptr), 1);
  EXPECT_EQ(verifyAgainst(root.get(), long_leaf), "");
  // A short first name is the common name too, and the SAN stays non-critical.
  EXPECT_EQ(X509_NAME_entry_count(X509_get_subject_name(leaf)), 1);
  EXPECT_EQ(X509_EXTENSION_get_critical(
                X509_get_ext(leaf, X509_get_ext_by_NID(leaf, NID_subject_alt_name, -1))),
            0);

  auto nameless = (*ca)->issueServing({}, std::chrono::hours(1));
  ASSERT_FALSE(nameless.isOk());
  EXPECT_THAT(nameless.status().message(), HasSubstr("at least one name"));
}

TEST(CertificateAuthority, ARootLoadedFromFilesIssuesWhatTheOriginalVerifies) {
  testing::TempDir dir("rdmesh-ca-test");
  // Another authority, to show that only the loaded root vouches for what it issues.
  auto other = CertificateAuthority::generate("other root");
  ASSERT_TRUE(other.isOk());
  auto root = parsePem((*other)->rootPem());
  // The files: a root and its key as the chart's Secret holds them, made with OpenSSL directly
  // (as helm's genCA or `openssl req -x509` would), since an authority does not export its key.
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
  ASSERT_TRUE(key);
  std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 42);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("files root"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
  X509_set_pubkey(cert.get(), key.get());
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, cert.get(), cert.get(), nullptr, nullptr, 0);
  X509_EXTENSION* bc = X509V3_EXT_conf_nid(nullptr, &v3, NID_basic_constraints, "critical,CA:TRUE");
  X509_add_ext(cert.get(), bc, -1);
  X509_EXTENSION_free(bc);
  X509_EXTENSION* ku =
      X509V3_EXT_conf_nid(nullptr, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
  X509_add_ext(cert.get(), ku, -1);
  X509_EXTENSION_free(ku);
  ASSERT_GT(X509_sign(cert.get(), key.get(), EVP_sha256()), 0);
  std::string cert_path = dir.write("ca.crt", pemOf(cert.get()));
  std::string key_path = dir.write("ca.key", pemOf(key.get()));

  auto loaded = CertificateAuthority::load(cert_path, key_path);
  ASSERT_TRUE(loaded.isOk()) << loaded.status().message();
  EXPECT_EQ((*loaded)->rootPem(), pemOf(cert.get()));
  auto issued = (*loaded)->issueServing({kService}, std::chrono::hours(1));
  ASSERT_TRUE(issued.isOk()) << issued.status().message();
  EXPECT_EQ(verifyAgainst(cert.get(), issued->certificate.get()), "");
  EXPECT_NE(verifyAgainst(root.get(), issued->certificate.get()), "");
  // This root has no subject key id (older roots may not): the issued certificate names its
  // issuer by name and serial instead.
  auto* aki = static_cast<AUTHORITY_KEYID*>(
      X509_get_ext_d2i(issued->certificate.get(), NID_authority_key_identifier, nullptr, nullptr));
  ASSERT_NE(aki, nullptr);
  EXPECT_EQ(aki->keyid, nullptr);
  EXPECT_NE(aki->serial, nullptr);
  AUTHORITY_KEYID_free(aki);

  // A serving certificate with its own key is not a CA: refused, naming the file.
  std::string leaf_path = dir.write("leaf.crt", pemOf(issued->certificate.get()));
  std::string leaf_key_path = dir.write("leaf.key", pemOf(issued->private_key.get()));
  auto not_ca = CertificateAuthority::load(leaf_path, leaf_key_path);
  ASSERT_FALSE(not_ca.isOk());
  EXPECT_THAT(not_ca.status().message(), HasSubstr(leaf_path + ": not a CA certificate"));
  // A key of another certificate.
  auto mismatch = CertificateAuthority::load(cert_path, leaf_key_path);
  ASSERT_FALSE(mismatch.isOk());
  EXPECT_THAT(mismatch.status().message(),
              HasSubstr(leaf_key_path + ": does not belong to the certificate " + cert_path));
  // Missing and garbage files.
  auto missing = CertificateAuthority::load(dir.path() + "/nope.crt", key_path);
  ASSERT_FALSE(missing.isOk());
  EXPECT_THAT(missing.status().message(), HasSubstr(dir.path() + "/nope.crt: cannot read"));
  std::string garbage = dir.write("garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n");
  auto bad_cert = CertificateAuthority::load(garbage, key_path);
  ASSERT_FALSE(bad_cert.isOk());
  EXPECT_THAT(bad_cert.status().message(), HasSubstr(garbage + ": not a PEM certificate"));
  auto bad_key = CertificateAuthority::load(cert_path, garbage);
  ASSERT_FALSE(bad_key.isOk());
  EXPECT_THAT(bad_key.status().message(), HasSubstr(garbage + ": not a PEM private key"));
}

// A TLS handshake between `server_ctx` and a client that trusts `root_pem`, checks the host name
// and offers `client_alpn`; returns the negotiated protocol, or "failed".
std::string handshake(SSL_CTX* server_ctx, const std::string& root_pem,
                      const std::vector<unsigned char>& client_alpn) {
  // A side that gives up closes its end while the other may still write (TLS 1.3 tickets, an
  // alert): an EPIPE, not a signal, as in the servers.
  ::signal(SIGPIPE, SIG_IGN);
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) return "socketpair";
  std::thread server([&] {
    SSL* ssl = SSL_new(server_ctx);
    SSL_set_fd(ssl, fds[1]);
    SSL_accept(ssl);  // the client reports the outcome
    SSL_free(ssl);
    ::close(fds[1]);
  });
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        SSL_CTX_free);
  X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), parsePem(root_pem).get());
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  SSL* ssl = SSL_new(ctx.get());
  SSL_set1_host(ssl, kService);
  if (!client_alpn.empty()) {
    SSL_set_alpn_protos(ssl, client_alpn.data(), static_cast<unsigned>(client_alpn.size()));
  }
  SSL_set_fd(ssl, fds[0]);
  std::string result = "failed";
  if (SSL_connect(ssl) == 1 && SSL_get_verify_result(ssl) == X509_V_OK) {
    const unsigned char* proto = nullptr;
    unsigned len = 0;
    SSL_get0_alpn_selected(ssl, &proto, &len);
    result = len ? std::string(reinterpret_cast<const char*>(proto), len) : "none";
  }
  SSL_free(ssl);
  ::close(fds[0]);
  server.join();
  return result;
}

TEST(ServingCertificate, ServesAVerifiedCertificateAndHonoursTheAlpnPolicy) {
  auto ca = CertificateAuthority::generate("rdmesh test root");
  ASSERT_TRUE(ca.isOk());
  event_base* base = event_base_new();
  auto h2 = makeBareServerTlsContext("h2");
  auto any = makeBareServerTlsContext("");
  ASSERT_TRUE(h2.isOk() && any.isOk());
  {
    ServingCertificate serving(base, **ca, {kService}, std::chrono::hours(1));
    serving.addContext(*h2);
    serving.addContext(*any);
    ASSERT_TRUE(serving.start().isOk());
    EXPECT_EQ(X509_cmp(SSL_CTX_get0_certificate(h2->get()), serving.current().certificate.get()),
              0);
    const std::vector<unsigned char> offer_h2 = {2,   'h', '2', 8,   'h', 't',
                                                 't', 'p', '/', '1', '.', '1'};
    const std::vector<unsigned char> offer_http11 = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    EXPECT_EQ(handshake(h2->get(), (*ca)->rootPem(), offer_h2), "h2");
    // The xDS port requires HTTP/2: a client that cannot speak it is refused in the handshake.
    EXPECT_EQ(handshake(h2->get(), (*ca)->rootPem(), offer_http11), "failed");
    // The webhook's context takes what the client offers (the API server speaks HTTP/1.1).
    EXPECT_EQ(handshake(any->get(), (*ca)->rootPem(), offer_http11), "none");
    // A client trusting another root refuses the server.
    auto stranger = CertificateAuthority::generate("someone else");
    ASSERT_TRUE(stranger.isOk());
    EXPECT_EQ(handshake(any->get(), (*stranger)->rootPem(), {}), "failed");
  }
  auto unknown = makeBareServerTlsContext("spdy/3");
  ASSERT_FALSE(unknown.isOk());
  EXPECT_THAT(unknown.status().message(), HasSubstr("ALPN 'spdy/3' is not supported"));
  event_base_free(base);
}

TEST(ServingCertificate, IsRenewedInItsContextsAtTwoThirdsOfItsLife) {
  auto ca = CertificateAuthority::generate("rdmesh test root");
  ASSERT_TRUE(ca.isOk());
  event_base* base = event_base_new();
  auto context = makeBareServerTlsContext("");
  ASSERT_TRUE(context.isOk());
  {
    ServingCertificate serving(base, **ca, {kService}, std::chrono::seconds(3));
    serving.addContext(*context);
    ASSERT_TRUE(serving.start().isOk());
    std::string first = serving.current().serial_hex;
    std::shared_ptr<X509> first_certificate = serving.current().certificate;
    ASSERT_EQ(X509_cmp(SSL_CTX_get0_certificate(context->get()), first_certificate.get()), 0);
    auto started = Clock::now();
    auto deadline = started + std::chrono::seconds(10);
    while (serving.current().serial_hex == first && Clock::now() < deadline) {
      event_base_loop(base, EVLOOP_ONCE);
    }
    ASSERT_NE(serving.current().serial_hex, first) << "not renewed";
    // Renewed after two thirds of 3 s (the timer has 1 s resolution: 2 s), not before.
    EXPECT_GE(Clock::now() - started, std::chrono::milliseconds(1900));
    EXPECT_EQ(
        X509_cmp(SSL_CTX_get0_certificate(context->get()), serving.current().certificate.get()), 0);
    EXPECT_NE(X509_cmp(SSL_CTX_get0_certificate(context->get()), first_certificate.get()), 0)
        << "the context still serves the first certificate";
    EXPECT_EQ(verifyAgainst(parsePem((*ca)->rootPem()).get(), serving.current().certificate.get()),
              "");
  }
  event_base_free(base);
}

}  // namespace
}  // namespace rdmesh::xds_server
