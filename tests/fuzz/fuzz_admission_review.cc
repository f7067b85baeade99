// libFuzzer target for the injection webhook's input: an AdmissionReview body from the network.
// Beyond "never crash" it checks the properties the API server relies on: a refusal has a
// message; every answer is valid JSON echoing the uid; an injection's JSONPatch applies to the
// pod it was made for, and the patched pod is never injected again (idempotence).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "admission_review.h"
#include "sidecar_injector.h"

namespace {

using rdmesh::xds_server::webhook::AdmissionResponse;
using rdmesh::xds_server::webhook::InjectionConfig;
using rdmesh::xds_server::webhook::InjectionDecision;
using rdmesh::xds_server::webhook::SidecarInjector;

[[noreturn]] void failProperty(const char* what, std::string_view detail) {
  std::fprintf(stderr, "fuzz_admission_review: %s\n%.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

const SidecarInjector& injector() {
  static const SidecarInjector instance([] {
    InjectionConfig config;
    config.image = "registry.example/rdmesh-proxy:0.1.0";
    config.xds_address = "rdmesh-xds.rdmesh-system.svc:15012";
    config.xds_server_name = "rdmesh-xds.rdmesh-system.svc";
    config.version = "0.1.0";
    return config;
  }());
  return instance;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rdmesh::xds_server::webhook;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  ParsedAdmissionReview parsed = parseAdmissionReview(body);
  if (!parsed.request) {
    if (!parsed.error || parsed.error->message.empty()) failProperty("refused without a message", body);
    AdmissionResponse refusal;
    refusal.allowed = false;
    refusal.status_code = 400;
    refusal.status_message = parsed.error->message;
    const auto reply = nlohmann::json::parse(
        renderAdmissionReview(parsed.error->api_version, parsed.error->uid, refusal), nullptr, false);
    if (reply.is_discarded()) failProperty("refusal is not JSON", body);
    return 0;
  }
  InjectionDecision decision = injector().decide(*parsed.request);
  AdmissionResponse response;
  if (decision.inject) {
    nlohmann::json patched;
    try {
      patched = parsed.request->object.patch(decision.patch);
    } catch (const nlohmann::json::exception& e) {
      failProperty("the JSONPatch does not apply to its pod", e.what());
    }
    AdmissionRequest again = *parsed.request;
    again.object = std::move(patched);
    if (injector().decide(again).inject) failProperty("a patched pod is injected again", body);
    response.patch = decision.patch;
  } else if (decision.reason.empty()) {
    failProperty("skipped without a reason", body);
  }
  const auto reply = nlohmann::json::parse(
      renderAdmissionReview(parsed.request->api_version, parsed.request->uid, response), nullptr,
      false);
  if (reply.is_discarded() || reply["response"]["uid"] != parsed.request->uid) {
    failProperty("the answer does not echo the uid", body);
  }
  return 0;
}
