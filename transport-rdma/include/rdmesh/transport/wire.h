// rdmesh session wire format, versions 1 and 2 (2 adds IDLE_CLOSE). Every constant of the protocol
// is defined here, once, and checked at compile time. docs/protocol.md explains the protocol around
// them. All multi-byte fields are little-endian.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace rdmesh::wire {

static_assert(std::endian::native == std::endian::little,
              "the wire structs are memcpy'd; a big-endian port needs byte swaps here");

inline constexpr uint32_t kMagic = 0x534d4452;  // "RDMS" in little-endian byte order
inline constexpr uint16_t kVersionMin = 1;
inline constexpr uint16_t kVersionMax = 2;
// Version 2 adds the IDLE_CLOSE record; it is sent only on sessions that negotiated 2.
inline constexpr uint16_t kVersionIdleClose = 2;

// ---- 32-bit immediate of every RDMA WRITE WITH IMMEDIATE: [type:4][slot:12][length:16] ----
inline constexpr unsigned kImmTypeBits = 4;
inline constexpr unsigned kImmSlotBits = 12;
inline constexpr unsigned kImmLengthBits = 16;
static_assert(kImmTypeBits + kImmSlotBits + kImmLengthBits == 32, "immediate is 32 bits");
inline constexpr uint32_t kMaxSlots = 1u << kImmSlotBits;                 // streams per session
inline constexpr uint32_t kMaxMessageBytes = (1u << kImmLengthBits) - 1;  // one write's payload

enum class ImmType : uint8_t {
  kData = 1,     // bytes appended to the receiver's ring `slot`
  kControl = 2,  // a batch of control records appended to the receiver's control ring
};
static_assert(static_cast<unsigned>(ImmType::kControl) < (1u << kImmTypeBits));

constexpr uint32_t encodeImm(ImmType type, uint32_t slot, uint32_t length) {
  return (static_cast<uint32_t>(type) << (kImmSlotBits + kImmLengthBits)) |
         ((slot & (kMaxSlots - 1)) << kImmLengthBits) | (length & kMaxMessageBytes);
}
constexpr ImmType immType(uint32_t imm) {
  return static_cast<ImmType>(imm >> (kImmSlotBits + kImmLengthBits));
}
constexpr uint32_t immSlot(uint32_t imm) {
  return (imm >> kImmLengthBits) & (kMaxSlots - 1);
}
constexpr uint32_t immLength(uint32_t imm) {
  return imm & kMaxMessageBytes;
}
static_assert(immSlot(encodeImm(ImmType::kData, 4095, 65535)) == 4095);
static_assert(immLength(encodeImm(ImmType::kData, 4095, 65535)) == 65535);
static_assert(immType(encodeImm(ImmType::kControl, 7, 9)) == ImmType::kControl);

// ---- stream reference in control records: [generation:20][slot:12] ----
// The generation makes a late record for a slot's previous stream harmless.
inline constexpr unsigned kGenerationBits = 20;
static_assert(kGenerationBits + kImmSlotBits == 32, "stream reference is 32 bits");
constexpr uint32_t makeStreamRef(uint32_t slot, uint32_t generation) {
  return (generation << kImmSlotBits) | (slot & (kMaxSlots - 1));
}
constexpr uint32_t refSlot(uint32_t ref) {
  return ref & (kMaxSlots - 1);
}
constexpr uint32_t refGeneration(uint32_t ref) {
  return ref >> kImmSlotBits;
}

// ---- geometry limits (what a Hello may announce) ----
inline constexpr uint32_t kMinRingBytes = 4096;
inline constexpr uint32_t kMaxRingBytes = 16u << 20;
inline constexpr uint32_t kMinControlRingBytes = 16u << 10;
inline constexpr uint32_t kMaxControlRingBytes = 4u << 20;
inline constexpr uint32_t kMinRecvDepth = 64;
inline constexpr uint32_t kMaxRecvDepth = 1u << 16;
// Receive-WQE credits and control-ring bytes kept back for control traffic, so that credit
// returns can always be sent and the session cannot deadlock.
inline constexpr uint32_t kReservedControlWqes = 8;
inline constexpr uint32_t kReservedControlBytes = 2048;
inline constexpr size_t kMaxNodeNameBytes = 253;

// ---- bootstrap Hello, exchanged once on the bootstrap socket before the fabric runs ----
// kAgent: a sidecar in mesh mode, whose writes its node agent carries (agent_wire.h).
enum class FabricKind : uint16_t { kTcp = 1, kShm = 2, kVerbs = 3, kAgent = 4 };
inline constexpr uint16_t kMaxFabricKind = 4;

struct HelloHeader {
  uint32_t magic;
  uint16_t version_min;
  uint16_t version_max;
  uint16_t fabric_kind;      // FabricKind the sender runs
  uint16_t node_name_bytes;  // node name follows the header, not NUL-terminated
  uint32_t max_streams;      // slots in the sender's receive area
  uint32_t ring_bytes;       // per-stream ring size in the sender's receive area
  uint32_t control_ring_bytes;
  uint32_t recv_depth;            // completions the sender can hold unacknowledged
  uint32_t keepalive_timeout_ms;  // the sender declares the session dead after this silence
};
static_assert(sizeof(HelloHeader) == 32, "HelloHeader layout is part of the protocol");

// ---- receive area layout: [control ring][stream ring 0]...[stream ring max_streams-1] ----
constexpr uint64_t receiveAreaBytes(uint32_t control_ring_bytes, uint32_t max_streams,
                                    uint32_t ring_bytes) {
  return uint64_t{control_ring_bytes} + uint64_t{max_streams} * ring_bytes;
}
constexpr uint64_t streamRingOffset(uint32_t control_ring_bytes, uint32_t slot,
                                    uint32_t ring_bytes) {
  return uint64_t{control_ring_bytes} + uint64_t{slot} * ring_bytes;
}

// ---- control records, packed back to back in one kControl write ----
enum class ControlType : uint8_t {
  kOpen = 1,           // stream = opener's ref; body OpenBody + identity bytes
  kOpenAck = 2,        // stream = opener's ref; body OpenAckBody
  kFin = 3,            // stream = receiver's ref; sender will write no more data
  kReset = 4,          // stream = receiver's ref; body ResetBody
  kCredit = 5,         // stream = receiver's ref; body CreditBody
  kSessionCredit = 6,  // stream = 0; body SessionCreditBody
  kPing = 7,           // stream = 0; body PingBody
  kPong = 8,           // stream = 0; body PingBody (echoed)
  kGoAway = 9,         // stream = 0; sender is draining: open no new streams to it
  kIdleClose = 10,     // stream = 0; body IdleCloseBody (version >= 2)
};
inline constexpr uint8_t kMaxControlType = 10;

struct ControlRecordHeader {
  uint8_t type;
  uint8_t flags;  // reserved, 0
  uint16_t body_bytes;
  uint32_t stream;
};
static_assert(sizeof(ControlRecordHeader) == 8);

enum class AddressFamily : uint8_t { kIpv4 = 4, kIpv6 = 6 };
struct OpenBody {
  uint8_t family;          // AddressFamily
  uint8_t identity_bytes;  // SPIFFE id of the caller follows the body
  uint16_t port;           // original destination port, host order (little-endian on wire)
  uint8_t address[16];     // original destination address, network order; v4 uses 4 bytes
};
static_assert(sizeof(OpenBody) == 20);

struct OpenAckBody {
  uint32_t acceptor_stream;  // acceptor's ref: where the opener writes from now on
};
static_assert(sizeof(OpenAckBody) == 4);

enum class ResetReason : uint32_t {
  kUnknown = 0,
  kLocalReset = 1,        // the app on the other side reset its connection
  kUpstreamRefused = 2,   // the peer could not connect to the destination
  kNoRoute = 3,           // the peer has no inbound listener for the destination
  kStreamsExhausted = 4,  // the peer has no free slot
  kProtocolError = 5,
  kSessionLost = 6,  // local only: the session went down
  kDraining = 7,     // the peer is shutting down
};
struct ResetBody {
  uint32_t reason;  // ResetReason
};
static_assert(sizeof(ResetBody) == 4);

struct CreditBody {
  uint64_t consumed_total;  // bytes of this stream's ring the receiver has consumed, ever
};
static_assert(sizeof(CreditBody) == 8);

struct SessionCreditBody {
  uint64_t completions_total;    // completions (receive WQEs) the receiver has consumed, ever
  uint64_t control_bytes_total;  // control-ring bytes the receiver has consumed, ever
};
static_assert(sizeof(SessionCreditBody) == 16);

struct PingBody {
  uint64_t nonce;
};
static_assert(sizeof(PingBody) == 8);

// Closing a session nobody uses, without racing a stream the peer is opening: the side that has
// been idle asks, the peer confirms only if no stream of its is on the wire (else refuses), and
// the asker then closes. Neither side sends OPEN between asking/confirming and the close.
enum class IdleCloseStep : uint32_t {
  kRequest = 1,  // no streams here for the idle timeout: may we close?
  kConfirm = 2,  // no streams here either: close (the asker does)
  kRefuse = 3,   // streams here: keep the session
};
inline constexpr uint32_t kMaxIdleCloseStep = 3;
struct IdleCloseBody {
  uint32_t step;  // IdleCloseStep
};
static_assert(sizeof(IdleCloseBody) == 4);

inline constexpr size_t kMaxIdentityBytes = 255;
inline constexpr size_t kMaxControlRecordBytes =
    sizeof(ControlRecordHeader) + sizeof(OpenBody) + kMaxIdentityBytes;
static_assert(kMaxControlRecordBytes < kReservedControlBytes);

// ---- verbs backend bootstrap: after the Hellos, when both announced FabricKind::kVerbs ----
// Each side sends one VerbsQpInfo (an offer of its RC QP, or a decline with a reason), moves its
// QP to RTS with the peer's offer, then sends one VerbsReady. Any decline or failure: both sides
// run the tcp backend on the same bootstrap connection.
inline constexpr uint32_t kVerbsQpInfoMagic = 0x50514452;  // "RDQP" in little-endian byte order
inline constexpr uint32_t kVerbsReadyMagic = 0x59524452;   // "RDRY"
inline constexpr uint16_t kVerbsInfoVersion = 1;
inline constexpr unsigned kQpNumBits = 24;  // QP numbers and PSNs are 24-bit in the IBA
inline constexpr uint32_t kQpNumMask = (1u << kQpNumBits) - 1;
inline constexpr size_t kMaxVerbsReasonBytes = 240;
inline constexpr uint8_t kMinPathMtu = 1;  // enum ibv_mtu: 1 = 256 bytes ... 5 = 4096 bytes
inline constexpr uint8_t kMaxPathMtu = 5;

enum class VerbsOffer : uint8_t { kOffer = 1, kDecline = 2 };

struct VerbsQpInfo {
  uint32_t magic;  // kVerbsQpInfoMagic
  uint16_t version;
  uint8_t offer;        // VerbsOffer
  uint8_t path_mtu;     // enum ibv_mtu of the sender's port
  uint32_t qp_num;      // kQpNumBits
  uint32_t psn;         // first send PSN, kQpNumBits
  uint8_t gid[16];      // sender's RoCEv2 GID (IPv4-mapped for IPv4)
  uint64_t area_addr;   // sender's receive area: the base of remote_addr
  uint64_t area_bytes;  // must equal the area its Hello implies
  uint32_t area_rkey;
  uint32_t recv_wqes;     // receive WQEs posted: at least the Hello's recv_depth
  uint16_t reason_bytes;  // kDecline: why, in ASCII, following the struct
  uint16_t reserved0;     // 0
  uint32_t reserved1;     // 0
};
static_assert(sizeof(VerbsQpInfo) == 64, "VerbsQpInfo layout is part of the protocol");

struct VerbsReady {
  uint32_t magic;  // kVerbsReadyMagic
  uint8_t ok;      // 1: QP is RTS; 0: failed, reason follows
  uint8_t reserved;
  uint16_t reason_bytes;
};
static_assert(sizeof(VerbsReady) == 8, "VerbsReady layout is part of the protocol");

// ---- tcp backend: each write travels as a frame header followed by its payload ----
struct TcpFrameHeader {
  uint32_t imm;
  uint32_t length;         // payload bytes
  uint64_t remote_offset;  // where in the receiver's receive area
};
static_assert(sizeof(TcpFrameHeader) == 16);

}  // namespace rdmesh::wire
