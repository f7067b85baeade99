// The registry store shared by several rdmesh-xds replicas through etcd (RegistryStore backed
// by EtcdRegistryStore; layout and semantics there).
//
// It runs its own thread and event loop for the etcd traffic. apply() turns a RegistryChange
// into one etcd transaction (puts equal to what is stored and deletes of absent names are left
// out; a change of more than 100 operations takes several transactions), waits for etcd to
// commit it, then for this replica's watch to have applied it, so a caller reads its own write.
// Snapshots carry the etcd revision: every replica publishes the same revision for the same
// contents. Entries that fail the xds-api codec are logged, counted and left out.
//
// It also hosts the leader election for the Kubernetes writer (kubernetesSink()): only the
// leader's Kubernetes source writes, with a fence, and a new leader reconciles etcd with its
// view (deleting what a former leader wrote that is no longer true).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "registry_store.h"

struct event_base;

namespace rdmesh {
class TaskQueue;
}

namespace rdmesh::xds::etcd {
class EtcdClient;
class EtcdRegistryStore;
class EtcdLeaderElection;
struct StoredResource;
}  // namespace rdmesh::xds::etcd

namespace rdmesh::xds_server {

struct EtcdStoreOptions {
  std::vector<std::string> endpoints;  // "http://127.0.0.1:2379", ...
  std::string ca_file;                 // for https endpoints
  std::string prefix = "/rdmesh/v1";
  // Written into each entry ("origin"): who wrote it through apply().
  std::string origin = "registration";
  // This replica's name in the Kubernetes writer election (host name / pod name).
  std::string replica_id;
  std::chrono::seconds election_ttl{10};
  std::chrono::seconds start_timeout{15};
  std::chrono::seconds write_timeout{10};
};

class EtcdStore : public RegistryStore {
 public:
  explicit EtcdStore(EtcdStoreOptions options);
  ~EtcdStore() override;

  Result<uint64_t> apply(const RegistryChange& change) override;
  SnapshotPtr snapshot() const override;
  void setOnChange(OnChange on_change) override { on_change_ = std::move(on_change); }
  Status start() override;
  void stop() override;
  std::string describe() const override;

  // The sink for the Kubernetes source in a multi-replica deployment. Its apply() writes (with
  // origin "kubernetes" and the leader fence) only while this replica leads the election, and
  // returns the current revision otherwise. `full_state` gives the source's complete view: a new
  // leader writes it and deletes the "kubernetes" entries it does not contain. Call before
  // start(); the election starts with the store.
  RegistrySink& kubernetesSink(std::function<RegistryChange()> full_state);

  bool isKubernetesWriter() const { return leader_.load(); }
  uint64_t badEntries() const { return bad_entries_.load(); }

 private:
  class KubernetesSink;
  // Loop thread only.
  void onUpsert(const xds::etcd::StoredResource& stored);
  void onRemove(int collection, const std::string& name);
  void onApplied(int64_t revision);
  void reconcileKubernetes();
  // Runs `task` on the loop thread and waits for the result.
  Result<uint64_t> runWrite(const RegistryChange& change, const std::string& origin, bool fenced);
  bool waitApplied(uint64_t revision);

  EtcdStoreOptions options_;
  OnChange on_change_;
  std::thread thread_;
  event_base* base_ = nullptr;
  std::unique_ptr<TaskQueue> tasks_;
  std::unique_ptr<xds::etcd::EtcdClient> client_;
  std::unique_ptr<xds::etcd::EtcdRegistryStore> store_;
  std::unique_ptr<xds::etcd::EtcdLeaderElection> election_;
  std::unique_ptr<KubernetesSink> kubernetes_sink_;
  RegistrySnapshot working_;  // loop thread: the copy being updated by the watch
  bool dirty_ = false;
  std::atomic<bool> leader_{false};
  std::atomic<uint64_t> bad_entries_{0};

  mutable std::mutex mu_;
  std::condition_variable applied_cv_;
  SnapshotPtr current_;
  uint64_t applied_revision_ = 0;
  bool synced_ = false;
  std::atomic<bool> running_{false};
};

}  // namespace rdmesh::xds_server
