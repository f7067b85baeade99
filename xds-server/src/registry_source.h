// A source of truth that feeds the registry: the static YAML file, the Kubernetes API watch.
// (The registration API of rdmesh-cni / rdmesh-node is served by the xDS server itself and
// writes through the same RegistrySink.)
#pragma once

#include <functional>
#include <string>

#include "rdmesh/common/status.h"
#include "registry_store.h"

namespace rdmesh::xds_server {

class RegistrySource {
 public:
  virtual ~RegistrySource() = default;

  // "file /etc/rdmesh/registry.yaml", "kubernetes https://10.96.0.1:443": logs and status.
  virtual std::string describe() const = 0;

  // Starts feeding `sink` (thread-safe; the source may call it from its own thread or event
  // loop). `on_synced` is called once, from any thread, when the initial state (first list) has
  // been applied: the server reports /ready only when every source is synced. A source that
  // re-lists (Kubernetes 410 Gone) computes and applies the deletions of objects it no longer
  // sees itself; it only ever deletes names it put.
  virtual Status start(RegistrySink& sink, std::function<void()> on_synced) = 0;

  // Stops feeding; no calls into `sink` after it returns.
  virtual void stop() = 0;
};

}  // namespace rdmesh::xds_server
