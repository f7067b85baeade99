// "5432,6379": the spelling of port lists in annotations and environment variables
// (rdmesh.io/exclude-outbound-ports, RDMESH_EXCLUDE_OUTBOUND_PORTS).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "rdmesh/common/status.h"

namespace rdmesh {

// Ports 1..65535, comma-separated, spaces around entries allowed; duplicates dropped, order
// kept. Errors name the bad entry.
Result<std::vector<uint16_t>> parsePortList(std::string_view text);

}  // namespace rdmesh
