#include "webhook_setup.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>

namespace rdmesh::xds_server::webhook {

void addWebhookFlags(CLI::App& app, WebhookOptions& options) {
  app.add_option("--webhook-port", options.port,
                 fmt::format("serve the sidecar injection webhook (HTTPS, POST {}) on this port "
                             "({}; 0 = any free port); off unless given",
                             kInjectPath, kWebhookPort))
      ->check(CLI::Range(0, 65535));
  app.add_option("--webhook-listen-ip", options.listen_ip, "IP the webhook listens on")
      ->capture_default_str();
  app.add_option("--injection-config", options.injection_config,
                 "injection.yaml: the sidecar's image, resources and xDS address "
                 "(docs/injection.md); needed with --webhook-port")
      ->check(CLI::ExistingFile);
}

Result<std::unique_ptr<Webhook>> startWebhook(const WebhookOptions& options, event_base* base,
                                              StatsStore& stats,
                                              WebhookServer::TlsContextSource tls,
                                              std::string xds_ca_pem) {
  if (options.port < 0) return std::unique_ptr<Webhook>();
  if (options.injection_config.empty()) {
    return invalidArgument("--webhook-port needs --injection-config (what to inject)");
  }
  if (!tls)
    return invalidArgument(
        "--webhook-port needs a TLS certificate (the API server only speaks HTTPS)");
  Result<InjectionConfig> config = loadInjectionConfig(options.injection_config);
  if (!config) return config.status();
  config->version = RDMESH_VERSION;
  config->xds_ca_pem = std::move(xds_ca_pem);
  auto webhook = std::make_unique<Webhook>(std::move(*config), base, stats, std::move(tls));
  Result<InetAddress> address =
      InetAddress::fromIp(options.listen_ip, static_cast<uint16_t>(options.port));
  if (!address)
    return invalidArgument(fmt::format("--webhook-listen-ip: {}", address.status().message()));
  if (Status s = webhook->server().listen(*address); !s) return s;
  return webhook;
}

}  // namespace rdmesh::xds_server::webhook
