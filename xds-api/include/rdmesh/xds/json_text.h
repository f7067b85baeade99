// Parsing JSON text that came from the network: size and nesting caps first, then nlohmann's
// parser without exceptions escaping. Shared by the xDS codec and the injection webhook.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string_view>

#include "rdmesh/common/status.h"

namespace rdmesh::xds {

struct JsonTextLimits {
  size_t max_bytes = 0;
  // Arrays/objects nested deeper than this are refused before parsing ("[[[[..." costs nothing).
  int max_depth = 0;
};

// Errors read "<what>: ..." and name the size, the depth or nlohmann's position and reason.
Result<nlohmann::json> parseBoundedJson(std::string_view text, std::string_view what,
                                        JsonTextLimits limits);

}  // namespace rdmesh::xds
