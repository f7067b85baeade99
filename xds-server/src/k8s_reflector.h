// List + watch of one Kubernetes resource collection (e.g. /api/v1/pods), the way client-go's
// reflector does it:
//  - list in pages (limit + continue); a continue token that expired (410) restarts the list;
//  - watch from the list's resourceVersion with bookmarks; every event and bookmark advances
//    the resourceVersion, and a watch that ends (the server's timeoutSeconds, a dropped
//    connection) resumes from it, so nothing is replayed twice and nothing is missed;
//  - "410 Gone" (as the HTTP status of the watch or as an ERROR event with code 410) means the
//    resourceVersion is too old: list again and hand the consumer the full new state;
//  - a malformed event is reported (counter + last error) and the watch restarts from the last
//    good resourceVersion after a backoff; other failures back off exponentially.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "http_stream_client.h"
#include "k8s_api_config.h"
#include "k8s_watch_event.h"
#include "stream_lines.h"

struct event;
struct event_base;

namespace rdmesh::xds::k8s {

class Reflector {
 public:
  struct Callbacks {
    // The complete collection (first list and every re-list): replaces what came before.
    std::function<void(std::vector<nlohmann::json> items)> on_list;
    // ADDED, MODIFIED or DELETED.
    std::function<void(WatchEventType type, const nlohmann::json& object)> on_event;
  };
  struct Options {
    std::string path;  // collection path, e.g. "/api/v1/pods"
    int page_size = 500;
    std::chrono::seconds watch_timeout{300};  // asked of the server (timeoutSeconds)
    std::chrono::milliseconds min_backoff{200};
    std::chrono::milliseconds max_backoff{10000};
  };
  struct Counters {
    uint64_t lists = 0;    // complete lists (first one included)
    uint64_t gone = 0;     // 410s that forced a re-list
    uint64_t watches = 0;  // watch requests started
    uint64_t events = 0;   // ADDED/MODIFIED/DELETED applied
    uint64_t bookmarks = 0;
    uint64_t malformed = 0;  // events that did not parse
    uint64_t errors = 0;     // failed requests and ERROR events other than 410
  };

  Reflector(event_base* base, HttpClient& http, const ApiConfig& api, Options options,
            Callbacks callbacks);
  ~Reflector();
  Reflector(const Reflector&) = delete;
  Reflector& operator=(const Reflector&) = delete;

  void start();

  const std::string& path() const { return options_.path; }
  bool synced() const { return synced_; }
  const std::string& resourceVersion() const { return resource_version_; }
  const Counters& counters() const { return counters_; }
  const Status& lastError() const { return last_error_; }
  bool watching() const { return watch_ != nullptr; }

 private:
  enum class Next { kList, kWatch };
  void list();
  void fetchPage(const std::string& continue_token);
  void watch();
  bool onWatchLine(std::string_view line);
  void onWatchDone(Status status);
  void fail(Next next, Status why);
  void schedule(Next next, std::chrono::milliseconds delay);
  static void onTimer(int fd, short what, void* arg);
  Result<HttpRequest> request(std::string target) const;

  event_base* base_;
  HttpClient& http_;
  const ApiConfig& api_;
  Options options_;
  Callbacks callbacks_;
  std::vector<nlohmann::json> listing_;  // pages gathered so far
  std::string resource_version_;
  bool synced_ = false;
  std::unique_ptr<HttpCall> list_call_;
  std::unique_ptr<HttpCall> watch_;
  int watch_status_ = 0;
  std::string watch_error_body_;
  StreamLines watch_lines_{kMaxWatchLineBytes};
  bool watch_abandoned_ = false;
  event* timer_ = nullptr;
  Next next_ = Next::kList;
  std::chrono::milliseconds backoff_{0};
  Counters counters_;
  Status last_error_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace rdmesh::xds::k8s
