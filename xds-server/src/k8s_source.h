// The Kubernetes API as a source of truth: list + watch of Pods, Services, EndpointSlices
// (discovery.k8s.io/v1) and Nodes (one Reflector each, on the source's own thread and event
// loop), translated into Workloads, Services and Nodes (k8s_translate.h) and applied to the
// registry as changes: only what differs from what the source put before, and deletions of
// what it put that is gone (also after a re-list on 410 Gone). Objects that do not translate
// are logged, counted and left out; the rest of the cluster is unaffected.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>

#include "k8s_api_config.h"
#include "k8s_watch_event.h"
#include "registry_source.h"

struct event;
struct event_base;

namespace rdmesh {
class TaskQueue;
}
namespace rdmesh::xds {
class HttpClient;
}
namespace rdmesh::xds::k8s {
class Reflector;
}

namespace rdmesh::xds_server {

struct KubernetesSourceOptions {
  xds::k8s::ApiConfig api;
  std::string trust_domain = "cluster.local";
  std::chrono::seconds watch_timeout{300};
  std::chrono::milliseconds min_backoff{200};
  std::chrono::milliseconds max_backoff{10000};
};

class KubernetesSource : public RegistrySource {
 public:
  enum class Kind { kPods, kServices, kEndpointSlices, kNodes };
  static constexpr size_t kKinds = 4;

  explicit KubernetesSource(KubernetesSourceOptions options);
  ~KubernetesSource() override;

  std::string describe() const override;
  Status start(RegistrySink& sink, std::function<void()> on_synced) override;
  void stop() override;

  // Everything the source currently translates, as one change of puts. Thread-safe.
  RegistryChange fullState() const;

  struct Counters {
    uint64_t lists = 0;
    uint64_t gone = 0;
    uint64_t watches = 0;
    uint64_t events = 0;
    uint64_t bookmarks = 0;
    uint64_t malformed = 0;
    uint64_t errors = 0;
    std::string resource_version;
    std::string last_error;
  };
  Counters counters(Kind kind) const;  // thread-safe
  uint64_t translationErrors() const { return translation_errors_.load(); }
  uint64_t applyErrors() const { return apply_errors_.load(); }

 private:
  using Json = nlohmann::json;
  struct Desired {
    std::map<std::string, xds::Node> nodes;
    std::map<std::string, xds::Workload> workloads;
    std::map<std::string, xds::Service> services;
  };

  // Loop thread.
  void onList(Kind kind, std::vector<Json> items);
  void onEvent(Kind kind, xds::k8s::WatchEventType type, const Json& object);
  void refreshWorkload(const std::string& key, RegistryChange& change);
  void refreshNode(const std::string& key, RegistryChange& change);
  void refreshService(const std::string& key, RegistryChange& change);
  void applyChange(const RegistryChange& change);
  void updateCounters();

  KubernetesSourceOptions options_;
  RegistrySink* sink_ = nullptr;
  std::function<void()> on_synced_;
  bool synced_reported_ = false;
  std::thread thread_;
  event_base* base_ = nullptr;
  std::unique_ptr<TaskQueue> tasks_;
  event* counters_timer_ = nullptr;
  std::unique_ptr<xds::HttpClient> http_;
  std::unique_ptr<xds::k8s::Reflector> reflectors_[kKinds];
  std::atomic<bool> running_{false};

  // Raw objects by "<ns>/<name>" (nodes: "<name>"), loop thread only.
  std::map<std::string, Json> objects_[kKinds];
  // EndpointSlice keys of each Service.
  std::map<std::string, std::set<std::string>> slices_of_service_;

  mutable std::mutex mu_;  // guards desired_ and counters_
  Desired desired_;
  Counters counters_[kKinds];
  std::atomic<uint64_t> translation_errors_{0};
  std::atomic<uint64_t> apply_errors_{0};
};

}  // namespace rdmesh::xds_server
