#include "admission_review.h"

#include <fmt/format.h>

#include "base64.h"
#include "rdmesh/xds/json_text.h"

namespace rdmesh::xds_server::webhook {
namespace {

using Json = nlohmann::json;

// The uid is a UUID in practice; anything printable up to this length is echoed back.
constexpr size_t kMaxUidBytes = 128;
constexpr size_t kMaxNameBytes = 253;

const Json* member(const Json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

bool isPrintable(std::string_view text) {
  for (char c : text) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

// A string member of at most `max` printable bytes; absent = "" unless required.
Status readString(const Json& object, std::string_view key, bool required, size_t max,
                  std::string_view path, std::string* out) {
  const Json* value = member(object, key);
  if (value == nullptr) {
    return required ? invalidArgument(fmt::format("{}.{}: missing", path, key)) : Status::ok();
  }
  if (!value->is_string()) {
    return invalidArgument(fmt::format("{}.{}: must be a string", path, key));
  }
  const auto& text = value->get_ref<const std::string&>();
  if (text.size() > max || !isPrintable(text)) {
    return invalidArgument(
        fmt::format("{}.{}: must be printable text of at most {} bytes", path, key, max));
  }
  *out = text;
  return Status::ok();
}

Status readRequest(const Json& request, AdmissionRequest* out) {
  if (!request.is_object()) return invalidArgument("request: must be an object");
  if (Status s = readString(request, "uid", true, kMaxUidBytes, "request", &out->uid); !s) return s;
  if (out->uid.empty()) return invalidArgument("request.uid: must not be empty");
  const Json* kind = member(request, "kind");
  if (kind == nullptr) return invalidArgument("request.kind: missing");
  if (Status s = readString(*kind, "kind", true, kMaxNameBytes, "request.kind", &out->kind); !s)
    return s;
  if (const Json* resource = member(request, "resource"); resource != nullptr) {
    if (Status s = readString(*resource, "resource", false, kMaxNameBytes, "request.resource",
                              &out->resource);
        !s)
      return s;
  }
  if (Status s =
          readString(request, "subResource", false, kMaxNameBytes, "request", &out->sub_resource);
      !s)
    return s;
  if (Status s =
          readString(request, "namespace", false, kMaxNameBytes, "request", &out->namespace_name);
      !s)
    return s;
  if (Status s = readString(request, "name", false, kMaxNameBytes, "request", &out->name); !s)
    return s;
  if (Status s = readString(request, "operation", true, kMaxNameBytes, "request", &out->operation);
      !s)
    return s;
  if (const Json* dry_run = member(request, "dryRun"); dry_run != nullptr) {
    if (!dry_run->is_boolean()) return invalidArgument("request.dryRun: must be true or false");
    out->dry_run = dry_run->get<bool>();
  }
  if (const Json* object = member(request, "object"); object != nullptr) {
    if (!object->is_object()) return invalidArgument("request.object: must be an object");
    out->object = *object;
  }
  return Status::ok();
}

}  // namespace

ParsedAdmissionReview parseAdmissionReview(std::string_view body) {
  ParsedAdmissionReview parsed;
  auto fail = [&](std::string message, std::string api_version = std::string(kAdmissionV1),
                  std::string uid = {}) {
    parsed.error = AdmissionParseError{std::move(api_version), std::move(uid), std::move(message)};
    return std::move(parsed);
  };
  Result<Json> json = xds::parseBoundedJson(body, "AdmissionReview",
                                            {kMaxAdmissionReviewBytes, kMaxAdmissionReviewDepth});
  if (!json) return fail(json.status().message());
  if (!json->is_object()) return fail("AdmissionReview: must be a JSON object");

  std::string api_version;
  if (Status s =
          readString(*json, "apiVersion", true, kMaxNameBytes, "AdmissionReview", &api_version);
      !s) {
    return fail(s.message());
  }
  if (api_version != kAdmissionV1 && api_version != kAdmissionV1beta1) {
    return fail(fmt::format("AdmissionReview.apiVersion: '{}' is not {} or {}", api_version,
                            kAdmissionV1, kAdmissionV1beta1));
  }
  std::string kind;
  if (Status s = readString(*json, "kind", true, kMaxNameBytes, "AdmissionReview", &kind); !s) {
    return fail(s.message(), api_version);
  }
  if (kind != "AdmissionReview") {
    return fail(fmt::format("AdmissionReview.kind: '{}' is not AdmissionReview", kind),
                api_version);
  }
  const Json* request = member(*json, "request");
  if (request == nullptr) return fail("AdmissionReview.request: missing", api_version);

  AdmissionRequest out;
  out.api_version = api_version;
  if (Status s = readRequest(*request, &out); !s) {
    // Echo the uid when it was readable, so the API server pairs the error with its request.
    std::string uid;
    if (const Json* u = member(*request, "uid");
        u != nullptr && u->is_string() && u->get_ref<const std::string&>().size() <= kMaxUidBytes &&
        isPrintable(u->get_ref<const std::string&>())) {
      uid = u->get<std::string>();
    }
    return fail(s.message(), api_version, uid);
  }
  parsed.request = std::move(out);
  return parsed;
}

std::string renderAdmissionReview(std::string_view api_version, std::string_view uid,
                                  const AdmissionResponse& response) {
  Json body = {{"uid", uid}, {"allowed", response.allowed}};
  if (response.patch) {
    body["patchType"] = "JSONPatch";
    body["patch"] = base64Encode(response.patch->dump());
  }
  if (response.status_code != 0 || !response.status_message.empty()) {
    Json status = Json::object();
    if (response.status_code != 0) status["code"] = response.status_code;
    if (!response.status_message.empty()) status["message"] = response.status_message;
    body["status"] = std::move(status);
  }
  if (!response.warnings.empty() && api_version == kAdmissionV1) {
    body["warnings"] = response.warnings;
  }
  if (!response.audit_annotations.empty()) {
    Json annotations = Json::object();
    for (const auto& [key, value] : response.audit_annotations) annotations[key] = value;
    body["auditAnnotations"] = std::move(annotations);
  }
  Json review = {{"apiVersion", api_version}, {"kind", "AdmissionReview"}, {"response", body}};
  return review.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace rdmesh::xds_server::webhook
