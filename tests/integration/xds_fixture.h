// rdmesh-xds as a real process for integration tests: registry and token files in a temp dir,
// optional TLS material made with the openssl CLI, ports read from the server's log (it binds
// port 0), readiness polled over HTTP/2.
#pragma once

#include <event2/event.h>
#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "h2_test_client.h"
#include "harness.h"

namespace rdmesh::it {

inline constexpr const char* kXdsToken = "test-token-0123456789abcdef";

inline constexpr const char* kXdsRegistry = R"(nodes:
  - {name: node-a, addresses: [10.77.1.1], fabric: tcp, session_address: "10.77.1.1:15008"}
  - {name: node-b, addresses: [10.77.1.2], fabric: tcp, session_address: "10.77.1.2:15008"}
workloads:
  - {namespace: shop, pod: web-0, ip: [10.78.0.10], node: node-a, service_account: web, ports: [8080], labels: {app: web}}
  - {namespace: shop, pod: cart-0, ip: [10.78.1.10], node: node-b, service_account: cart, ports: [9090], labels: {app: cart}}
services:
  - {name: shop/cart, cluster_ips: [10.96.0.20], ports: [{port: 80, target_port: 9090}], selector: {app: cart}}
)";

// xdsBinary() (harness.h) is the path of rdmesh-xds.
// A CA and a server certificate for "localhost" / 127.0.0.1 (EC P-256, one day), made with the
// openssl CLI exactly as README's TLS section shows. Files: ca.pem, server.pem, server.key.
void makeTestCertificates(const TempDir& dir);

// Registration body (Workload JSON) of pod `pod` of the "cart" service in namespace "shop" on
// node-b, the registry the xDS tests share.
std::string cartWorkload(const std::string& pod, const std::string& ip);
// The registration API's authorization header with kXdsToken.
std::vector<std::pair<std::string, std::string>> bearer();

class XdsProcess {
 public:
  struct Options {
    bool tls = false;
    bool plaintext = true;
    std::vector<std::string> extra_args;
  };
  XdsProcess(const TempDir& dir, Options options);
  explicit XdsProcess(const TempDir& dir);

  Process& process() { return *process_; }
  uint16_t plaintextPort() const { return plaintext_port_; }
  uint16_t tlsPort() const { return tls_port_; }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(plaintext_port_) + path;
  }
  InetAddress address() const;

 private:
  std::unique_ptr<Process> process_;
  uint16_t plaintext_port_ = 0;
  uint16_t tls_port_ = 0;
};

// One request over HTTP/2 (h2c) with the test client: status and body.
struct H2Reply {
  int status = 0;
  std::string body;
};
H2Reply h2Request(const InetAddress& server, const std::string& method, const std::string& path,
                  const std::string& body = {},
                  std::vector<std::pair<std::string, std::string>> headers = {});

inline std::string sidecarNodeJson(const std::string& pod = "web-0") {
  return R"({"id":")" + pod + R"(.shop","role":"sidecar","node_name":"node-a","workload":"shop/)" +
         pod + R"(","namespace":"shop"})";
}

}  // namespace rdmesh::it
