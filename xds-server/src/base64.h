// Standard base64 (RFC 4648, with padding), as Kubernetes and etcd's JSON gateway use it.
#pragma once

#include <string>
#include <string_view>

#include "rdmesh/common/status.h"

namespace rdmesh::xds_server {

std::string base64Encode(std::string_view bytes);
// Refuses anything but the standard alphabet with padding (no whitespace, no URL alphabet).
Result<std::string> base64Decode(std::string_view text);

}  // namespace rdmesh::xds_server
