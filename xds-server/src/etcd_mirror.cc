#include "etcd_mirror.h"

#include <event2/event.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "rdmesh/common/timeval.h"

namespace rdmesh::xds::etcd {

EtcdPrefixMirror::EtcdPrefixMirror(event_base* base, EtcdClient& client, std::string prefix,
                                   Callbacks callbacks, Options options)
    : base_(base),
      client_(client),
      prefix_(std::move(prefix)),
      range_end_(prefixRangeEnd(prefix_)),
      callbacks_(std::move(callbacks)),
      options_(options) {
  retry_timer_ = evtimer_new(base_, &EtcdPrefixMirror::onRetryTimer, this);
}

EtcdPrefixMirror::~EtcdPrefixMirror() {
  *alive_ = false;
  watch_.reset();
  if (retry_timer_ != nullptr) event_free(retry_timer_);
}

void EtcdPrefixMirror::start() {
  readAll();
}

void EtcdPrefixMirror::readAll() {
  ++counters_.reads;
  client_.range(prefix_, range_end_, [this, alive = alive_](Result<RangeResult> result) {
    if (!*alive) return;
    if (!result) {
      retryLater(Next::kRead, result.status());
      return;
    }
    applySnapshot(std::move(*result));
    openWatch();
  });
}

void EtcdPrefixMirror::applySnapshot(RangeResult result) {
  std::map<std::string, KeyValue> fresh;
  for (auto& kv : result.kvs) {
    std::string key = kv.key;
    fresh.emplace(std::move(key), std::move(kv));
  }
  // Keys that vanished while the watch was not looking.
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (fresh.count(it->first) == 0) {
      std::string key = it->first;
      it = entries_.erase(it);
      if (callbacks_.on_delete) callbacks_.on_delete(key);
    } else {
      ++it;
    }
  }
  for (auto& [key, kv] : fresh) {
    auto it = entries_.find(key);
    if (it != entries_.end() && it->second.mod_revision == kv.mod_revision) continue;
    entries_[key] = kv;
    if (callbacks_.on_put) callbacks_.on_put(kv);
  }
  revision_ = result.revision;
  synced_ = true;
  if (callbacks_.on_applied) callbacks_.on_applied(revision_);
  if (callbacks_.on_synced) callbacks_.on_synced(revision_);
}

void EtcdPrefixMirror::openWatch() {
  EtcdClient::WatchCallbacks callbacks;
  callbacks.on_response = [this, alive = alive_](WatchResponse response) {
    return *alive && onWatchResponse(std::move(response));
  };
  callbacks.on_end = [this, alive = alive_](Status why) {
    if (*alive) onWatchEnd(std::move(why));
  };
  auto call = client_.watch(prefix_, range_end_, revision_ + 1, std::move(callbacks));
  if (!call) {
    retryLater(Next::kWatch, call.status());
    return;
  }
  watch_ = std::move(*call);
}

bool EtcdPrefixMirror::onWatchResponse(WatchResponse response) {
  if (response.canceled) {
    watch_.reset();
    if (response.compact_revision > 0) {
      // The revision we would resume from is gone: read everything again, report the difference.
      ++counters_.compactions;
      spdlog::info("etcd watch on {}: revision {} compacted (now {}), re-reading", prefix_,
                   revision_ + 1, response.compact_revision);
      readAll();
    } else {
      retryLater(Next::kWatch, unavailable("etcd cancelled the watch: " + response.cancel_reason));
    }
    return false;
  }
  backoff_ = std::chrono::milliseconds(0);  // the stream works
  last_error_ = Status::ok();
  for (auto& event : response.events) {
    ++counters_.events;
    revision_ = std::max(revision_, event.kv.mod_revision);
    if (event.type == EventType::kPut) {
      entries_[event.kv.key] = event.kv;
      if (callbacks_.on_put) callbacks_.on_put(event.kv);
    } else if (entries_.erase(event.kv.key) > 0) {
      if (callbacks_.on_delete) callbacks_.on_delete(event.kv.key);
    }
  }
  // A progress notification (no events, not the creation answer) promises that everything up to
  // its header revision has been delivered: resuming after it is safe and skips replaying.
  if (response.events.empty() && !response.created) {
    revision_ = std::max(revision_, response.revision);
  }
  if (!response.events.empty() && callbacks_.on_applied) callbacks_.on_applied(revision_);
  return true;
}

void EtcdPrefixMirror::onWatchEnd(Status why) {
  watch_.reset();
  ++counters_.watch_restarts;
  retryLater(Next::kWatch, std::move(why));
}

void EtcdPrefixMirror::retryLater(Next next, Status why) {
  next_ = next;
  backoff_ = std::clamp(backoff_ * 2, options_.min_backoff, options_.max_backoff);
  if (last_error_.message() != why.message()) {
    spdlog::warn("etcd mirror of {}: {}; retrying in {} ms", prefix_, why.message(),
                 backoff_.count());
  }
  last_error_ = std::move(why);
  timeval tv = toTimeval(backoff_);
  evtimer_add(retry_timer_, &tv);
}

void EtcdPrefixMirror::onRetryTimer(int /*fd*/, short /*what*/, void* arg) {
  auto* self = static_cast<EtcdPrefixMirror*>(arg);
  if (self->next_ == Next::kRead) {
    self->readAll();
  } else {
    self->openWatch();
  }
}

}  // namespace rdmesh::xds::etcd
