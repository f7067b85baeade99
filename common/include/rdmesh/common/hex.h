// Lowercase hex for binary blobs carried in JSON (node.sock: Hellos travel as hex).
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rdmesh/common/status.h"

namespace rdmesh {

std::string toHex(std::span<const std::byte> bytes);
// Accepts upper and lower case; an odd length or a non-hex character is an error.
Result<std::vector<std::byte>> fromHex(std::string_view text);

}  // namespace rdmesh
