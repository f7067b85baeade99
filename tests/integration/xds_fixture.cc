#include "xds_fixture.h"

#include <regex>

namespace rdmesh::it {

std::string cartWorkload(const std::string& pod, const std::string& ip) {
  return nlohmann::json({{"name", "shop/" + pod},
                         {"namespace", "shop"},
                         {"pod", pod},
                         {"ip", {ip}},
                         {"node", "node-b"},
                         {"identity", "spiffe://cluster.local/ns/shop/sa/cart"},
                         {"service_account", "cart"},
                         {"ports", {9090}},
                         {"labels", {{"app", "cart"}}}})
      .dump();
}

std::vector<std::pair<std::string, std::string>> bearer() {
  return {{"authorization", std::string("Bearer ") + kXdsToken}};
}

void makeTestCertificates(const TempDir& dir) {
  writeFile(dir.file("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  const std::vector<std::vector<std::string>> commands = {
      {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
       "-nodes", "-keyout", dir.file("ca.key"), "-out", dir.file("ca.pem"), "-days", "1", "-subj",
       "/CN=rdmesh test CA"},
      {"openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
       "-keyout", dir.file("server.key"), "-out", dir.file("server.csr"), "-subj",
       "/CN=rdmesh-xds"},
      {"openssl", "x509", "-req", "-in", dir.file("server.csr"), "-CA", dir.file("ca.pem"),
       "-CAkey", dir.file("ca.key"), "-CAcreateserial", "-out", dir.file("server.pem"), "-days",
       "1", "-extfile", dir.file("san.ext")},
  };
  for (const auto& argv : commands) {
    CommandResult result = runCommand(argv, dir.file("openssl.log"));
    ASSERT_TRUE(result.ok()) << result.describe();
  }
}

XdsProcess::XdsProcess(const TempDir& dir) : XdsProcess(dir, Options()) {}

XdsProcess::XdsProcess(const TempDir& dir, Options options) {
  writeFile(dir.file("registry.yaml"), kXdsRegistry);
  writeFile(dir.file("token"), std::string(kXdsToken) + "\n");
  std::vector<std::string> argv = {xdsBinary(),
                                   "--listen-ip",
                                   "127.0.0.1",
                                   "--registry-file",
                                   dir.file("registry.yaml"),
                                   "--registration-token-file",
                                   dir.file("token"),
                                   "--push-delay-ms",
                                   "20",
                                   "--log-level",
                                   "debug"};
  if (options.plaintext) {
    argv.insert(argv.end(), {"--plaintext-port", "0"});
  }
  if (options.tls) {
    makeTestCertificates(dir);
    argv.insert(argv.end(), {"--port", "0", "--tls-cert", dir.file("server.pem"), "--tls-key",
                             dir.file("server.key")});
  }
  argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());
  process_ = std::make_unique<Process>("rdmesh-xds", argv, dir.file("xds.log"));
  // The server logs "listening on 127.0.0.1:<port> (plaintext h2c|TLS, ALPN h2)" per listener.
  const std::regex listening(R"(listening on 127\.0\.0\.1:(\d+) \((plaintext|TLS))");
  bool up = waitFor(
      [&] {
        std::string log = process_->output();
        for (auto it = std::sregex_iterator(log.begin(), log.end(), listening);
             it != std::sregex_iterator(); ++it) {
          uint16_t port = static_cast<uint16_t>(std::stoi((*it)[1]));
          ((*it)[2] == "TLS" ? tls_port_ : plaintext_port_) = port;
        }
        return (!options.plaintext || plaintext_port_ != 0) && (!options.tls || tls_port_ != 0);
      },
      10s);
  if (!up) {
    ADD_FAILURE() << "rdmesh-xds did not start:\n" << process_->output();
    return;
  }
  if (options.plaintext) {
    bool ready = waitFor([&] { return h2Request(address(), "GET", "/ready").status == 200; }, 10s);
    EXPECT_TRUE(ready) << process_->output();
  }
}

InetAddress XdsProcess::address() const {
  return *InetAddress::fromIp("127.0.0.1", plaintext_port_);
}

H2Reply h2Request(const InetAddress& server, const std::string& method, const std::string& path,
                  const std::string& body,
                  std::vector<std::pair<std::string, std::string>> headers) {
  std::unique_ptr<event_base, decltype(&event_base_free)> base(event_base_new(), event_base_free);
  xds_test::H2TestClient client(base.get(), server,
                                {.method = method, .path = path, .headers = std::move(headers)});
  if (!client.start().isOk()) return {};
  client.write(body);
  client.endRequest();
  xds_test::runUntil(
      base.get(), [&] { return client.streamClosed() || client.connectionClosed(); }, 5s);
  return {client.responseStatus(), client.responseBody()};
}

}  // namespace rdmesh::it
