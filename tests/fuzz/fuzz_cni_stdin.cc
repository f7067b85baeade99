// libFuzzer target for what rdmesh-cni reads: its stdin (network configuration + prevResult) for
// each command, CNI_ARGS, and the node agent's replies. The first byte picks the mode, the rest
// is the input. Beyond "never crash", it checks: every rejection carries a code the spec lets
// that stage use and prints as a valid error object; every accepted ADD/CHECK has pod addresses
// that parse; a result already in the configuration's version passes through unchanged.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "cni_node_messages.h"
#include "cni_request.h"
#include "cni_result.h"
#include "rdmesh/common/address.h"

namespace {

using namespace rdmesh::cni;
using Json = nlohmann::ordered_json;

[[noreturn]] void failProperty(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_cni_stdin: %s\n%s\n", what, detail.c_str());
  std::abort();
}

void checkError(const CniError& error) {
  switch (error.code) {
    case kErrIncompatibleVersion:
    case kErrInvalidEnvironment:
    case kErrDecodingFailure:
    case kErrInvalidNetworkConfig:
      break;
    default:
      failProperty("parse error with an unexpected code", std::to_string(error.code));
  }
  const std::string text = errorJson(error, "1.0.0");
  Json parsed = Json::parse(text, nullptr, false);
  if (parsed.is_discarded() || parsed["code"] != error.code || !parsed["msg"].is_string())
    failProperty("error object does not round-trip", text);
}

void fuzzStdin(CniCommand command, const std::string& input) {
  static const char* kNames[] = {"ADD", "DEL", "CHECK", "VERSION"};
  CniEnvironment env{kNames[static_cast<int>(command)],    "fuzz-1", "/proc/1/ns/net", "eth0",
                     "K8S_POD_NAME=p;K8S_POD_NAMESPACE=n", ""};
  auto parsed = parseRequest(env, input);
  (void)errorVersionFor(input);
  if (isError(parsed)) {
    checkError(std::get<CniError>(parsed));
    return;
  }
  const CniRequest& req = std::get<CniRequest>(parsed);
  for (const auto& ip : req.pod_ips) {
    if (!rdmesh::InetAddress::fromIp(ip, 0).isOk()) failProperty("pod address does not parse", ip);
  }
  if (command != CniCommand::kAdd && command != CniCommand::kCheck) return;
  if (req.pod_ips.empty() || !req.prev_result)
    failProperty("ADD/CHECK accepted without addresses", input);
  auto out = passThroughResult(*req.prev_result, req.config.cni_version);
  if (isError(out)) {
    if (std::get<CniError>(out).code != kErrIncompatibleVersion)
      failProperty("pass-through failed with a code other than 1", input);
    return;
  }
  const Json& result = std::get<Json>(out);
  auto version = req.prev_result->find("cniVersion");
  if (version != req.prev_result->end() && *version == req.config.cni_version &&
      result != *req.prev_result) {
    failProperty("result in the same version was changed", input);
  }
  if (result["cniVersion"] != req.config.cni_version) failProperty("result version differs", input);
}

void fuzzReplies(const std::string& input) {
  using rdmesh::StatusCode;
  const auto allowed = [&](const rdmesh::Status& s) {
    if (s.code() != StatusCode::kProtocolError && s.code() != StatusCode::kInvalidArgument)
      failProperty("reply rejected with an unexpected code", s.message());
  };
  if (auto r = decodeReply(input); !r) allowed(r.status());
  if (auto r = decodePodAddReply(input); !r) allowed(r.status());
  if (auto r = decodePodListReply(input); !r) allowed(r.status());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 6) {
    case 0:
      fuzzStdin(CniCommand::kAdd, input);
      break;
    case 1:
      fuzzStdin(CniCommand::kDel, input);
      break;
    case 2:
      fuzzStdin(CniCommand::kCheck, input);
      break;
    case 3:
      fuzzStdin(CniCommand::kVersion, input);
      break;
    case 4:
      fuzzReplies(input);
      break;
    default:
      if (auto args = parseCniArgs(input); isError(args)) {
        if (std::get<CniError>(args).code != kErrInvalidEnvironment)
          failProperty("CNI_ARGS rejected with a code other than 4", input);
      }
      break;
  }
  return 0;
}
