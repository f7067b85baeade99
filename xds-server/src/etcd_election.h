// Leader election among rdmesh-xds replicas on an etcd lease, so that exactly one replica writes
// the Kubernetes source's translation into the shared registry (all replicas serve clients;
// leadership is only about that writer).
//
// The leader holds <key> = <candidate id>, attached to its lease; it keeps the lease alive and
// loses leadership when it cannot (etcd unreachable for a TTL, or the lease expired). Others
// watch the key and campaign when it disappears (the leader resigned, died, or its lease ran
// out). Writes made on behalf of the leader carry a fence (compare <key> == <candidate id>) so a
// replica that lost leadership without noticing yet cannot overwrite the new leader's work.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "etcd_client.h"
#include "etcd_mirror.h"
#include "etcd_registry_store.h"

struct event;
struct event_base;

namespace rdmesh::xds::etcd {

class EtcdLeaderElection {
 public:
  struct Options {
    std::chrono::seconds lease_ttl{10};
    std::chrono::milliseconds retry{500};
  };
  using OnChange = std::function<void(bool leader)>;

  EtcdLeaderElection(event_base* base, EtcdClient& client, std::string key,
                     std::string candidate_id, OnChange on_change, Options options);
  ~EtcdLeaderElection();
  EtcdLeaderElection(const EtcdLeaderElection&) = delete;
  EtcdLeaderElection& operator=(const EtcdLeaderElection&) = delete;

  void start();
  // Gives leadership up now (revokes the lease) so another replica takes over without waiting
  // for the TTL; used on shutdown. `done` runs once etcd has answered (or the call failed).
  void resign(std::function<void()> done = {});

  bool isLeader() const { return leader_; }
  const std::string& candidateId() const { return candidate_id_; }
  // The current leader's id as last seen ("" when none).
  const std::string& leaderId() const { return leader_id_; }
  EtcdRegistryStore::Fence fence() const { return {key_, candidate_id_}; }

 private:
  void grantLease();
  void campaign();
  void keepAlive();
  void setLeader(bool leader);
  void scheduleKeepAlive();
  void retryLater();
  static void onKeepAliveTimer(int fd, short what, void* arg);
  static void onRetryTimer(int fd, short what, void* arg);

  event_base* base_;
  EtcdClient& client_;
  std::string key_;
  std::string candidate_id_;
  OnChange on_change_;
  Options options_;
  int64_t lease_ = 0;
  bool leader_ = false;
  bool campaigning_ = false;
  bool resigned_ = false;
  std::string leader_id_;
  std::chrono::steady_clock::time_point last_keepalive_ok_{};
  event* keepalive_timer_ = nullptr;
  event* retry_timer_ = nullptr;
  // Watches the leader key: its deletion starts a campaign.
  std::unique_ptr<EtcdPrefixMirror> watch_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace rdmesh::xds::etcd
