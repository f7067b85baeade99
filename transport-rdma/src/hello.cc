#include "rdmesh/transport/hello.h"

#include <fmt/format.h>

#include <cstring>

namespace rdmesh::transport {

bool isValidNodeName(std::string_view name) {
  if (name.empty() || name.size() > wire::kMaxNodeNameBytes) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

std::vector<std::byte> encodeHello(const Hello& hello) {
  wire::HelloHeader h{};
  h.magic = wire::kMagic;
  h.version_min = hello.version_min;
  h.version_max = hello.version_max;
  h.fabric_kind = static_cast<uint16_t>(hello.fabric);
  h.node_name_bytes = static_cast<uint16_t>(hello.node_name.size());
  h.max_streams = hello.geometry.max_streams;
  h.ring_bytes = hello.geometry.ring_bytes;
  h.control_ring_bytes = hello.geometry.control_ring_bytes;
  h.recv_depth = hello.geometry.recv_depth;
  h.keepalive_timeout_ms = hello.geometry.keepalive_timeout_ms;
  std::vector<std::byte> out(sizeof(h) + hello.node_name.size());
  std::memcpy(out.data(), &h, sizeof(h));
  std::memcpy(out.data() + sizeof(h), hello.node_name.data(), hello.node_name.size());
  return out;
}

Result<size_t> helloSize(std::span<const std::byte> header_bytes) {
  if (header_bytes.size() < sizeof(wire::HelloHeader)) {
    return protocolError("hello: truncated header");
  }
  wire::HelloHeader h{};
  std::memcpy(&h, header_bytes.data(), sizeof(h));
  if (h.magic != wire::kMagic) {
    return protocolError(fmt::format("hello: bad magic {:#010x} (not an rdmesh peer?)", h.magic));
  }
  if (h.node_name_bytes == 0 || h.node_name_bytes > wire::kMaxNodeNameBytes) {
    return protocolError(fmt::format("hello: node name of {} bytes", h.node_name_bytes));
  }
  return sizeof(h) + h.node_name_bytes;
}

namespace {
bool isPowerOfTwo(uint32_t v) {
  return v != 0 && (v & (v - 1)) == 0;
}
}  // namespace

Result<Hello> parseHello(std::span<const std::byte> bytes) {
  auto size = helloSize(bytes);
  if (!size) return size.status();
  if (bytes.size() != *size) {
    return protocolError(fmt::format("hello: {} bytes, expected {}", bytes.size(), *size));
  }
  wire::HelloHeader h{};
  std::memcpy(&h, bytes.data(), sizeof(h));
  Hello hello;
  hello.version_min = h.version_min;
  hello.version_max = h.version_max;
  if (h.version_min == 0 || h.version_min > h.version_max) {
    return protocolError(
        fmt::format("hello: bad version range {}..{}", h.version_min, h.version_max));
  }
  if (h.fabric_kind < 1 || h.fabric_kind > wire::kMaxFabricKind) {
    return protocolError(fmt::format("hello: unknown fabric kind {}", h.fabric_kind));
  }
  hello.fabric = static_cast<wire::FabricKind>(h.fabric_kind);
  hello.node_name.assign(reinterpret_cast<const char*>(bytes.data()) + sizeof(h),
                         h.node_name_bytes);
  if (!isValidNodeName(hello.node_name)) {
    return protocolError("hello: node name has characters outside [a-z0-9.-]");
  }
  SessionGeometry& g = hello.geometry;
  g.max_streams = h.max_streams;
  g.ring_bytes = h.ring_bytes;
  g.control_ring_bytes = h.control_ring_bytes;
  g.recv_depth = h.recv_depth;
  g.keepalive_timeout_ms = h.keepalive_timeout_ms;
  if (g.max_streams == 0 || g.max_streams > wire::kMaxSlots) {
    return protocolError(
        fmt::format("hello: max_streams {} not in 1..{}", g.max_streams, wire::kMaxSlots));
  }
  if (!isPowerOfTwo(g.ring_bytes) || g.ring_bytes < wire::kMinRingBytes ||
      g.ring_bytes > wire::kMaxRingBytes) {
    return protocolError(fmt::format("hello: ring_bytes {} is not a power of two in {}..{}",
                                     g.ring_bytes, wire::kMinRingBytes, wire::kMaxRingBytes));
  }
  if (g.control_ring_bytes < wire::kMinControlRingBytes ||
      g.control_ring_bytes > wire::kMaxControlRingBytes) {
    return protocolError(fmt::format("hello: control_ring_bytes {} not in {}..{}",
                                     g.control_ring_bytes, wire::kMinControlRingBytes,
                                     wire::kMaxControlRingBytes));
  }
  if (g.recv_depth < wire::kMinRecvDepth || g.recv_depth > wire::kMaxRecvDepth) {
    return protocolError(fmt::format("hello: recv_depth {} not in {}..{}", g.recv_depth,
                                     wire::kMinRecvDepth, wire::kMaxRecvDepth));
  }
  if (g.keepalive_timeout_ms == 0) return protocolError("hello: keepalive_timeout_ms is 0");
  return hello;
}

Result<uint16_t> negotiateVersion(const Hello& local, const Hello& remote) {
  uint16_t high = std::min(local.version_max, remote.version_max);
  uint16_t low = std::max(local.version_min, remote.version_min);
  if (high < low) {
    return protocolError(fmt::format("no common protocol version: we speak {}..{}, peer {}..{}",
                                     local.version_min, local.version_max, remote.version_min,
                                     remote.version_max));
  }
  return high;
}

}  // namespace rdmesh::transport
