// A blocking HTTPS/1.1 client for tests (OpenSSL): verifies the server certificate against a CA
// file and a host name, keeps the connection alive across requests, reads Content-Length bodies.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "rdmesh/common/status.h"

struct ssl_ctx_st;
struct ssl_st;

namespace rdmesh::it {

struct HttpsReply {
  int status = 0;
  std::string body;
};

class HttpsTestClient {
 public:
  // Connects to 127.0.0.1:port, expecting a certificate for `host_name` signed by `ca_file`.
  static Result<std::unique_ptr<HttpsTestClient>> connect(uint16_t port, const std::string& ca_file,
                                                          const std::string& host_name);
  ~HttpsTestClient();
  HttpsTestClient(const HttpsTestClient&) = delete;
  HttpsTestClient& operator=(const HttpsTestClient&) = delete;

  Result<HttpsReply> post(const std::string& path, const std::string& body,
                          const std::string& content_type = "application/json");
  // The server certificate's notBefore/serial, as text (to tell a rotated certificate apart).
  std::string peerCertificateSerial() const;

 private:
  HttpsTestClient() = default;
  Result<std::string> readUntil(const std::string& terminator);
  Status readExactly(size_t bytes, std::string* out);

  int fd_ = -1;
  ssl_ctx_st* ctx_ = nullptr;
  ssl_st* ssl_ = nullptr;
  std::string host_;
  std::string buffered_;
};

}  // namespace rdmesh::it
