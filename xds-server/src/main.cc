// rdmesh-xds: the rdmesh control plane. Loads the registry (static file, registrations, later
// Kubernetes and etcd), serves xDS over HTTP/2 (TLS on 15012, plaintext h2c only when asked),
// the registration API and status endpoints; SIGTERM drains.
#include <event2/event.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <fstream>
#include <memory>
#include <string>

#include "certificate_authority.h"
#include "h2_listener.h"
#include "ha_sources.h"
#include "memory_store.h"
#include "rdmesh/common/address.h"
#include "rdmesh/common/stats.h"
#include "rdmesh/common/timeval.h"
#include "rdmesh/xds/wire.h"
#include "registry.h"
#include "registry_file.h"
#include "spdlog/spdlog.h"
#include "webhook_setup.h"
#include "xds_server.h"

namespace {

using namespace rdmesh;
using namespace rdmesh::xds_server;

struct Options {
  std::string listen_ip = "0.0.0.0";
  uint16_t tls_port = xds::kTlsPort;
  int plaintext_port = -1;  // -1 = off
  TlsFiles tls;
  std::string registry_file;
  std::string registration_token_file;
  uint32_t push_delay_ms = 100;
  uint32_t drain_timeout_ms = 5000;
  std::string log_level = "info";
  HaSourcesOptions sources;  // --etcd-*, --kubernetes*, --trust-domain
  // The CA (docs/certificates.md) and the names of this server's serving certificate.
  std::string ca_cert;
  std::string ca_key;
  std::vector<std::string> service_dns;
  uint32_t cert_validity_s = 86400;
  webhook::WebhookOptions webhook;
};

Result<std::string> readToken(const std::string& path) {
  std::ifstream file(path);
  if (!file) return invalidArgument(path + ": cannot read the registration token file");
  std::string token;
  std::getline(file, token);
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
  if (token.size() < 16) {
    return invalidArgument(path + ": token must be at least 16 characters on the first line");
  }
  return token;
}

// Drain: stop accepting, end every stream, exit once connections are gone or time runs out.
struct Drain {
  event_base* base = nullptr;
  XdsServer* server = nullptr;
  std::vector<H2Listener*> listeners;
  std::chrono::milliseconds timeout{0};
  Clock::time_point deadline;
  event* poll = nullptr;
  bool started = false;

  static void onSignal(int, short, void* arg) { static_cast<Drain*>(arg)->start(); }
  static void onPoll(int, short, void* arg) { static_cast<Drain*>(arg)->check(); }

  void start() {
    if (started) return;
    started = true;
    deadline = Clock::now() + timeout;
    spdlog::info("rdmesh-xds: draining ({} clients)", server->clientCount());
    server->drain();
    for (H2Listener* listener : listeners) {
      listener->stopAccepting();
      listener->goAwayAll();
    }
    check();
  }
  void check() {
    size_t open = 0;
    for (H2Listener* listener : listeners) open += listener->connectionCount();
    if (open == 0 || Clock::now() >= deadline) {
      if (open > 0) spdlog::warn("rdmesh-xds: drain timeout with {} connections open", open);
      event_base_loopexit(base, nullptr);
      return;
    }
    timeval interval = toTimeval(std::chrono::milliseconds(20));
    evtimer_add(poll, &interval);
  }
};

int run(const Options& options) {
  auto level = spdlog::level::from_str(options.log_level);
  spdlog::set_level(level);
  signal(SIGPIPE, SIG_IGN);

  if (options.tls.cert_chain.empty() != options.tls.private_key.empty()) {
    spdlog::error("rdmesh-xds: --tls-cert and --tls-key go together");
    return 2;
  }
  if (options.ca_cert.empty() != options.ca_key.empty()) {
    spdlog::error("rdmesh-xds: --ca-cert and --ca-key go together");
    return 2;
  }
  // With --service-dns (and no --tls-cert) the TLS port serves a certificate from the CA.
  const bool tls_from_ca = options.tls.cert_chain.empty() && !options.service_dns.empty();
  const bool serve_tls = !options.tls.cert_chain.empty() || tls_from_ca;
  if (options.webhook.port >= 0 && options.service_dns.empty()) {
    spdlog::error(
        "rdmesh-xds: --webhook-port needs --service-dns (the names its certificate carries)");
    return 2;
  }
  if (!serve_tls && options.plaintext_port < 0) {
    spdlog::error(
        "rdmesh-xds: nothing to serve: give --tls-cert/--tls-key or --service-dns (port {}) "
        "and/or --plaintext-port",
        options.tls_port);
    return 2;
  }
  XdsServerOptions server_options;
  server_options.push_delay = std::chrono::milliseconds(options.push_delay_ms);
  if (!options.registration_token_file.empty()) {
    Result<std::string> token = readToken(options.registration_token_file);
    if (!token.isOk()) {
      spdlog::error("rdmesh-xds: {}", token.status().message());
      return 2;
    }
    server_options.registration_token = *token;
  }

  std::unique_ptr<event_base, decltype(&event_base_free)> base(event_base_new(), event_base_free);
  StatsStore stats;
  Result<RegistrySetup> setup = makeRegistrySetup(options.sources);
  if (!setup.isOk()) {
    spdlog::error("rdmesh-xds: {}", setup.status().message());
    return 2;
  }
  Registry registry(base.get(), std::move(setup->store));
  if (setup->kubernetes) registry.addSource(std::move(setup->kubernetes));
  if (!options.registry_file.empty()) {
    registry.addSource(std::make_unique<RegistryFileSource>(options.registry_file));
  }
  if (Status status = registry.start(); !status.isOk()) {
    spdlog::error("rdmesh-xds: {}", status.message());
    return 1;
  }
  XdsServer server(base.get(), registry, stats, server_options);
  server.start();

  std::vector<std::unique_ptr<H2Listener>> listeners;
  auto listen = [&](uint16_t port, std::shared_ptr<ssl_ctx_st> tls) -> bool {
    Result<InetAddress> address = InetAddress::fromIp(options.listen_ip, port);
    if (!address.isOk()) {
      spdlog::error("rdmesh-xds: --listen-ip: {}", address.status().message());
      return false;
    }
    auto listener = std::make_unique<H2Listener>(base.get(), server, std::move(tls));
    if (Status status = listener->listen(*address); !status.isOk()) {
      spdlog::error("rdmesh-xds: {}", status.message());
      return false;
    }
    address->setPort(listener->boundPort());
    spdlog::info("rdmesh-xds: listening on {} ({})", address->toString(),
                 listener->tls() ? "TLS, ALPN h2" : "plaintext h2c");
    listeners.push_back(std::move(listener));
    return true;
  };
  // The CA and the serving certificate it keeps renewed (xDS TLS port and webhook).
  std::unique_ptr<CertificateAuthority> ca;
  std::unique_ptr<ServingCertificate> serving;
  if (!options.service_dns.empty()) {
    Result<std::unique_ptr<CertificateAuthority>> made =
        options.ca_cert.empty() ? CertificateAuthority::generate("rdmesh-xds root CA")
                                : CertificateAuthority::load(options.ca_cert, options.ca_key);
    if (!made) {
      spdlog::error("rdmesh-xds: CA: {}", made.status().message());
      return 2;
    }
    ca = std::move(*made);
    if (options.ca_cert.empty()) {
      spdlog::warn(
          "rdmesh-xds: no --ca-cert/--ca-key: generated a CA root for this process only "
          "(single replica; clients must trust it anew after a restart)");
    }
    serving = std::make_unique<ServingCertificate>(base.get(), *ca, options.service_dns,
                                                   std::chrono::seconds(options.cert_validity_s));
  }
  if (serve_tls) {
    Result<std::shared_ptr<ssl_ctx_st>> context =
        tls_from_ca ? makeBareServerTlsContext("h2") : makeServerTlsContext(options.tls);
    if (!context.isOk()) {
      spdlog::error("rdmesh-xds: {}", context.status().message());
      return 2;
    }
    if (tls_from_ca) serving->addContext(*context);
    if (!listen(options.tls_port, *context)) return 1;
  }
  std::shared_ptr<ssl_ctx_st> webhook_tls;
  if (options.webhook.port >= 0) {
    Result<std::shared_ptr<ssl_ctx_st>> context = makeBareServerTlsContext("");
    if (!context) {
      spdlog::error("rdmesh-xds: webhook: {}", context.status().message());
      return 2;
    }
    webhook_tls = *context;
    serving->addContext(webhook_tls);
  }
  if (serving) {
    if (Status s = serving->start(); !s) {
      spdlog::error("rdmesh-xds: serving certificate: {}", s.message());
      return 2;
    }
  }
  Result<std::unique_ptr<webhook::Webhook>> injection = webhook::startWebhook(
      options.webhook, base.get(), stats,
      webhook_tls ? webhook::WebhookServer::TlsContextSource([webhook_tls] { return webhook_tls; })
                  : webhook::WebhookServer::TlsContextSource(),
      ca ? ca->rootPem() : std::string());
  if (!injection) {
    spdlog::error("rdmesh-xds: webhook: {}", injection.status().message());
    return 2;
  }
  if (options.plaintext_port >= 0 &&
      !listen(static_cast<uint16_t>(options.plaintext_port), nullptr)) {
    return 1;
  }
  spdlog::info("rdmesh-xds: registry revision {} ({}), registration API {}",
               registry.snapshot()->revision, registry.describe(),
               server_options.registration_token.empty() ? "disabled" : "enabled");

  Drain drain;
  drain.base = base.get();
  drain.server = &server;
  for (auto& listener : listeners) drain.listeners.push_back(listener.get());
  drain.poll = evtimer_new(base.get(), &Drain::onPoll, &drain);
  event* sigterm = evsignal_new(base.get(), SIGTERM, &Drain::onSignal, &drain);
  event* sigint = evsignal_new(base.get(), SIGINT, &Drain::onSignal, &drain);
  evsignal_add(sigterm, nullptr);
  evsignal_add(sigint, nullptr);
  drain.timeout = std::chrono::milliseconds(options.drain_timeout_ms);

  event_base_dispatch(base.get());

  event_free(sigterm);
  event_free(sigint);
  event_free(drain.poll);
  listeners.clear();
  registry.stop();
  spdlog::info("rdmesh-xds: stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  CLI::App app{"rdmesh-xds: the rdmesh control plane (xDS over HTTP/2)"};
  app.add_option("--listen-ip", options.listen_ip, "IP to listen on")->capture_default_str();
  app.add_option("--port", options.tls_port, "TLS xDS port (ALPN h2)")->capture_default_str();
  app.add_option("--plaintext-port", options.plaintext_port,
                 "also serve plaintext h2c (prior knowledge) on this port (15010; 0 = any free "
                 "port); off unless given")
      ->check(CLI::Range(0, 65535));
  app.add_option("--tls-cert", options.tls.cert_chain, "PEM certificate chain of the server")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", options.tls.private_key, "PEM private key of the server")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-client-ca", options.tls.client_ca,
                 "PEM CA bundle; when given, clients must present a certificate it signed")
      ->check(CLI::ExistingFile);
  app.add_option("--registry-file", options.registry_file, "static YAML registry (docs/xds.md)")
      ->check(CLI::ExistingFile);
  app.add_option("--registration-token-file", options.registration_token_file,
                 "file whose first line is the bearer token of the registration API (enables it)");
  app.add_option("--push-delay-ms", options.push_delay_ms,
                 "coalesce registry changes for this long before pushing")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  app.add_option("--drain-timeout-ms", options.drain_timeout_ms,
                 "on SIGTERM, wait this long for clients to leave")
      ->capture_default_str();
  app.add_option("--log-level", options.log_level, "trace|debug|info|warn|error")
      ->capture_default_str();
  addHaSourcesFlags(app, options.sources);
  app.add_option("--ca-cert", options.ca_cert,
                 "PEM CA root certificate that issues the serving certificates (the chart's "
                 "Secret rdmesh-ca); generated at start when not given")
      ->check(CLI::ExistingFile);
  app.add_option("--ca-key", options.ca_key, "PEM private key of --ca-cert")
      ->check(CLI::ExistingFile);
  app.add_option("--service-dns", options.service_dns,
                 "names (DNS or IP) of this server's certificate, issued by the CA; serves the "
                 "TLS port with it when --tls-cert is not given (repeatable or comma-separated)")
      ->delimiter(',');
  app.add_option("--cert-validity-s", options.cert_validity_s,
                 "lifetime of the serving certificate; renewed at two thirds of it")
      ->capture_default_str()
      ->check(CLI::Range(3, 366 * 86400));
  webhook::addWebhookFlags(app, options.webhook);
  CLI11_PARSE(app, argc, argv);
  return run(options);
}
