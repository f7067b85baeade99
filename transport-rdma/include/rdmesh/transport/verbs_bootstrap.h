// The verbs backend's bootstrap messages (wire::VerbsQpInfo, wire::VerbsReady): encoders and the
// parsers that face the network. They know nothing of libibverbs, so they are tested and fuzzed
// on any host.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "rdmesh/common/status.h"
#include "rdmesh/transport/wire.h"

namespace rdmesh::transport {

struct VerbsPeerInfo {
  bool offer = false;  // false: declined, see reason
  uint8_t path_mtu = 0;
  uint32_t qp_num = 0;
  uint32_t psn = 0;
  std::array<uint8_t, 16> gid{};
  uint64_t area_addr = 0;
  uint64_t area_bytes = 0;
  uint32_t area_rkey = 0;
  uint32_t recv_wqes = 0;
  std::string reason;
};

std::vector<std::byte> encodeVerbsQpInfo(const VerbsPeerInfo& info);
// Bytes a complete message occupies given its fixed part, or an error.
Result<size_t> verbsQpInfoSize(std::span<const std::byte> header_bytes);
// Validates magic, version, field ranges and the reason text of one complete message.
Result<VerbsPeerInfo> parseVerbsQpInfo(std::span<const std::byte> bytes);

struct VerbsReadyInfo {
  bool ok = false;
  std::string reason;
};
std::vector<std::byte> encodeVerbsReady(const VerbsReadyInfo& ready);
Result<size_t> verbsReadySize(std::span<const std::byte> header_bytes);
Result<VerbsReadyInfo> parseVerbsReady(std::span<const std::byte> bytes);

// A GID of the form ::ffff:a.b.c.d (RoCEv2 over IPv4).
bool isIpv4MappedGid(std::span<const uint8_t, 16> gid);

}  // namespace rdmesh::transport
