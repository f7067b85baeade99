// Decides whether a pod gets the rdmesh sidecar and builds the JSONPatch that adds it
// (docs/injection.md). Pure: no I/O, so every rule is unit-tested and fuzzed.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "admission_review.h"
#include "injection_config.h"

namespace rdmesh::xds_server::webhook {

// The names a pod carries (ARCHITECTURE.md "Names and numbers").
inline constexpr std::string_view kSidecarContainerName = "rdmesh-proxy";
inline constexpr std::string_view kNodeSocketVolumeName = "rdmesh-node-socket";
inline constexpr std::string_view kNodeSocketDir = "/var/run/rdmesh";
inline constexpr std::string_view kInjectAnnotation = "rdmesh.io/inject";
inline constexpr std::string_view kExcludePortsAnnotation = "rdmesh.io/exclude-outbound-ports";
inline constexpr std::string_view kInjectedVersionAnnotation = "rdmesh.io/injected-version";
inline constexpr int kSidecarUid = 1337;
inline constexpr int kSidecarAdminPort = 15000;
// The kubelet probes the pod IP, and the admin endpoint listens on loopback only: /ready is
// also served, alone, on this port (the proxy's admin.probe_address).
inline constexpr int kSidecarProbePort = 15021;

struct InjectionDecision {
  bool inject = false;
  // Why not (or "" when injected): shown as a warning and counted.
  std::string reason;
  // Set when `inject`: RFC 6902 operations against request.object.
  nlohmann::json patch;
  std::vector<std::string> warnings;
};

class SidecarInjector {
 public:
  explicit SidecarInjector(InjectionConfig config) : config_(std::move(config)) {}

  InjectionDecision decide(const AdmissionRequest& request) const;
  const InjectionConfig& config() const { return config_; }

  // The sidecar's bootstrap (rdmesh-proxy's YAML; written as JSON, which YAML reads) for a pod
  // of `namespace_name` running as `service_account`.
  std::string sidecarBootstrap(std::string_view namespace_name,
                               std::string_view service_account) const;

 private:
  nlohmann::json sidecarContainer(const AdmissionRequest& request, std::string_view service_account,
                                  const std::vector<uint16_t>& excluded_ports) const;

  InjectionConfig config_;
};

}  // namespace rdmesh::xds_server::webhook
