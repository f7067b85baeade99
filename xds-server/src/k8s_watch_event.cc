#include "k8s_watch_event.h"

#include <fmt/format.h>

#include <optional>

namespace rdmesh::xds::k8s {
namespace {

using Json = nlohmann::json;

Status bad(std::string_view what) {
  return protocolError(fmt::format("Kubernetes API: {}", what));
}

// A string field of an object, or "" when absent; an error when present but not a string.
Result<std::string> optionalString(const Json& object, const char* field, std::string_view path) {
  auto it = object.find(field);
  if (it == object.end() || it->is_null()) return std::string();
  if (!it->is_string()) return bad(fmt::format("{}.{}: expected a string", path, field));
  return it->get<std::string>();
}

Result<ApiStatus> statusFrom(const Json& object) {
  if (!object.is_object()) return bad("ERROR event: object is not a Status");
  ApiStatus status;
  auto code = object.find("code");
  if (code != object.end() && code->is_number_integer()) status.code = code->get<int>();
  auto reason = optionalString(object, "reason", "status");
  if (!reason) return reason.status();
  auto message = optionalString(object, "message", "status");
  if (!message) return message.status();
  status.reason = std::move(*reason);
  status.message = std::move(*message);
  return status;
}

Result<std::string> resourceVersionOf(const Json& object, std::string_view path) {
  auto metadata = object.find("metadata");
  if (metadata == object.end() || !metadata->is_object()) {
    return bad(fmt::format("{}.metadata: missing", path));
  }
  auto rv = optionalString(*metadata, "resourceVersion", fmt::format("{}.metadata", path));
  if (!rv) return rv.status();
  if (rv->empty()) return bad(fmt::format("{}.metadata.resourceVersion: missing", path));
  return rv;
}

}  // namespace

std::string_view toString(WatchEventType type) {
  switch (type) {
    case WatchEventType::kAdded:
      return "ADDED";
    case WatchEventType::kModified:
      return "MODIFIED";
    case WatchEventType::kDeleted:
      return "DELETED";
    case WatchEventType::kBookmark:
      return "BOOKMARK";
    case WatchEventType::kError:
    default:
      return "ERROR";
  }
}

Result<std::string> objectKey(const Json& object) {
  if (!object.is_object()) return bad("object: expected a JSON object");
  auto metadata = object.find("metadata");
  if (metadata == object.end() || !metadata->is_object()) return bad("object.metadata: missing");
  auto name = optionalString(*metadata, "name", "object.metadata");
  if (!name) return name.status();
  if (name->empty()) return bad("object.metadata.name: missing");
  auto ns = optionalString(*metadata, "namespace", "object.metadata");
  if (!ns) return ns.status();
  if (ns->empty()) return name;
  return *ns + "/" + *name;
}

Result<WatchEvent> parseWatchEvent(std::string_view line) {
  if (line.size() > kMaxWatchLineBytes) return bad("watch event too large");
  Json json = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return bad("watch event is not a JSON object");
  auto type = optionalString(json, "type", "event");
  if (!type) return type.status();
  auto object = json.find("object");
  if (object == json.end() || !object->is_object()) return bad("event.object: missing");
  WatchEvent event;
  if (*type == "ADDED") {
    event.type = WatchEventType::kAdded;
  } else if (*type == "MODIFIED") {
    event.type = WatchEventType::kModified;
  } else if (*type == "DELETED") {
    event.type = WatchEventType::kDeleted;
  } else if (*type == "BOOKMARK") {
    event.type = WatchEventType::kBookmark;
  } else if (*type == "ERROR") {
    event.type = WatchEventType::kError;
    auto status = statusFrom(*object);
    if (!status) return status.status();
    event.status = std::move(*status);
    return event;
  } else {
    return bad(fmt::format("event.type: unknown '{}'", *type));
  }
  auto rv = resourceVersionOf(*object, "event.object");
  if (!rv) return rv.status();
  event.resource_version = std::move(*rv);
  if (event.type != WatchEventType::kBookmark) {
    auto key = objectKey(*object);
    if (!key) return key.status();
  }
  event.object = std::move(*object);
  return event;
}

Result<ListPage> parseListPage(std::string_view body) {
  if (body.size() > kMaxBodyBytes) return bad("list response too large");
  Json json = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return bad("list response is not a JSON object");
  ListPage page;
  auto rv = resourceVersionOf(json, "list");
  if (!rv) return rv.status();
  page.resource_version = std::move(*rv);
  auto token = optionalString(json["metadata"], "continue", "list.metadata");
  if (!token) return token.status();
  page.continue_token = std::move(*token);
  auto items = json.find("items");
  if (items == json.end() || items->is_null()) return page;  // an empty list omits items
  if (!items->is_array()) return bad("list.items: expected an array");
  page.items.reserve(items->size());
  for (size_t i = 0; i < items->size(); ++i) {
    auto key = objectKey((*items)[i]);
    if (!key) return bad(fmt::format("list.items[{}]: {}", i, key.status().message()));
    page.items.push_back(std::move((*items)[i]));
  }
  return page;
}

std::optional<ApiStatus> parseApiStatus(std::string_view body) {
  Json json = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return std::nullopt;
  auto kind = json.find("kind");
  if (kind == json.end() || *kind != "Status") return std::nullopt;
  auto status = statusFrom(json);
  if (!status) return std::nullopt;
  return *status;
}

}  // namespace rdmesh::xds::k8s
