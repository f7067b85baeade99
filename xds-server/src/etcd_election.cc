#include "etcd_election.h"

#include <event2/event.h>
#include <spdlog/spdlog.h>

#include "rdmesh/common/timeval.h"

namespace rdmesh::xds::etcd {

EtcdLeaderElection::EtcdLeaderElection(event_base* base, EtcdClient& client, std::string key,
                                       std::string candidate_id, OnChange on_change,
                                       Options options)
    : base_(base),
      client_(client),
      key_(std::move(key)),
      candidate_id_(std::move(candidate_id)),
      on_change_(std::move(on_change)),
      options_(options) {
  keepalive_timer_ = evtimer_new(base_, &EtcdLeaderElection::onKeepAliveTimer, this);
  retry_timer_ = evtimer_new(base_, &EtcdLeaderElection::onRetryTimer, this);
}

EtcdLeaderElection::~EtcdLeaderElection() {
  *alive_ = false;
  watch_.reset();
  event_free(keepalive_timer_);
  event_free(retry_timer_);
}

void EtcdLeaderElection::start() {
  EtcdPrefixMirror::Callbacks callbacks;
  callbacks.on_put = [this](const KeyValue& kv) {
    if (kv.key != key_) return;
    leader_id_ = kv.value;
    if (leader_ && (kv.value != candidate_id_ || kv.lease != lease_)) setLeader(false);
  };
  callbacks.on_delete = [this](const std::string& key) {
    if (key != key_) return;
    leader_id_.clear();
    setLeader(false);
    campaign();
  };
  callbacks.on_synced = [this](int64_t) {
    if (watch_->entries().count(key_) == 0) campaign();
  };
  watch_ = std::make_unique<EtcdPrefixMirror>(base_, client_, key_, std::move(callbacks));
  watch_->start();
  grantLease();
}

void EtcdLeaderElection::grantLease() {
  if (resigned_) return;
  client_.leaseGrant(options_.lease_ttl.count(), [this, alive = alive_](Result<LeaseGrant> grant) {
    if (!*alive) return;
    if (!grant) {
      spdlog::warn("leader election {}: lease grant: {}", key_, grant.status().message());
      retryLater();
      return;
    }
    lease_ = grant->id;
    last_keepalive_ok_ = std::chrono::steady_clock::now();
    scheduleKeepAlive();
    if (watch_->synced() && watch_->entries().count(key_) == 0) campaign();
  });
}

void EtcdLeaderElection::campaign() {
  if (resigned_ || campaigning_ || leader_) return;
  if (lease_ == 0) return;  // grantLease campaigns once it has one
  campaigning_ = true;
  std::vector<Compare> compares = {Compare::createRevisionEquals(key_, 0)};  // key absent
  std::vector<TxnOp> claim = {TxnOp::put(key_, candidate_id_, lease_)};
  std::vector<TxnOp> look = {TxnOp::get(key_)};
  int64_t lease = lease_;
  client_.txn(compares, claim, look, [this, alive = alive_, lease](Result<TxnResult> result) {
    if (!*alive) return;
    campaigning_ = false;
    if (!result) {
      spdlog::warn("leader election {}: {}", key_, result.status().message());
      retryLater();
      return;
    }
    if (result->succeeded) {
      leader_id_ = candidate_id_;
      setLeader(lease == lease_);
      return;
    }
    if (!result->range_kvs.empty()) {
      const KeyValue& holder = result->range_kvs.front();
      leader_id_ = holder.value;
      // Our own claim from before (e.g. a campaign whose answer was lost): still ours.
      if (holder.value == candidate_id_ && holder.lease == lease_) setLeader(true);
    } else {
      retryLater();  // the key vanished between compare and read: try again
    }
  });
}

void EtcdLeaderElection::setLeader(bool leader) {
  if (leader == leader_) return;
  leader_ = leader;
  spdlog::info("leader election {}: {} {} leadership", key_, candidate_id_,
               leader ? "acquired" : "lost");
  if (on_change_) on_change_(leader);
}

void EtcdLeaderElection::scheduleKeepAlive() {
  timeval tv =
      toTimeval(std::chrono::duration_cast<std::chrono::microseconds>(options_.lease_ttl / 3));
  evtimer_add(keepalive_timer_, &tv);
}

void EtcdLeaderElection::keepAlive() {
  if (resigned_ || lease_ == 0) return;
  int64_t lease = lease_;
  client_.leaseKeepAlive(lease, [this, alive = alive_, lease](Result<int64_t> ttl) {
    if (!*alive || lease != lease_) return;
    auto now = std::chrono::steady_clock::now();
    if (ttl && *ttl > 0) {
      last_keepalive_ok_ = now;
      scheduleKeepAlive();
      return;
    }
    if (ttl) {
      // Expired: etcd has deleted our key (if we held it); start over with a new lease.
      spdlog::warn("leader election {}: lease {} expired", key_, lease);
      lease_ = 0;
      setLeader(false);
      grantLease();
      return;
    }
    if (now - last_keepalive_ok_ >= options_.lease_ttl) {
      // Cannot tell whether the lease still exists: stop acting as leader.
      setLeader(false);
    }
    scheduleKeepAlive();
  });
}

void EtcdLeaderElection::resign(std::function<void()> done) {
  bool revoke = !resigned_ && lease_ != 0;
  resigned_ = true;
  evtimer_del(keepalive_timer_);
  evtimer_del(retry_timer_);
  setLeader(false);
  int64_t lease = lease_;
  lease_ = 0;
  if (!revoke) {
    if (done) done();
    return;
  }
  client_.leaseRevoke(lease, [done = std::move(done)](Result<bool>) {
    if (done) done();
  });
}

void EtcdLeaderElection::retryLater() {
  timeval tv = toTimeval(options_.retry);
  evtimer_add(retry_timer_, &tv);
}

void EtcdLeaderElection::onKeepAliveTimer(int /*fd*/, short /*what*/, void* arg) {
  static_cast<EtcdLeaderElection*>(arg)->keepAlive();
}

void EtcdLeaderElection::onRetryTimer(int /*fd*/, short /*what*/, void* arg) {
  auto* self = static_cast<EtcdLeaderElection*>(arg);
  if (self->lease_ == 0) {
    self->grantLease();
  } else if (self->watch_->synced() && self->watch_->entries().count(self->key_) == 0) {
    self->campaign();
  }
}

}  // namespace rdmesh::xds::etcd
