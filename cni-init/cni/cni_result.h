// What rdmesh-cni prints on stdout: the spec's error object, the VERSION answer, and the result of
// ADD (the previous plugin's result, passed through).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "cni_spec.h"

namespace rdmesh::cni {

// {"cniVersion", "code", "msg", "details"} ("details" left out when empty).
std::string errorJson(const CniError& error, std::string_view cni_version);

// {"cniVersion": "1.0.0", "supportedVersions": [...]}.
std::string versionJson();

// The result ADD prints: prevResult unchanged (same keys, same order) when it is already in the
// configuration's version; without a cniVersion it gets the configuration's; in another supported
// version it is converted (the only difference between 0.3.0 and 1.0.0 results is ips[].version,
// dropped by 1.0.0). Code 1 when prevResult's version is one rdmesh-cni does not know.
CniOr<nlohmann::ordered_json> passThroughResult(const nlohmann::ordered_json& prev_result,
                                                std::string_view cni_version);

}  // namespace rdmesh::cni
