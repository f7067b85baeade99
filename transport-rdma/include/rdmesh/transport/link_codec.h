// Encoders and the network-facing parsers of the node-pair link (link_wire.h): the LinkHello and
// the tcp link's frame headers. Pure functions, so they are unit-tested and fuzzed on any host.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "rdmesh/common/status.h"
#include "rdmesh/transport/link_wire.h"

namespace rdmesh::transport {

struct LinkHello {
  uint16_t version_min = wire::link::kVersionMin;
  uint16_t version_max = wire::link::kVersionMax;
  wire::FabricKind fabric = wire::FabricKind::kTcp;  // kVerbs or kTcp
  std::string node_name;
};

std::vector<std::byte> encodeLinkHello(const LinkHello& hello);
// Bytes a complete LinkHello occupies given its header, or a protocol error (a sidecar's session
// Hello gets its own message: it dialed the wrong port).
Result<size_t> linkHelloSize(std::span<const std::byte> header_bytes);
// Validates magic, version range, fabric kind, reserved bits and the node name.
Result<LinkHello> parseLinkHello(std::span<const std::byte> bytes);
// Highest version both speak, or an error naming both ranges.
Result<uint16_t> negotiateLinkVersion(const LinkHello& local, const LinkHello& remote);

// Structure of one tcp link frame header (type, reserved bits, lengths); whether its key and
// range name memory we registered is checked by the link against its domain.
Status checkLinkFrameHeader(const wire::link::LinkFrameHeader& header);

}  // namespace rdmesh::transport
