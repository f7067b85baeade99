#include "https_test_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string_view>

namespace rdmesh::it {
namespace {

std::string opensslErrors() {
  std::string text;
  while (unsigned long code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    text += (text.empty() ? "" : "; ") + std::string(buffer);
  }
  return text.empty() ? "no OpenSSL error queued" : text;
}

}  // namespace

Result<std::unique_ptr<HttpsTestClient>> HttpsTestClient::connect(uint16_t port,
                                                                  const std::string& ca_file,
                                                                  const std::string& host_name) {
  std::unique_ptr<HttpsTestClient> client(new HttpsTestClient());
  client->host_ = host_name;
  client->fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (client->fd_ < 0 ||
      ::connect(client->fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    return unavailable(std::string("connect: ") + std::strerror(errno));
  }
  client->ctx_ = SSL_CTX_new(TLS_client_method());
  if (client->ctx_ == nullptr ||
      SSL_CTX_load_verify_locations(client->ctx_, ca_file.c_str(), nullptr) != 1) {
    return internalError("TLS context: " + opensslErrors());
  }
  SSL_CTX_set_verify(client->ctx_, SSL_VERIFY_PEER, nullptr);
  client->ssl_ = SSL_new(client->ctx_);
  SSL_set_fd(client->ssl_, client->fd_);
  SSL_set_tlsext_host_name(client->ssl_, host_name.c_str());
  SSL_set1_host(client->ssl_, host_name.c_str());  // the certificate must name this host
  static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_set_alpn_protos(client->ssl_, kHttp11, sizeof kHttp11);
  if (SSL_connect(client->ssl_) != 1) return unavailable("TLS handshake: " + opensslErrors());
  return client;
}

HttpsTestClient::~HttpsTestClient() {
  if (ssl_ != nullptr) SSL_free(ssl_);
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
  if (fd_ >= 0) ::close(fd_);
}

std::string HttpsTestClient::peerCertificateSerial() const {
  X509* cert = SSL_get1_peer_certificate(ssl_);
  if (cert == nullptr) return "";
  BIGNUM* serial = ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), nullptr);
  char* hex = BN_bn2hex(serial);
  std::string text = hex;
  OPENSSL_free(hex);
  BN_free(serial);
  X509_free(cert);
  return text;
}

Result<std::string> HttpsTestClient::readUntil(const std::string& terminator) {
  while (true) {
    if (size_t at = buffered_.find(terminator); at != std::string::npos) {
      std::string head = buffered_.substr(0, at);
      buffered_.erase(0, at + terminator.size());
      return head;
    }
    char chunk[16384];
    const int n = SSL_read(ssl_, chunk, sizeof chunk);
    if (n <= 0) return unavailable("connection closed before the reply: " + opensslErrors());
    buffered_.append(chunk, static_cast<size_t>(n));
  }
}

Status HttpsTestClient::readExactly(size_t bytes, std::string* out) {
  while (buffered_.size() < bytes) {
    char chunk[16384];
    const int n = SSL_read(ssl_, chunk, sizeof chunk);
    if (n <= 0) return unavailable("connection closed inside the body: " + opensslErrors());
    buffered_.append(chunk, static_cast<size_t>(n));
  }
  *out = buffered_.substr(0, bytes);
  buffered_.erase(0, bytes);
  return Status::ok();
}

Result<HttpsReply> HttpsTestClient::post(const std::string& path, const std::string& body,
                                         const std::string& content_type) {
  const std::string request =
      "POST " + path + " HTTP/1.1\r\nHost: " + host_ + "\r\nContent-Type: " + content_type +
      "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  size_t sent = 0;
  while (sent < request.size()) {
    const int n = SSL_write(ssl_, request.data() + sent, static_cast<int>(request.size() - sent));
    if (n <= 0) return unavailable("write: " + opensslErrors());
    sent += static_cast<size_t>(n);
  }
  Result<std::string> head = readUntil("\r\n\r\n");
  if (!head) return head.status();
  HttpsReply reply;
  if (std::sscanf(head->c_str(), "HTTP/1.1 %d", &reply.status) != 1) {
    return protocolError("not an HTTP/1.1 status line: " + head->substr(0, 80));
  }
  size_t length = 0;
  std::string lower = *head;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (size_t at = lower.find("content-length:"); at != std::string::npos) {
    length = std::stoul(lower.substr(at + std::strlen("content-length:")));
  }
  if (Status s = readExactly(length, &reply.body); !s) return s;
  return reply;
}

}  // namespace rdmesh::it
