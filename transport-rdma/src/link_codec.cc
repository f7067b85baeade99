#include "rdmesh/transport/link_codec.h"

#include <fmt/format.h>

#include <cstring>

#include "rdmesh/transport/hello.h"

namespace rdmesh::transport {

namespace wl = wire::link;

std::vector<std::byte> encodeLinkHello(const LinkHello& hello) {
  wl::LinkHelloHeader h{};
  h.magic = wl::kHelloMagic;
  h.version_min = hello.version_min;
  h.version_max = hello.version_max;
  h.fabric_kind = static_cast<uint16_t>(hello.fabric);
  h.node_name_bytes = static_cast<uint16_t>(hello.node_name.size());
  std::vector<std::byte> out(sizeof(h) + hello.node_name.size());
  std::memcpy(out.data(), &h, sizeof(h));
  std::memcpy(out.data() + sizeof(h), hello.node_name.data(), hello.node_name.size());
  return out;
}

Result<size_t> linkHelloSize(std::span<const std::byte> header_bytes) {
  if (header_bytes.size() < sizeof(wl::LinkHelloHeader)) {
    return protocolError("link hello: truncated header");
  }
  wl::LinkHelloHeader h{};
  std::memcpy(&h, header_bytes.data(), sizeof(h));
  if (h.magic == wire::kMagic) {
    return protocolError(
        "link hello: the peer sent a sidecar session Hello (a standalone rdmesh-proxy, not a node "
        "agent, answers on this address)");
  }
  if (h.magic != wl::kHelloMagic) {
    return protocolError(
        fmt::format("link hello: bad magic {:#010x} (not an rdmesh node agent?)", h.magic));
  }
  if (h.node_name_bytes == 0 || h.node_name_bytes > wire::kMaxNodeNameBytes) {
    return protocolError(fmt::format("link hello: node name of {} bytes", h.node_name_bytes));
  }
  return sizeof(h) + h.node_name_bytes;
}

Result<LinkHello> parseLinkHello(std::span<const std::byte> bytes) {
  auto size = linkHelloSize(bytes);
  if (!size) return size.status();
  if (bytes.size() != *size) {
    return protocolError(fmt::format("link hello: {} bytes, expected {}", bytes.size(), *size));
  }
  wl::LinkHelloHeader h{};
  std::memcpy(&h, bytes.data(), sizeof(h));
  if (h.version_min == 0 || h.version_min > h.version_max) {
    return protocolError(
        fmt::format("link hello: bad version range {}..{}", h.version_min, h.version_max));
  }
  if (h.fabric_kind != static_cast<uint16_t>(wire::FabricKind::kTcp) &&
      h.fabric_kind != static_cast<uint16_t>(wire::FabricKind::kVerbs)) {
    return protocolError(
        fmt::format("link hello: fabric kind {} (a link is verbs or tcp)", h.fabric_kind));
  }
  if (h.reserved != 0) return protocolError("link hello: reserved field is not zero");
  LinkHello hello;
  hello.version_min = h.version_min;
  hello.version_max = h.version_max;
  hello.fabric = static_cast<wire::FabricKind>(h.fabric_kind);
  hello.node_name.assign(reinterpret_cast<const char*>(bytes.data()) + sizeof(h),
                         h.node_name_bytes);
  if (!isValidNodeName(hello.node_name)) {
    return protocolError("link hello: node name has characters outside [a-z0-9.-]");
  }
  return hello;
}

Result<uint16_t> negotiateLinkVersion(const LinkHello& local, const LinkHello& remote) {
  uint16_t high = std::min(local.version_max, remote.version_max);
  uint16_t low = std::max(local.version_min, remote.version_min);
  if (high < low) {
    return protocolError(fmt::format("no common link version: we speak {}..{}, peer {}..{}",
                                     local.version_min, local.version_max, remote.version_min,
                                     remote.version_max));
  }
  return high;
}

Status checkLinkFrameHeader(const wl::LinkFrameHeader& h) {
  if (h.reserved0 != 0 || h.reserved1 != 0) {
    return protocolError("link frame: reserved fields are not zero");
  }
  switch (static_cast<wl::FrameType>(h.type)) {
    case wl::FrameType::kWrite:
      if (h.length > wl::kMaxWriteBytes) {
        return protocolError(fmt::format("link frame: write of {} bytes (at most {})", h.length,
                                         wl::kMaxWriteBytes));
      }
      if (wl::isLinkImm(h.imm)) {
        return protocolError(
            fmt::format("link frame: immediate {:#x} uses the link's reserved type", h.imm));
      }
      return {};
    case wl::FrameType::kControl:
      if (h.length == 0 || h.length > wl::kMaxControlBytes) {
        return protocolError(fmt::format("link frame: control message of {} bytes (1..{})",
                                         h.length, wl::kMaxControlBytes));
      }
      if (h.imm != 0 || h.key != 0 || h.offset != 0) {
        return protocolError("link frame: control frame with write fields set");
      }
      return {};
  }
  return protocolError(fmt::format("link frame: unknown type {}", h.type));
}

}  // namespace rdmesh::transport
