#include "etcd_codec.h"

#include <fmt/format.h>

#include <charconv>
#include <nlohmann/json.hpp>

namespace rdmesh::xds::etcd {
namespace {

using Json = nlohmann::json;

// Malformed responses are the server's fault (or a proxy's): never trusted, never thrown.
Status bad(std::string_view what) {
  return protocolError(fmt::format("etcd response: {}", what));
}

Result<Json> parseObject(std::string_view text) {
  Json json = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return bad("not JSON");
  if (!json.is_object()) return bad("not a JSON object");
  return json;
}

// A gateway error body: {"error":"...","code":N,"message":"..."} (top level) or, inside a watch
// stream, {"error":{"grpc_code":N,"http_code":N,"message":"..."}}.
std::optional<Status> gatewayError(const Json& json) {
  auto it = json.find("error");
  if (it == json.end() || it->is_null() ||
      (it->is_string() && it->get_ref<const std::string&>().empty())) {
    return std::nullopt;
  }
  const Json& source = it->is_object() ? *it : json;
  std::string message;
  if (auto m = source.find("message"); m != source.end() && m->is_string()) {
    message = m->get<std::string>();
  } else if (it->is_string()) {
    message = it->get<std::string>();
  } else {
    message = "unknown error";
  }
  return unavailable(fmt::format("etcd: {}", message));
}

Result<int64_t> int64Field(const Json& object, const char* name, std::string_view path) {
  auto it = object.find(name);
  if (it == object.end() || it->is_null()) return int64_t{0};
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {
    const auto& text = it->get_ref<const std::string&>();
    int64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec == std::errc() && end == text.data() + text.size()) return value;
  }
  return bad(fmt::format("{}.{}: expected a 64-bit integer", path, name));
}

Result<bool> boolField(const Json& object, const char* name, std::string_view path) {
  auto it = object.find(name);
  if (it == object.end() || it->is_null()) return false;
  if (!it->is_boolean()) return bad(fmt::format("{}.{}: expected a boolean", path, name));
  return it->get<bool>();
}

Result<std::string> bytesField(const Json& object, const char* name, std::string_view path) {
  auto it = object.find(name);
  if (it == object.end() || it->is_null()) return std::string();
  if (!it->is_string()) return bad(fmt::format("{}.{}: expected base64 text", path, name));
  auto decoded = base64Decode(it->get_ref<const std::string&>());
  if (!decoded) return bad(fmt::format("{}.{}: {}", path, name, decoded.status().message()));
  return decoded;
}

Result<const Json*> objectField(const Json& object, const char* name, std::string_view path,
                                bool required) {
  auto it = object.find(name);
  if (it == object.end() || it->is_null()) {
    if (required) return bad(fmt::format("{}.{}: missing", path, name));
    return static_cast<const Json*>(nullptr);
  }
  if (!it->is_object()) return bad(fmt::format("{}.{}: expected an object", path, name));
  return &*it;
}

Result<int64_t> headerRevision(const Json& object, std::string_view path) {
  auto header = objectField(object, "header", path, /*required=*/true);
  if (!header) return header.status();
  return int64Field(**header, "revision", fmt::format("{}.header", path));
}

Result<KeyValue> parseKeyValue(const Json& json, std::string_view path) {
  if (!json.is_object()) return bad(fmt::format("{}: expected an object", path));
  KeyValue kv;
  auto key = bytesField(json, "key", path);
  if (!key) return key.status();
  if (key->empty()) return bad(fmt::format("{}.key: missing", path));
  kv.key = std::move(*key);
  auto value = bytesField(json, "value", path);
  if (!value) return value.status();
  kv.value = std::move(*value);
  for (auto [field, out] : {std::pair{"create_revision", &kv.create_revision},
                            std::pair{"mod_revision", &kv.mod_revision},
                            std::pair{"version", &kv.version}, std::pair{"lease", &kv.lease}}) {
    auto number = int64Field(json, field, path);
    if (!number) return number.status();
    *out = *number;
  }
  return kv;
}

Result<std::vector<KeyValue>> parseKvs(const Json& object, std::string_view path) {
  std::vector<KeyValue> kvs;
  auto it = object.find("kvs");
  if (it == object.end() || it->is_null()) return kvs;
  if (!it->is_array()) return bad(fmt::format("{}.kvs: expected an array", path));
  kvs.reserve(it->size());
  for (size_t i = 0; i < it->size(); ++i) {
    auto kv = parseKeyValue((*it)[i], fmt::format("{}.kvs[{}]", path, i));
    if (!kv) return kv.status();
    kvs.push_back(std::move(*kv));
  }
  return kvs;
}

Json compareJson(const Compare& compare) {
  Json json = {{"key", base64Encode(compare.key)}, {"result", "EQUAL"}};
  switch (compare.target) {
    case Compare::Target::kCreateRevision:
      json["target"] = "CREATE";
      json["create_revision"] = std::to_string(compare.revision);
      break;
    case Compare::Target::kModRevision:
      json["target"] = "MOD";
      json["mod_revision"] = std::to_string(compare.revision);
      break;
    case Compare::Target::kValue:
      json["target"] = "VALUE";
      json["value"] = base64Encode(compare.value);
      break;
  }
  return json;
}

Json opJson(const TxnOp& op) {
  switch (op.kind) {
    case TxnOp::Kind::kPut: {
      Json put = {{"key", base64Encode(op.key)}, {"value", base64Encode(op.value)}};
      if (op.lease != 0) put["lease"] = std::to_string(op.lease);
      return {{"request_put", put}};
    }
    case TxnOp::Kind::kDelete: {
      Json del = {{"key", base64Encode(op.key)}};
      if (!op.range_end.empty()) del["range_end"] = base64Encode(op.range_end);
      return {{"request_delete_range", del}};
    }
    case TxnOp::Kind::kRange:
    default: {
      Json range = {{"key", base64Encode(op.key)}};
      if (!op.range_end.empty()) range["range_end"] = base64Encode(op.range_end);
      return {{"request_range", range}};
    }
  }
}

}  // namespace

std::string prefixRangeEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

std::string putRequest(std::string_view key, std::string_view value, int64_t lease) {
  Json json = {{"key", base64Encode(key)}, {"value", base64Encode(value)}};
  if (lease != 0) json["lease"] = std::to_string(lease);
  return json.dump();
}

std::string rangeRequest(std::string_view key, std::string_view range_end, int64_t limit,
                         int64_t revision) {
  Json json = {{"key", base64Encode(key)}};
  if (!range_end.empty()) json["range_end"] = base64Encode(range_end);
  if (limit > 0) json["limit"] = std::to_string(limit);
  if (revision > 0) json["revision"] = std::to_string(revision);
  return json.dump();
}

std::string deleteRangeRequest(std::string_view key, std::string_view range_end) {
  Json json = {{"key", base64Encode(key)}};
  if (!range_end.empty()) json["range_end"] = base64Encode(range_end);
  return json.dump();
}

std::string txnRequest(const std::vector<Compare>& compares, const std::vector<TxnOp>& success,
                       const std::vector<TxnOp>& failure) {
  Json json = {{"compare", Json::array()}, {"success", Json::array()}, {"failure", Json::array()}};
  for (const auto& c : compares) json["compare"].push_back(compareJson(c));
  for (const auto& op : success) json["success"].push_back(opJson(op));
  for (const auto& op : failure) json["failure"].push_back(opJson(op));
  return json.dump();
}

std::string watchCreateRequest(std::string_view key, std::string_view range_end,
                               int64_t start_revision, bool progress_notify) {
  Json create = {{"key", base64Encode(key)}};
  if (!range_end.empty()) create["range_end"] = base64Encode(range_end);
  if (start_revision > 0) create["start_revision"] = std::to_string(start_revision);
  if (progress_notify) create["progress_notify"] = true;
  return Json{{"create_request", create}}.dump();
}

std::string leaseGrantRequest(int64_t ttl_seconds) {
  return Json{{"TTL", std::to_string(ttl_seconds)}}.dump();
}

std::string leaseIdRequest(int64_t id) {
  return Json{{"ID", std::to_string(id)}}.dump();
}

Status checkResponse(std::string_view body) {
  auto json = parseObject(body);
  if (!json) return json.status();
  if (auto error = gatewayError(*json)) return *error;
  return Status::ok();
}

Result<int64_t> parseRevision(std::string_view body) {
  auto json = parseObject(body);
  if (!json) return json.status();
  if (auto error = gatewayError(*json)) return *error;
  return headerRevision(*json, "response");
}

Result<RangeResult> parseRangeResponse(std::string_view body) {
  auto json = parseObject(body);
  if (!json) return json.status();
  if (auto error = gatewayError(*json)) return *error;
  RangeResult result;
  auto revision = headerRevision(*json, "range");
  if (!revision) return revision.status();
  result.revision = *revision;
  auto kvs = parseKvs(*json, "range");
  if (!kvs) return kvs.status();
  result.kvs = std::move(*kvs);
  auto more = boolField(*json, "more", "range");
  if (!more) return more.status();
  result.more = *more;
  return result;
}

Result<TxnResult> parseTxnResponse(std::string_view body) {
  auto json = parseObject(body);
  if (!json) return json.status();
  if (auto error = gatewayError(*json)) return *error;
  TxnResult result;
  auto revision = headerRevision(*json, "txn");
  if (!revision) return revision.status();
  result.revision = *revision;
  auto succeeded = boolField(*json, "succeeded", "txn");
  if (!succeeded) return succeeded.status();
  result.succeeded = *succeeded;
  auto responses = json->find("responses");
  if (responses != json->end() && !responses->is_null()) {
    if (!responses->is_array()) return bad("txn.responses: expected an array");
    for (size_t i = 0; i < responses->size(); ++i) {
      const Json& op = (*responses)[i];
      std::string path = fmt::format("txn.responses[{}]", i);
      if (!op.is_object()) return bad(path + ": expected an object");
      auto range = objectField(op, "response_range", path, /*required=*/false);
      if (!range) return range.status();
      if (*range == nullptr) continue;
      auto kvs = parseKvs(**range, path + ".response_range");
      if (!kvs) return kvs.status();
      for (auto& kv : *kvs) result.range_kvs.push_back(std::move(kv));
    }
  }
  return result;
}

Result<LeaseGrant> parseLeaseGrantResponse(std::string_view body) {
  auto json = parseObject(body);
  if (!json) return json.status();
  if (auto error = gatewayError(*json)) return *error;
  LeaseGrant grant;
  auto id = int64Field(*json, "ID", "lease");
  if (!id) return id.status();
  auto ttl = int64Field(*json, "TTL", "lease");
  if (!ttl) return ttl.status();
  if (*id == 0 || *ttl <= 0) return bad("lease: no ID or TTL granted");
  grant.id = *id;
  grant.ttl_seconds = *ttl;
  return grant;
}

Result<int64_t> parseLeaseKeepAliveResponse(std::string_view body) {
  // A streaming RPC through the gateway: one {"result":{...}} line per keepalive sent.
  size_t newline = body.find('\n');
  auto json = parseObject(body.substr(0, newline));
  if (!json) return json.status();
  if (auto error = gatewayError(*json)) return *error;
  auto result = objectField(*json, "result", "keepalive", /*required=*/true);
  if (!result) return result.status();
  return int64Field(**result, "TTL", "keepalive.result");
}

Result<WatchResponse> parseWatchLine(std::string_view line) {
  auto json = parseObject(line);
  if (!json) return json.status();
  if (auto error = gatewayError(*json)) return *error;
  auto result = objectField(*json, "result", "watch", /*required=*/true);
  if (!result) return result.status();
  const Json& r = **result;
  WatchResponse response;
  auto revision = headerRevision(r, "watch.result");
  if (!revision) return revision.status();
  response.revision = *revision;
  auto watch_id = int64Field(r, "watch_id", "watch.result");
  if (!watch_id) return watch_id.status();
  response.watch_id = *watch_id;
  auto created = boolField(r, "created", "watch.result");
  if (!created) return created.status();
  response.created = *created;
  auto canceled = boolField(r, "canceled", "watch.result");
  if (!canceled) return canceled.status();
  response.canceled = *canceled;
  auto compact = int64Field(r, "compact_revision", "watch.result");
  if (!compact) return compact.status();
  response.compact_revision = *compact;
  if (auto reason = r.find("cancel_reason"); reason != r.end() && reason->is_string()) {
    response.cancel_reason = reason->get<std::string>();
  }
  auto events = r.find("events");
  if (events != r.end() && !events->is_null()) {
    if (!events->is_array()) return bad("watch.result.events: expected an array");
    response.events.reserve(events->size());
    for (size_t i = 0; i < events->size(); ++i) {
      const Json& e = (*events)[i];
      std::string path = fmt::format("watch.result.events[{}]", i);
      if (!e.is_object()) return bad(path + ": expected an object");
      WatchEvent event;
      auto type = e.find("type");
      if (type == e.end() || type->is_null() || *type == "PUT" || *type == 0) {
        event.type = EventType::kPut;
      } else if (*type == "DELETE" || *type == 1) {
        event.type = EventType::kDelete;
      } else {
        return bad(path + ".type: expected PUT or DELETE");
      }
      auto kv = objectField(e, "kv", path, /*required=*/true);
      if (!kv) return kv.status();
      auto parsed = parseKeyValue(**kv, path + ".kv");
      if (!parsed) return parsed.status();
      event.kv = std::move(*parsed);
      response.events.push_back(std::move(event));
    }
  }
  return response;
}

}  // namespace rdmesh::xds::etcd
