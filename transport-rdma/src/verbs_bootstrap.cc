#include "rdmesh/transport/verbs_bootstrap.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "wire_encoding.h"

namespace rdmesh::transport {

namespace {

// Reasons are logged by the peer: printable ASCII only, so a hostile peer cannot forge log lines.
bool isPrintable(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

std::string clampReason(const std::string& reason) {
  std::string out = reason.substr(0, wire::kMaxVerbsReasonBytes);
  for (char& c : out) {
    if (c < 0x20 || c >= 0x7f) c = '?';
  }
  return out;
}

Result<std::string> readReason(std::span<const std::byte> bytes, size_t header_bytes,
                               const char* what) {
  std::string reason(reinterpret_cast<const char*>(bytes.data()) + header_bytes,
                     bytes.size() - header_bytes);
  if (!isPrintable(reason)) {
    return protocolError(fmt::format("{}: reason has non-printable bytes", what));
  }
  return reason;
}

}  // namespace

bool isIpv4MappedGid(std::span<const uint8_t, 16> gid) {
  static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(gid.data(), kPrefix, sizeof(kPrefix)) == 0;
}

std::vector<std::byte> encodeVerbsQpInfo(const VerbsPeerInfo& info) {
  wire::VerbsQpInfo h{};
  std::string reason = info.offer ? std::string() : clampReason(info.reason);
  h.magic = wire::kVerbsQpInfoMagic;
  h.version = wire::kVerbsInfoVersion;
  h.offer =
      static_cast<uint8_t>(info.offer ? wire::VerbsOffer::kOffer : wire::VerbsOffer::kDecline);
  h.path_mtu = info.path_mtu;
  h.qp_num = info.qp_num & wire::kQpNumMask;
  h.psn = info.psn & wire::kQpNumMask;
  std::memcpy(h.gid, info.gid.data(), sizeof(h.gid));
  h.area_addr = info.area_addr;
  h.area_bytes = info.area_bytes;
  h.area_rkey = info.area_rkey;
  h.recv_wqes = info.recv_wqes;
  h.reason_bytes = static_cast<uint16_t>(reason.size());
  return headerWithTail(h, reason);
}

Result<size_t> verbsQpInfoSize(std::span<const std::byte> header_bytes) {
  if (header_bytes.size() < sizeof(wire::VerbsQpInfo)) {
    return protocolError("verbs qp info: truncated header");
  }
  wire::VerbsQpInfo h{};
  std::memcpy(&h, header_bytes.data(), sizeof(h));
  if (h.magic != wire::kVerbsQpInfoMagic) {
    return protocolError(fmt::format("verbs qp info: bad magic {:#010x}", h.magic));
  }
  if (h.version != wire::kVerbsInfoVersion) {
    return protocolError(
        fmt::format("verbs qp info: version {}, we speak {}", h.version, wire::kVerbsInfoVersion));
  }
  if (h.reason_bytes > wire::kMaxVerbsReasonBytes) {
    return protocolError(fmt::format("verbs qp info: reason of {} bytes", h.reason_bytes));
  }
  return sizeof(h) + h.reason_bytes;
}

Result<VerbsPeerInfo> parseVerbsQpInfo(std::span<const std::byte> bytes) {
  auto size = verbsQpInfoSize(bytes);
  if (!size) return size.status();
  if (bytes.size() != *size) {
    return protocolError(fmt::format("verbs qp info: {} bytes, expected {}", bytes.size(), *size));
  }
  wire::VerbsQpInfo h{};
  std::memcpy(&h, bytes.data(), sizeof(h));
  if (h.reserved0 != 0 || h.reserved1 != 0) {
    return protocolError("verbs qp info: reserved fields are not zero");
  }
  VerbsPeerInfo info;
  auto reason = readReason(bytes, sizeof(h), "verbs qp info");
  if (!reason) return reason.status();
  info.reason = std::move(reason.value());
  if (h.offer == static_cast<uint8_t>(wire::VerbsOffer::kDecline)) {
    if (info.reason.empty()) return protocolError("verbs qp info: decline without a reason");
    return info;
  }
  if (h.offer != static_cast<uint8_t>(wire::VerbsOffer::kOffer)) {
    return protocolError(fmt::format("verbs qp info: unknown offer {}", h.offer));
  }
  if (!info.reason.empty()) return protocolError("verbs qp info: an offer carries no reason");
  info.offer = true;
  if (h.path_mtu < wire::kMinPathMtu || h.path_mtu > wire::kMaxPathMtu) {
    return protocolError(fmt::format("verbs qp info: path mtu code {} not in {}..{}", h.path_mtu,
                                     wire::kMinPathMtu, wire::kMaxPathMtu));
  }
  if (h.qp_num == 0 || h.qp_num > wire::kQpNumMask || h.psn > wire::kQpNumMask) {
    return protocolError(
        fmt::format("verbs qp info: qp number {} or psn {} not 24-bit", h.qp_num, h.psn));
  }
  std::memcpy(info.gid.data(), h.gid, sizeof(h.gid));
  if (std::all_of(info.gid.begin(), info.gid.end(), [](uint8_t b) { return b == 0; })) {
    return protocolError("verbs qp info: zero GID");
  }
  if (h.area_bytes == 0 || h.area_addr + h.area_bytes < h.area_addr) {
    return protocolError(fmt::format("verbs qp info: receive area {:#x}+{} wraps or is empty",
                                     h.area_addr, h.area_bytes));
  }
  if (h.recv_wqes < wire::kMinRecvDepth || h.recv_wqes > wire::kMaxRecvDepth) {
    return protocolError(fmt::format("verbs qp info: {} receive WQEs not in {}..{}", h.recv_wqes,
                                     wire::kMinRecvDepth, wire::kMaxRecvDepth));
  }
  info.path_mtu = h.path_mtu;
  info.qp_num = h.qp_num;
  info.psn = h.psn;
  info.area_addr = h.area_addr;
  info.area_bytes = h.area_bytes;
  info.area_rkey = h.area_rkey;
  info.recv_wqes = h.recv_wqes;
  return info;
}

std::vector<std::byte> encodeVerbsReady(const VerbsReadyInfo& ready) {
  wire::VerbsReady h{};
  std::string reason = ready.ok ? std::string() : clampReason(ready.reason);
  h.magic = wire::kVerbsReadyMagic;
  h.ok = ready.ok ? 1 : 0;
  h.reason_bytes = static_cast<uint16_t>(reason.size());
  return headerWithTail(h, reason);
}

Result<size_t> verbsReadySize(std::span<const std::byte> header_bytes) {
  if (header_bytes.size() < sizeof(wire::VerbsReady)) {
    return protocolError("verbs ready: truncated header");
  }
  wire::VerbsReady h{};
  std::memcpy(&h, header_bytes.data(), sizeof(h));
  if (h.magic != wire::kVerbsReadyMagic) {
    return protocolError(fmt::format("verbs ready: bad magic {:#010x}", h.magic));
  }
  if (h.reason_bytes > wire::kMaxVerbsReasonBytes) {
    return protocolError(fmt::format("verbs ready: reason of {} bytes", h.reason_bytes));
  }
  return sizeof(h) + h.reason_bytes;
}

Result<VerbsReadyInfo> parseVerbsReady(std::span<const std::byte> bytes) {
  auto size = verbsReadySize(bytes);
  if (!size) return size.status();
  if (bytes.size() != *size) {
    return protocolError(fmt::format("verbs ready: {} bytes, expected {}", bytes.size(), *size));
  }
  wire::VerbsReady h{};
  std::memcpy(&h, bytes.data(), sizeof(h));
  if (h.ok > 1 || h.reserved != 0) return protocolError("verbs ready: bad flags");
  auto reason = readReason(bytes, sizeof(h), "verbs ready");
  if (!reason) return reason.status();
  VerbsReadyInfo ready{h.ok == 1, std::move(reason.value())};
  if (ready.ok != ready.reason.empty()) {
    return protocolError("verbs ready: a failure needs a reason, success has none");
  }
  return ready;
}

}  // namespace rdmesh::transport
