// Node-pair link wire format, version 1: how two node agents (rdmesh-node) bring up their one
// PairLink on the node-agent port and what travels on it. docs/protocol.md ("Node-pair link")
// explains the protocol; every constant is defined here once and checked at compile time.
// All multi-byte fields are little-endian (wire.h asserts the host is).
#pragma once

#include <cstddef>
#include <cstdint>

#include "rdmesh/transport/wire.h"

namespace rdmesh::wire::link {

// ---- LinkHello: the first message each way (the dialer sends first, then the acceptor) ----
// Distinct from the sidecar session Hello (kMagic), so a sidecar that dials an agent's port, or
// an agent that dials a standalone sidecar, is told so at once.
inline constexpr uint32_t kHelloMagic = 0x4b4c4452;  // "RDLK" in little-endian byte order
inline constexpr uint16_t kVersionMin = 1;
inline constexpr uint16_t kVersionMax = 1;

struct LinkHelloHeader {
  uint32_t magic;  // kHelloMagic
  uint16_t version_min;
  uint16_t version_max;
  uint16_t fabric_kind;      // FabricKind::kVerbs when the sender can run RDMA, else kTcp
  uint16_t node_name_bytes;  // the node name follows, 1..kMaxNodeNameBytes of [a-z0-9.-]
  uint32_t reserved;         // 0
};
static_assert(sizeof(LinkHelloHeader) == 16, "LinkHelloHeader layout is part of the protocol");

// Then, when both announced kVerbs: one VerbsQpInfo and one VerbsReady each way, exactly as the
// standalone verbs fabric (wire.h). On a link, the "receive area" of VerbsQpInfo is the sender's
// control ring below and recv_wqes the link's receive WQEs. Any decline or failure: tcp frames
// on the same connection.

// ---- immediates on a verbs link ----
// Session writes carry agent_wire.h's [type:4][slot:12][session:16]. The type value kLinkImmType
// is reserved for the link itself: [kLinkImmType:4][kind:4][value:24].
inline constexpr uint32_t kLinkImmType = 0xf;
static_assert(kLinkImmType < (1u << kImmTypeBits));
static_assert(static_cast<uint32_t>(ImmType::kControl) < kLinkImmType, "session types stay free");
inline constexpr unsigned kLinkImmKindBits = 4;
inline constexpr unsigned kLinkImmValueBits = 24;
static_assert(kImmTypeBits + kLinkImmKindBits + kLinkImmValueBits == 32, "immediate is 32 bits");
inline constexpr uint32_t kLinkImmValueMask = (1u << kLinkImmValueBits) - 1;

enum class LinkImmKind : uint8_t {
  // A control message landed in control slot (value % kControlSlots) of our ring; value is the
  // message's sequence number mod 2^24; the completion's byte count is its length.
  kControl = 1,
  // The peer consumed control messages: value = how many, ever, mod 2^24. Zero-length write.
  kControlCredit = 2,
};

constexpr bool isLinkImm(uint32_t imm) {
  return immType(imm) == static_cast<ImmType>(kLinkImmType);
}
constexpr uint32_t encodeLinkInternalImm(LinkImmKind kind, uint32_t value) {
  return (kLinkImmType << (kLinkImmKindBits + kLinkImmValueBits)) |
         (static_cast<uint32_t>(kind) << kLinkImmValueBits) | (value & kLinkImmValueMask);
}
constexpr LinkImmKind linkImmKind(uint32_t imm) {
  return static_cast<LinkImmKind>((imm >> kLinkImmValueBits) & ((1u << kLinkImmKindBits) - 1));
}
constexpr uint32_t linkImmValue(uint32_t imm) {
  return imm & kLinkImmValueMask;
}
static_assert(isLinkImm(encodeLinkInternalImm(LinkImmKind::kControlCredit, 5)));
static_assert(!isLinkImm(encodeImm(ImmType::kData, 4095, 65535)));
static_assert(linkImmKind(encodeLinkInternalImm(LinkImmKind::kControl, 0xffffff)) ==
              LinkImmKind::kControl);
static_assert(linkImmValue(encodeLinkInternalImm(LinkImmKind::kControl, 0x1234567)) == 0x234567);

// ---- control messages (PairLink::sendControl) ----
// verbs: each is a WRITE WITH IMMEDIATE into the next slot of the control ring the peer
// registered at bootstrap; the receiver copies it out when it polls the completion and returns
// credits (kControlCredit) every kControlSlots / 2 messages, so a sender never overwrites a slot
// that has not been read. tcp: a kControl frame.
inline constexpr size_t kMaxControlBytes = 16 * 1024;
inline constexpr uint32_t kControlSlots = 64;
inline constexpr uint64_t kControlRingBytes = uint64_t{kControlSlots} * kMaxControlBytes;
static_assert((kControlSlots & (kControlSlots - 1)) == 0, "slot = sequence % kControlSlots");
static_assert(kControlSlots < (1u << kLinkImmValueBits) / 2, "credit deltas stay unambiguous");

// One write's payload at most (both link kinds): far above any session write (kMaxMessageBytes)
// and below verbs' 2 GiB message limit.
inline constexpr uint32_t kMaxWriteBytes = 1u << 30;

// ---- tcp link frames: a LinkFrameHeader, then `length` payload bytes ----
enum class FrameType : uint8_t {
  kWrite = 1,    // payload lands at `offset` of the receiver's registration `key`; then an arrival
  kControl = 2,  // payload is a control message; imm, key and offset are 0
};

struct LinkFrameHeader {
  uint8_t type;  // FrameType
  uint8_t reserved0;
  uint16_t reserved1;
  uint32_t imm;     // kWrite: the immediate as posted
  uint32_t key;     // kWrite: the receiver's registration id (RemoteMemory::key)
  uint32_t length;  // payload bytes: kWrite <= kMaxWriteBytes, kControl 1..kMaxControlBytes
  uint64_t offset;  // kWrite: byte offset in that registration
};
static_assert(sizeof(LinkFrameHeader) == 24, "LinkFrameHeader layout is part of the protocol");

}  // namespace rdmesh::wire::link
