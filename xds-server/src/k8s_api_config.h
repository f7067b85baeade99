// Where and how rdmesh-xds reaches the Kubernetes API server: in a pod, from the service
// account files and KUBERNETES_SERVICE_HOST/PORT; elsewhere (and in tests), from a given URL,
// token file and CA bundle.
#pragma once

#include <string>

#include "http_stream_client.h"
#include "rdmesh/common/status.h"

namespace rdmesh::xds::k8s {

inline constexpr std::string_view kServiceAccountDir =
    "/var/run/secrets/kubernetes.io/serviceaccount";

struct ApiConfig {
  HttpEndpoint endpoint;
  // Re-read on every request: projected service account tokens rotate (about hourly).
  std::string token_file;

  // In-cluster: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, with the token and
  // CA of `service_account_dir`.
  static Result<ApiConfig> inCluster(
      const std::string& service_account_dir = std::string(kServiceAccountDir));
  // url: "https://host:port" (or "http://..." for a local proxy such as `kubectl proxy`);
  // token_file and ca_file may be empty.
  static Result<ApiConfig> fromUrl(const std::string& url, const std::string& token_file,
                                   const std::string& ca_file);

  // "Bearer <token>", or "" without a token file. An unreadable or empty file is an error.
  Result<std::string> authorization() const;
};

}  // namespace rdmesh::xds::k8s
