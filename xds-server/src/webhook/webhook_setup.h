// Command-line wiring of the injection webhook into rdmesh-xds, so main() only adds the flags and
// starts what this builds:
//   --webhook-port 15017          serve POST /inject over HTTPS (off unless given)
//   --injection-config FILE       injection.yaml (the chart's ConfigMap rdmesh-injection)
#pragma once

#include <memory>
#include <string>

#include "sidecar_injector.h"
#include "webhook_server.h"

namespace CLI {
class App;
}

namespace rdmesh::xds_server::webhook {

struct WebhookOptions {
  int port = -1;  // -1: no webhook
  std::string listen_ip = "0.0.0.0";
  std::string injection_config;
};

void addWebhookFlags(CLI::App& app, WebhookOptions& options);

// The injector and its server, alive together.
class Webhook {
 public:
  Webhook(InjectionConfig config, event_base* base, StatsStore& stats,
          WebhookServer::TlsContextSource tls)
      : injector_(std::move(config)), server_(base, injector_, stats, std::move(tls)) {}
  WebhookServer& server() { return server_; }
  const SidecarInjector& injector() const { return injector_; }

 private:
  SidecarInjector injector_;
  WebhookServer server_;
};

// Null (and OK) when the webhook is off. `xds_ca_pem` is what injected sidecars trust for xDS.
Result<std::unique_ptr<Webhook>> startWebhook(const WebhookOptions& options, event_base* base,
                                              StatsStore& stats,
                                              WebhookServer::TlsContextSource tls,
                                              std::string xds_ca_pem);

}  // namespace rdmesh::xds_server::webhook
