// The registry's shared copy in etcd, for several rdmesh-xds replicas (high availability).
//
// Layout: one key per resource, <prefix>/<collection>/<name>, collection one of nodes,
// workloads, services (e.g. /rdmesh/v1/workloads/default/web-0); the value is
//   {"origin":"registration"|"kubernetes"|..., "resource":{<the resource's JSON, docs/xds.md>}}
// The origin says which source wrote it, so a source reconciling its own view (the Kubernetes
// translation after a re-list) deletes only what it wrote.
//
// Writes go to etcd only; every replica (the writer included) applies them when its watch
// delivers them, so all replicas converge on etcd's order and none has a private view. A value
// that does not decode is reported once and treated as absent.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "etcd_client.h"
#include "etcd_mirror.h"

namespace rdmesh::xds::etcd {

inline constexpr std::string_view kDefaultRegistryPrefix = "/rdmesh/v1";
inline constexpr std::string_view kOriginRegistration = "registration";
inline constexpr std::string_view kOriginKubernetes = "kubernetes";

enum class Collection { kNodes, kWorkloads, kServices };
std::string_view collectionName(Collection collection);  // "nodes", "workloads", "services"

struct StoredResource {
  Collection collection = Collection::kNodes;
  std::string name;
  std::string origin;
  nlohmann::json resource;
  int64_t mod_revision = 0;
};

// Encoding of one entry; exposed for tests and the fuzz target.
std::string encodeStoredValue(std::string_view origin, const nlohmann::json& resource);
Result<StoredResource> decodeStoredEntry(std::string_view prefix, const KeyValue& kv);

class EtcdRegistryStore {
 public:
  struct Callbacks {
    std::function<void(const StoredResource& resource)> on_upsert;
    std::function<void(Collection collection, const std::string& name)> on_remove;
    std::function<void(int64_t revision)> on_synced;   // see EtcdPrefixMirror
    std::function<void(int64_t revision)> on_applied;  // see EtcdPrefixMirror
  };
  // A write that must only happen while `key` still holds `value` (the writer's leadership).
  struct Fence {
    std::string key;
    std::string value;
  };

  EtcdRegistryStore(event_base* base, EtcdClient& client, std::string prefix, Callbacks callbacks,
                    EtcdPrefixMirror::Options options = {});

  void start() { mirror_.start(); }

  std::string keyOf(Collection collection, std::string_view name) const;

  // done(revision) once etcd has the change; a fenced write whose fence no longer holds fails
  // with kUnavailable ("not the leader") and changes nothing.
  void put(Collection collection, std::string_view name, const nlohmann::json& resource,
           std::string_view origin, const std::optional<Fence>& fence,
           EtcdClient::Done<int64_t> done);
  // Several puts and deletes as one transaction (one etcd revision; at most kMaxTxnOps).
  struct Write {
    Collection collection = Collection::kNodes;
    std::string name;
    std::optional<nlohmann::json> resource;  // nothing = delete
  };
  static constexpr size_t kMaxTxnOps = 100;  // etcd's default --max-txn-ops is 128
  void write(const std::vector<Write>& writes, std::string_view origin,
             const std::optional<Fence>& fence, EtcdClient::Done<int64_t> done);
  void remove(Collection collection, std::string_view name, const std::optional<Fence>& fence,
              EtcdClient::Done<int64_t> done);

  // The current copy (decodable entries only), optionally only those written by `origin`.
  std::vector<StoredResource> list(std::string_view origin = {}) const;
  const StoredResource* find(Collection collection, const std::string& name) const;

  bool synced() const { return mirror_.synced(); }
  int64_t revision() const { return mirror_.revision(); }
  const EtcdPrefixMirror& mirror() const { return mirror_; }
  uint64_t badValues() const { return bad_values_; }

 private:
  void onPut(const KeyValue& kv);
  void onDelete(const std::string& key);
  void fencedTxn(std::vector<TxnOp> ops, const std::optional<Fence>& fence,
                 EtcdClient::Done<int64_t> done);

  EtcdClient& client_;
  std::string prefix_;
  Callbacks callbacks_;
  std::map<std::string, StoredResource> decoded_;  // by etcd key
  uint64_t bad_values_ = 0;
  EtcdPrefixMirror mirror_;
};

}  // namespace rdmesh::xds::etcd
