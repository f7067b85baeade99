// Load balancers pick one endpoint of a cluster for each new downstream connection.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "config.h"

namespace rdmesh::proxy {

// Per-worker instance: no locks. Active-request counts are per worker (as Envoy's are).
class LoadBalancer {
 public:
  virtual ~LoadBalancer() = default;
  // Index into the cluster's endpoints, or -1 if there are none. `exclude` (or -1) is an endpoint
  // to avoid if another exists (used when retrying after a failed connect).
  virtual int pick(int exclude = -1) = 0;
  // Connection lifecycle, so least_request can count active requests per endpoint.
  virtual void onStart(int endpoint) = 0;
  virtual void onFinish(int endpoint) = 0;
};

std::unique_ptr<LoadBalancer> makeLoadBalancer(LbPolicy policy, size_t endpoint_count,
                                               unsigned seed);

}  // namespace rdmesh::proxy
