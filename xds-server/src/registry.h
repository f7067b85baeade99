// The registry as the xDS server sees it: a store plus the sources feeding it, with changes
// handed to the server's event loop thread.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "rdmesh/common/task_queue.h"
#include "registry_source.h"
#include "registry_store.h"

struct event_base;

namespace rdmesh::xds_server {

class Registry : public RegistrySink {
 public:
  // Runs on the loop thread after each new snapshot (several quick revisions may arrive as one
  // call with the latest).
  using OnChange = std::function<void(const SnapshotPtr&)>;

  Registry(event_base* loop, std::unique_ptr<RegistryStore> store);
  ~Registry() override;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  void addSource(std::unique_ptr<RegistrySource> source);
  void setOnChange(OnChange on_change) { on_change_ = std::move(on_change); }

  // Starts the store, then every source; fails on the first error (a bad registry file).
  Status start();
  void stop();

  Result<uint64_t> apply(const RegistryChange& change) override { return store_->apply(change); }
  SnapshotPtr snapshot() const { return store_->snapshot(); }
  // Every source has delivered its initial state.
  bool ready() const { return started_ && synced_sources_.load() == sources_.size(); }
  std::string describe() const;

 private:
  void deliverLatest();

  std::unique_ptr<RegistryStore> store_;
  std::vector<std::unique_ptr<RegistrySource>> sources_;
  TaskQueue tasks_;
  OnChange on_change_;
  std::atomic<size_t> synced_sources_{0};
  std::atomic<bool> delivery_pending_{false};
  bool started_ = false;
};

}  // namespace rdmesh::xds_server
