// The admission.k8s.io AdmissionReview envelope (v1, and v1beta1 answered in kind): parsing the
// API server's request and writing the response. Knows nothing of pods or injection.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rdmesh/common/status.h"

namespace rdmesh::xds_server::webhook {

inline constexpr std::string_view kAdmissionV1 = "admission.k8s.io/v1";
inline constexpr std::string_view kAdmissionV1beta1 = "admission.k8s.io/v1beta1";
// The API server caps an object at ~1.5 MiB (etcd's request limit); a review carries the object
// (and, on UPDATE, the old one) plus envelope. Anything larger is not from an API server.
inline constexpr size_t kMaxAdmissionReviewBytes = size_t{4} << 20;
// A pod spec nests ~14 levels (affinity terms) below the review; 64 leaves room and still
// refuses "[[[[...".
inline constexpr int kMaxAdmissionReviewDepth = 64;

struct AdmissionRequest {
  std::string api_version;   // kAdmissionV1 or kAdmissionV1beta1; the response uses the same
  std::string uid;           // echoed in the response
  std::string kind;          // request.kind.kind, e.g. "Pod"
  std::string resource;      // request.resource.resource, e.g. "pods"
  std::string sub_resource;  // request.subResource ("" for the object itself)
  std::string namespace_name;
  std::string name;       // may be empty (generateName)
  std::string operation;  // CREATE, UPDATE, DELETE, CONNECT
  bool dry_run = false;
  nlohmann::json object;  // request.object (null when absent)
};

// A request the parser refused still gets an answer: the uid and version when they were
// readable, so the API server can match the response and report `message`.
struct AdmissionParseError {
  std::string api_version;  // kAdmissionV1 when unknown
  std::string uid;          // "" when unknown
  std::string message;
};

// Parses an AdmissionReview request body. On failure, the error says which field and why.
struct ParsedAdmissionReview {
  std::optional<AdmissionRequest> request;
  std::optional<AdmissionParseError> error;
};
ParsedAdmissionReview parseAdmissionReview(std::string_view body);

struct AdmissionResponse {
  bool allowed = true;
  // RFC 6902 operations (a JSON array), sent base64-encoded with patchType JSONPatch.
  std::optional<nlohmann::json> patch;
  // status.code/message: for refusals and for requests the webhook could not read.
  int status_code = 0;
  std::string status_message;
  // Shown to the kubectl user (v1 only; dropped for v1beta1, which has no warnings).
  std::vector<std::string> warnings;
  // Recorded in the audit log (auditAnnotations), keys without the webhook's prefix.
  std::vector<std::pair<std::string, std::string>> audit_annotations;
};

// {"apiVersion": api_version, "kind": "AdmissionReview", "response": {...}}
std::string renderAdmissionReview(std::string_view api_version, std::string_view uid,
                                  const AdmissionResponse& response);

}  // namespace rdmesh::xds_server::webhook
