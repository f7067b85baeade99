// The Kubernetes API server's list and watch bodies, parsed strictly enough to trust:
//  - a list page: {"kind":"PodList","metadata":{"resourceVersion","continue"?},"items":[...]}
//  - a watch line: {"type":"ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK"|"ERROR","object":{...}}
//    where an ERROR's object is a metav1.Status ({"kind":"Status","code":410,"reason":"Expired"}).
// Every object must carry metadata.name and metadata.resourceVersion. Pure functions, no I/O:
// unit-tested and fuzzed (tests/fuzz/fuzz_k8s_watch_event.cc).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "rdmesh/common/status.h"

namespace rdmesh::xds::k8s {

// One watch line or one list page is at most this large (a list page of 500 large pods).
inline constexpr size_t kMaxBodyBytes = size_t{256} << 20;
inline constexpr size_t kMaxWatchLineBytes = size_t{16} << 20;

enum class WatchEventType { kAdded, kModified, kDeleted, kBookmark, kError };
std::string_view toString(WatchEventType type);

// metav1.Status of an ERROR event or a failed request.
struct ApiStatus {
  int code = 0;  // HTTP code: 410 = the resourceVersion is too old (Gone)
  std::string reason;
  std::string message;
};

struct WatchEvent {
  WatchEventType type = WatchEventType::kAdded;
  nlohmann::json object;         // ADDED/MODIFIED/DELETED: the object; BOOKMARK: metadata only
  std::string resource_version;  // the object's (or the bookmark's) metadata.resourceVersion
  ApiStatus status;              // ERROR only
};

struct ListPage {
  std::string resource_version;
  std::string continue_token;  // empty on the last page
  std::vector<nlohmann::json> items;
};

Result<WatchEvent> parseWatchEvent(std::string_view line);
Result<ListPage> parseListPage(std::string_view body);
// The metav1.Status in an error response body, if it is one.
std::optional<ApiStatus> parseApiStatus(std::string_view body);

// "<namespace>/<name>" (or just "<name>" for cluster-scoped objects); checks the metadata.
Result<std::string> objectKey(const nlohmann::json& object);

}  // namespace rdmesh::xds::k8s
