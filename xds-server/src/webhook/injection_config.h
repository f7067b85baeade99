// What the injection webhook puts into a pod: the sidecar's image, resources and bootstrap
// values. Read from injection.yaml (the chart's ConfigMap rdmesh-injection, docs/injection.md).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "rdmesh/common/status.h"

namespace rdmesh::xds_server::webhook {

struct InjectionConfig {
  std::string image;  // required: <registry>/rdmesh-proxy:<tag>
  std::string image_pull_policy = "IfNotPresent";
  // rdmesh-xds as sidecars reach it ("host:port", the Service's TLS port).
  std::string xds_address;
  // TLS name the xDS server certificate carries; default: the host of xds_address.
  std::string xds_server_name;
  std::string trust_domain = "cluster.local";
  std::string log_level = "info";
  // preStop keeps the sidecar serving this long while the app shuts down.
  int drain_seconds = 5;
  // {"requests": {...}, "limits": {...}} with Kubernetes quantity strings.
  nlohmann::json resources = nlohmann::json::object();
  // Filled in at run time, not from the file: the CA the xDS certificate chains to (PEM), and
  // the version recorded in the pod's annotation.
  std::string xds_ca_pem;
  std::string version;
};

// Parses injection.yaml text; errors name the file, line and key.
Result<InjectionConfig> parseInjectionConfig(std::string_view yaml_text, std::string_view source);
Result<InjectionConfig> loadInjectionConfig(const std::string& path);

}  // namespace rdmesh::xds_server::webhook
