#include "cni_result.h"

#include "cni_version.h"

namespace rdmesh::cni {

using Json = nlohmann::ordered_json;

std::string errorJson(const CniError& error, std::string_view cni_version) {
  Json out;
  out["cniVersion"] = cni_version;
  out["code"] = error.code;
  out["msg"] = error.msg;
  if (!error.details.empty()) out["details"] = error.details;
  // Replace, never throw, on bytes that are not UTF-8 (details quote what the runtime gave us).
  return out.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string versionJson() {
  Json out;
  out["cniVersion"] = kNewestVersion;
  out["supportedVersions"] = Json::array();
  for (auto v : kSupportedVersions) out["supportedVersions"].push_back(v);
  return out.dump();
}

CniOr<Json> passThroughResult(const Json& prev_result, std::string_view cni_version) {
  auto version = prev_result.find("cniVersion");
  if (version != prev_result.end() && version->is_string() && *version == cni_version) {
    return prev_result;
  }
  if (version != prev_result.end() &&
      (!version->is_string() || !isSupportedVersion(version->get_ref<const std::string&>()))) {
    return CniError{kErrIncompatibleVersion, "incompatible prevResult version",
                    "prevResult has cniVersion " + version->dump().substr(0, 100) +
                        ", which rdmesh-cni cannot convert to " + std::string(cni_version)};
  }
  // cniVersion first, then every other key in its original order.
  Json out = Json::object();
  out["cniVersion"] = cni_version;
  for (auto it = prev_result.begin(); it != prev_result.end(); ++it) {
    if (it.key() != "cniVersion") out[it.key()] = it.value();
  }
  const bool has_ip_version = !versionAtLeast(cni_version, "1.0.0");
  if (auto ips = out.find("ips"); ips != out.end() && ips->is_array()) {
    for (Json& entry : *ips) {
      if (!entry.is_object()) continue;
      if (!has_ip_version) {
        entry.erase("version");
      } else if (!entry.contains("version")) {
        const auto address = entry.find("address");
        const bool v6 = address != entry.end() && address->is_string() &&
                        address->get_ref<const std::string&>().find(':') != std::string::npos;
        entry["version"] = v6 ? "6" : "4";
      }
    }
  }
  return out;
}

}  // namespace rdmesh::cni
