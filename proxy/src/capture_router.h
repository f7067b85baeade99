// Routes a captured connection by its original destination: a cluster's service address -> that
// cluster (load balanced), an endpoint address -> that very endpoint, anything else -> unknown.
#pragma once

#include <cstddef>
#include <string>
#include <unordered_map>
#include <vector>

#include "config.h"

namespace rdmesh::proxy {

struct CaptureRoute {
  enum Kind { kService, kEndpoint, kUnknown };
  Kind kind = kUnknown;
  size_t cluster = 0;  // index into the config's clusters
  int endpoint = -1;   // kEndpoint: index into that cluster's endpoints
};

class CaptureRouter {
 public:
  explicit CaptureRouter(const std::vector<ClusterConfig>& clusters);
  CaptureRoute route(const InetAddress& destination) const;

 private:
  static std::string key(const InetAddress& address);
  std::unordered_map<std::string, CaptureRoute> routes_;
};

}  // namespace rdmesh::proxy
