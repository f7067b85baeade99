// A live local copy of every key under one etcd prefix: read once, then follow a watch.
//
// Nothing is lost across failures: a dropped watch reopens from the revision after the last
// event applied (etcd replays what happened meanwhile); a watch whose start revision was
// compacted away re-reads the whole prefix and reports only what differs from the copy
// (puts for new or changed keys, deletes for keys that vanished), so consumers never see a
// gap nor a spurious flap. While etcd is unreachable the copy stays as it was (the registry
// keeps serving) and the mirror retries with exponential backoff.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "etcd_client.h"

struct event;
struct event_base;

namespace rdmesh::xds::etcd {

class EtcdPrefixMirror {
 public:
  struct Callbacks {
    std::function<void(const KeyValue& kv)> on_put;  // key created or its value changed
    std::function<void(const std::string& key)> on_delete;
    // The copy is complete as of `revision` (after the first read and after every re-read).
    std::function<void(int64_t revision)> on_synced;
    // A batch of puts/deletes (one watch response, or one re-read) has been reported and the
    // copy is consistent as of `revision`: the moment to publish it.
    std::function<void(int64_t revision)> on_applied;
  };
  struct Options {
    std::chrono::milliseconds min_backoff{100};
    std::chrono::milliseconds max_backoff{5000};
  };
  struct Counters {
    uint64_t reads = 0;           // full reads of the prefix (first one included)
    uint64_t compactions = 0;     // watches cancelled because their revision was compacted
    uint64_t watch_restarts = 0;  // watches reopened after the stream ended
    uint64_t events = 0;
  };

  EtcdPrefixMirror(event_base* base, EtcdClient& client, std::string prefix, Callbacks callbacks,
                   Options options);
  EtcdPrefixMirror(event_base* base, EtcdClient& client, std::string prefix, Callbacks callbacks)
      : EtcdPrefixMirror(base, client, std::move(prefix), std::move(callbacks), Options{}) {}
  ~EtcdPrefixMirror();
  EtcdPrefixMirror(const EtcdPrefixMirror&) = delete;
  EtcdPrefixMirror& operator=(const EtcdPrefixMirror&) = delete;

  void start();

  const std::string& prefix() const { return prefix_; }
  const std::map<std::string, KeyValue>& entries() const { return entries_; }
  // Revision up to which every change has been applied (0 before the first read).
  int64_t revision() const { return revision_; }
  bool synced() const { return synced_; }
  bool watching() const { return watch_ != nullptr; }
  const Counters& counters() const { return counters_; }
  const Status& lastError() const { return last_error_; }

 private:
  enum class Next { kRead, kWatch };
  void readAll();
  void applySnapshot(RangeResult result);
  void openWatch();
  bool onWatchResponse(WatchResponse response);
  void onWatchEnd(Status why);
  void retryLater(Next next, Status why);
  static void onRetryTimer(int fd, short what, void* arg);

  event_base* base_;
  EtcdClient& client_;
  std::string prefix_;
  std::string range_end_;
  Callbacks callbacks_;
  Options options_;
  std::map<std::string, KeyValue> entries_;
  int64_t revision_ = 0;
  bool synced_ = false;
  std::unique_ptr<HttpCall> watch_;
  event* retry_timer_ = nullptr;
  Next next_ = Next::kRead;
  std::chrono::milliseconds backoff_{0};
  Counters counters_;
  Status last_error_;
  // Lets callbacks of in-flight calls notice that the mirror is gone.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace rdmesh::xds::etcd
