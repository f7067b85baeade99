#include "memory_store.h"

namespace rdmesh::xds_server {
namespace {

template <typename Map, typename Item>
bool put(Map& map, const Item& item) {
  auto [it, inserted] = map.try_emplace(item.name, item);
  if (inserted) return true;
  if (it->second == item) return false;
  it->second = item;
  return true;
}

template <typename Map>
bool erase(Map& map, const std::vector<std::string>& names) {
  bool changed = false;
  for (const std::string& name : names) changed |= map.erase(name) > 0;
  return changed;
}

}  // namespace

bool applyChange(const RegistryChange& change, RegistrySnapshot& contents) {
  bool changed = false;
  for (const xds::Node& node : change.put_nodes) changed |= put(contents.nodes, node);
  for (const xds::Workload& workload : change.put_workloads) {
    changed |= put(contents.workloads, workload);
  }
  for (const xds::Service& service : change.put_services)
    changed |= put(contents.services, service);
  changed |= erase(contents.nodes, change.delete_nodes);
  changed |= erase(contents.workloads, change.delete_workloads);
  changed |= erase(contents.services, change.delete_services);
  return changed;
}

MemoryStore::MemoryStore() : current_(std::make_shared<RegistrySnapshot>()) {}

Result<uint64_t> MemoryStore::apply(const RegistryChange& change) {
  SnapshotPtr published;
  {
    std::lock_guard lock(mu_);
    // Copy-on-write: readers keep the old snapshot; a registry of thousands of pods copies in
    // about a millisecond, and changes are coalesced downstream anyway.
    auto next = std::make_shared<RegistrySnapshot>(*current_);
    if (!applyChange(change, *next)) return current_->revision;
    next->revision = current_->revision + 1;
    current_ = next;
    published = current_;
    // Called under the lock so listeners see revisions in order.
    if (on_change_) on_change_(published);
  }
  return published->revision;
}

SnapshotPtr MemoryStore::snapshot() const {
  std::lock_guard lock(mu_);
  return current_;
}

}  // namespace rdmesh::xds_server
