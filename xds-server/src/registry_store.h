// Where the registry lives: nodes, workloads and services behind one small interface, so the
// in-memory store (one replica) and the etcd store (several replicas sharing state) are
// interchangeable. Everything derived (listeners, clusters, versions) is computed from a snapshot
// and never stored.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "rdmesh/common/status.h"
#include "rdmesh/xds/resources.h"

namespace rdmesh::xds_server {

// The registry at one revision. Immutable once published: readers share it without locks.
struct RegistrySnapshot {
  uint64_t revision = 0;                           // 0 = empty registry, nothing applied yet
  std::map<std::string, xds::Node> nodes;          // by Node.name
  std::map<std::string, xds::Workload> workloads;  // by Workload.name ("<ns>/<pod>")
  std::map<std::string, xds::Service> services;    // by Service.name ("<ns>/<svc>")
};
using SnapshotPtr = std::shared_ptr<const RegistrySnapshot>;

// A batch of upserts and deletions, applied atomically as one revision. Objects are already
// valid (parsed by the xds-api codec); puts replace by name; deleting an absent name is a no-op.
struct RegistryChange {
  std::vector<xds::Node> put_nodes;
  std::vector<std::string> delete_nodes;
  std::vector<xds::Workload> put_workloads;
  std::vector<std::string> delete_workloads;
  std::vector<xds::Service> put_services;
  std::vector<std::string> delete_services;

  bool empty() const {
    return put_nodes.empty() && delete_nodes.empty() && put_workloads.empty() &&
           delete_workloads.empty() && put_services.empty() && delete_services.empty();
  }
};

// Anything that accepts changes: the store itself, or the Registry in front of it.
class RegistrySink {
 public:
  virtual ~RegistrySink() = default;
  // Thread-safe. Returns the revision that contains the change. A change that alters nothing
  // (puts equal to what is stored, deletes of absent names) returns the current revision and
  // publishes nothing, so sources may re-send their whole state freely (re-list, restart).
  virtual Result<uint64_t> apply(const RegistryChange& change) = 0;
};

class RegistryStore : public RegistrySink {
 public:
  using OnChange = std::function<void(SnapshotPtr)>;

  // Thread-safe; the latest published snapshot (never null; revision 0 when empty).
  virtual SnapshotPtr snapshot() const = 0;

  // Registers the one listener told about every new snapshot, in revision order, including
  // revisions committed by other replicas (etcd). It may run on any thread (the store's own),
  // must be cheap (the Registry only hands it to its event loop), and is not called after the
  // store is destroyed. Set once, before start().
  virtual void setOnChange(OnChange on_change) = 0;

  // Connects / loads the initial state; the first snapshot is published before it returns OK.
  virtual Status start() = 0;
  // Stops background work (watch threads); no callbacks after it returns.
  virtual void stop() = 0;

  // For status pages and logs: "memory", "etcd http://127.0.0.1:2379".
  virtual std::string describe() const = 0;
};

// Applies `change` to `contents` (the shared semantics of every store). Returns whether
// anything changed.
bool applyChange(const RegistryChange& change, RegistrySnapshot& contents);

}  // namespace rdmesh::xds_server
