// The single-replica store: the registry in this process's memory.
#pragma once

#include <mutex>

#include "registry_store.h"

namespace rdmesh::xds_server {

class MemoryStore : public RegistryStore {
 public:
  MemoryStore();

  Result<uint64_t> apply(const RegistryChange& change) override;
  SnapshotPtr snapshot() const override;
  void setOnChange(OnChange on_change) override { on_change_ = std::move(on_change); }
  Status start() override { return Status::ok(); }
  void stop() override {}
  std::string describe() const override { return "memory"; }

 private:
  mutable std::mutex mu_;  // serializes apply() and guards current_
  SnapshotPtr current_;
  OnChange on_change_;
};

}  // namespace rdmesh::xds_server
