// The bootstrap Hello: what each side announces before the fabric carries the session.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "rdmesh/common/status.h"
#include "rdmesh/transport/wire.h"

namespace rdmesh::transport {

// Receive-area geometry and liveness settings of one side, as announced in its Hello.
struct SessionGeometry {
  uint32_t max_streams = 1024;
  uint32_t ring_bytes = 1024 * 1024;
  uint32_t control_ring_bytes = 256 * 1024;
  uint32_t recv_depth = 4096;
  uint32_t keepalive_timeout_ms = 15000;

  uint64_t receiveAreaBytes() const {
    return wire::receiveAreaBytes(control_ring_bytes, max_streams, ring_bytes);
  }
};

struct Hello {
  uint16_t version_min = wire::kVersionMin;
  uint16_t version_max = wire::kVersionMax;
  wire::FabricKind fabric = wire::FabricKind::kTcp;
  std::string node_name;
  SessionGeometry geometry;
};

std::vector<std::byte> encodeHello(const Hello& hello);

// Bytes a complete Hello occupies given its header (header + node name), or an error.
Result<size_t> helloSize(std::span<const std::byte> header_bytes);

// Validates everything a peer could get wrong: magic, sizes, geometry limits, name characters.
Result<Hello> parseHello(std::span<const std::byte> bytes);

// Highest version both sides speak, or an error naming both ranges.
Result<uint16_t> negotiateVersion(const Hello& local, const Hello& remote);
// The same for any versioned exchange (`what`: "protocol", "link", ...).
Result<uint16_t> negotiateVersionRange(uint16_t our_min, uint16_t our_max, uint16_t their_min,
                                       uint16_t their_max, const char* what);

// Node names: 1..253 bytes of [a-z0-9.-] (a DNS subdomain, as Kubernetes node names are).
bool isValidNodeName(std::string_view name);

}  // namespace rdmesh::transport
