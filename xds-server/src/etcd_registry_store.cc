#include "etcd_registry_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>

namespace rdmesh::xds::etcd {
namespace {

constexpr std::array<Collection, 3> kCollections = {Collection::kNodes, Collection::kWorkloads,
                                                    Collection::kServices};

}  // namespace

std::string_view collectionName(Collection collection) {
  switch (collection) {
    case Collection::kNodes:
      return "nodes";
    case Collection::kWorkloads:
      return "workloads";
    case Collection::kServices:
    default:
      return "services";
  }
}

std::string encodeStoredValue(std::string_view origin, const nlohmann::json& resource) {
  return nlohmann::json{{"origin", origin}, {"resource", resource}}.dump();
}

Result<StoredResource> decodeStoredEntry(std::string_view prefix, const KeyValue& kv) {
  std::string_view key = kv.key;
  if (!key.starts_with(prefix) || key.size() <= prefix.size() || key[prefix.size()] != '/') {
    return invalidArgument(fmt::format("key '{}' is not under '{}/'", key, prefix));
  }
  key.remove_prefix(prefix.size() + 1);
  StoredResource stored;
  bool known = false;
  for (Collection collection : kCollections) {
    std::string_view name = collectionName(collection);
    if (key.size() > name.size() + 1 && key.starts_with(name) && key[name.size()] == '/') {
      stored.collection = collection;
      stored.name = std::string(key.substr(name.size() + 1));
      known = true;
      break;
    }
  }
  if (!known) return invalidArgument(fmt::format("key '{}': unknown collection", kv.key));
  auto value = nlohmann::json::parse(kv.value, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded() || !value.is_object()) {
    return invalidArgument(fmt::format("key '{}': value is not a JSON object", kv.key));
  }
  auto origin = value.find("origin");
  auto resource = value.find("resource");
  if (origin == value.end() || !origin->is_string()) {
    return invalidArgument(fmt::format("key '{}': \"origin\" missing or not a string", kv.key));
  }
  if (resource == value.end() || !resource->is_object()) {
    return invalidArgument(fmt::format("key '{}': \"resource\" missing or not an object", kv.key));
  }
  auto name = resource->find("name");
  if (name == resource->end() || !name->is_string() || *name != stored.name) {
    return invalidArgument(fmt::format("key '{}': resource name does not match the key", kv.key));
  }
  stored.origin = origin->get<std::string>();
  stored.resource = std::move(*resource);
  stored.mod_revision = kv.mod_revision;
  return stored;
}

EtcdRegistryStore::EtcdRegistryStore(event_base* base, EtcdClient& client, std::string prefix,
                                     Callbacks callbacks, EtcdPrefixMirror::Options options)
    : client_(client),
      prefix_(std::move(prefix)),
      callbacks_(std::move(callbacks)),
      mirror_(base, client, prefix_ + "/",
              EtcdPrefixMirror::Callbacks{
                  .on_put = [this](const KeyValue& kv) { onPut(kv); },
                  .on_delete = [this](const std::string& key) { onDelete(key); },
                  .on_synced =
                      [this](int64_t revision) {
                        if (callbacks_.on_synced) callbacks_.on_synced(revision);
                      },
                  .on_applied =
                      [this](int64_t revision) {
                        if (callbacks_.on_applied) callbacks_.on_applied(revision);
                      }},
              options) {}

std::string EtcdRegistryStore::keyOf(Collection collection, std::string_view name) const {
  return fmt::format("{}/{}/{}", prefix_, collectionName(collection), name);
}

void EtcdRegistryStore::onPut(const KeyValue& kv) {
  auto stored = decodeStoredEntry(prefix_, kv);
  if (!stored) {
    ++bad_values_;
    spdlog::warn("etcd registry: ignoring {}", stored.status().message());
    onDelete(kv.key);  // whatever the key held before is no longer true
    return;
  }
  auto& slot = decoded_[kv.key];
  slot = std::move(*stored);
  if (callbacks_.on_upsert) callbacks_.on_upsert(slot);
}

void EtcdRegistryStore::onDelete(const std::string& key) {
  auto it = decoded_.find(key);
  if (it == decoded_.end()) return;
  Collection collection = it->second.collection;
  std::string name = std::move(it->second.name);
  decoded_.erase(it);
  if (callbacks_.on_remove) callbacks_.on_remove(collection, name);
}

void EtcdRegistryStore::fencedTxn(std::vector<TxnOp> ops, const std::optional<Fence>& fence,
                                  EtcdClient::Done<int64_t> done) {
  std::vector<Compare> compares;
  if (fence) {
    compares.push_back(Compare::valueEquals(fence->key, fence->value));
  }
  client_.txn(compares, ops, {}, [done = std::move(done)](Result<TxnResult> result) {
    if (!result) {
      done(result.status());
    } else if (!result->succeeded) {
      done(unavailable("etcd registry: write refused, this replica is not the leader any more"));
    } else {
      done(result->revision);
    }
  });
}

void EtcdRegistryStore::put(Collection collection, std::string_view name,
                            const nlohmann::json& resource, std::string_view origin,
                            const std::optional<Fence>& fence, EtcdClient::Done<int64_t> done) {
  fencedTxn({TxnOp::put(keyOf(collection, name), encodeStoredValue(origin, resource))}, fence,
            std::move(done));
}

void EtcdRegistryStore::write(const std::vector<Write>& writes, std::string_view origin,
                              const std::optional<Fence>& fence, EtcdClient::Done<int64_t> done) {
  std::vector<TxnOp> ops;
  ops.reserve(writes.size());
  for (const Write& w : writes) {
    std::string key = keyOf(w.collection, w.name);
    ops.push_back(w.resource ? TxnOp::put(std::move(key), encodeStoredValue(origin, *w.resource))
                             : TxnOp::erase(std::move(key)));
  }
  fencedTxn(std::move(ops), fence, std::move(done));
}

void EtcdRegistryStore::remove(Collection collection, std::string_view name,
                               const std::optional<Fence>& fence, EtcdClient::Done<int64_t> done) {
  fencedTxn({TxnOp::erase(keyOf(collection, name))}, fence, std::move(done));
}

std::vector<StoredResource> EtcdRegistryStore::list(std::string_view origin) const {
  std::vector<StoredResource> out;
  for (const auto& [key, stored] : decoded_) {
    if (origin.empty() || stored.origin == origin) out.push_back(stored);
  }
  return out;
}

const StoredResource* EtcdRegistryStore::find(Collection collection,
                                              const std::string& name) const {
  auto it = decoded_.find(keyOf(collection, name));
  return it == decoded_.end() ? nullptr : &it->second;
}

}  // namespace rdmesh::xds::etcd
