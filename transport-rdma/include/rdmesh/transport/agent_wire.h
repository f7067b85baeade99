// Mesh mode wire formats, version 1: the shared memory between a sidecar and its node agent (one
// region per sidecar session), and how node agents tag the writes they carry for sidecars on a
// PairLink. The sidecar-to-sidecar session protocol itself (wire.h) is unchanged: it runs end to
// end between the two sidecars; the agents only move its writes. docs/design/node-agent-datapath.md
// explains the design; every constant is defined here once and checked at compile time.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "rdmesh/transport/wire.h"

namespace rdmesh::wire::agent {

// ---- one sidecar session's region: a memfd created by the sidecar, mapped by both ----
//   [RegionHeader: 4 KiB]
//   [submission queue: sq_depth x Submission]     sidecar -> agent (SPSC)
//   [completion queue: cq_depth x Arrival]        agent -> sidecar (SPSC)
//   [receive area: the session's v1 receive area (wire::receiveAreaBytes of the sidecar's Hello)]
//   [send staging: staging_bytes]                 the RNIC (or the tcp link) reads writes from here
// Sections start at 4 KiB boundaries, in this order. The agent checks every size against the
// memfd's size before it maps or registers anything.
inline constexpr uint32_t kRegionMagic = 0x47414452;  // "RDAG" in little-endian byte order
inline constexpr uint16_t kRegionVersion = 1;
inline constexpr size_t kSectionAlign = 4096;
inline constexpr size_t kRegionHeaderBytes = 4096;
inline constexpr uint32_t kMinQueueDepth = 64;
inline constexpr uint32_t kMaxQueueDepth = 1u << 16;
inline constexpr uint64_t kMinStagingBytes = 64u << 10;
inline constexpr uint64_t kMaxStagingBytes = 64u << 20;
inline constexpr uint64_t kMaxRegionBytes = 4ull << 30;

static_assert(std::atomic<uint64_t>::is_always_lock_free, "indexes are shared by processes");
static_assert(std::atomic<uint32_t>::is_always_lock_free);

// Written once by the sidecar before it hands the memfd over; read-only afterwards.
struct RegionLayout {
  uint32_t magic;    // kRegionMagic
  uint16_t version;  // kRegionVersion
  uint16_t reserved;
  uint32_t sq_depth;  // power of two, kMinQueueDepth..kMaxQueueDepth
  uint32_t cq_depth;  // power of two, >= the recv_depth of the sidecar's Hello
  uint64_t sq_offset;
  uint64_t cq_offset;
  uint64_t receive_offset;
  uint64_t receive_bytes;
  uint64_t staging_offset;
  uint64_t staging_bytes;
  uint64_t region_bytes;  // the memfd's size
};
static_assert(sizeof(RegionLayout) == 72);

// Queue indexes count entries ever pushed/popped (entry = index & (depth - 1)). Each index has
// one writer. The sleep flags follow the shm backend's protocol: a side sets its flag (seq_cst),
// re-checks its queue, then blocks on its doorbell; the other side rings the doorbell only when
// it swaps the flag from 1 to 0 after publishing.
struct RegionHeader {
  RegionLayout layout;
  alignas(64) std::atomic<uint64_t> sq_tail;         // sidecar: submissions published
  alignas(64) std::atomic<uint64_t> sq_head;         // agent: submissions taken
  // agent: submissions whose write completed. Advancing it wakes a sleeping sidecar (as an
  // arrival does): a sidecar out of staging sleeps until its submissions complete.
  alignas(64) std::atomic<uint64_t> sq_completed;
  alignas(64) std::atomic<uint64_t> cq_tail;         // agent: arrivals published
  alignas(64) std::atomic<uint64_t> cq_head;         // sidecar: arrivals consumed
  alignas(64) std::atomic<uint32_t> agent_sleeping;  // agent blocks on doorbell "to agent"
  alignas(64) std::atomic<uint32_t> sidecar_sleeping;
  // Set by the agent when the session is over (the remote sidecar or agent is gone); the
  // sidecar also sees its session connection hang up. Nothing is written after this is set.
  alignas(64) std::atomic<uint32_t> closed;
};
static_assert(sizeof(RegionHeader) <= kRegionHeaderBytes);

// A write the sidecar asks the agent to post: staging[staging_offset, +length) lands at
// remote_offset of the remote sidecar's receive area, then the remote sidecar sees `imm`
// (wire::encodeImm form; its length field equals `length`). Submissions complete in order.
struct Submission {
  uint64_t staging_offset;
  uint64_t remote_offset;
  uint32_t length;  // <= wire::kMaxMessageBytes
  uint32_t imm;
};
static_assert(sizeof(Submission) == 24);

// The remote sidecar's write has landed in our receive area (same meaning as Completion).
struct Arrival {
  uint32_t imm;
  uint32_t byte_len;
};
static_assert(sizeof(Arrival) == 8);

// ---- immediates on a PairLink: [type:4][slot:12][session:16] ----
// The link's completion gives the byte count, so the v1 length field is not needed on the link;
// its bits name the session instead (the receiving agent's id for it, agreed at session setup),
// which tells the receiving agent whose completion queue the arrival goes to.
inline constexpr unsigned kLinkSessionBits = 16;
static_assert(kImmTypeBits + kImmSlotBits + kLinkSessionBits == 32, "immediate is 32 bits");
inline constexpr uint32_t kMaxLinkSessions = 1u << kLinkSessionBits;  // per link, per direction

constexpr uint32_t encodeLinkImm(uint32_t v1_imm, uint32_t session) {
  return (v1_imm & ~kMaxMessageBytes) | (session & (kMaxLinkSessions - 1));
}
constexpr uint32_t linkSession(uint32_t link_imm) {
  return link_imm & (kMaxLinkSessions - 1);
}
// Back to the v1 form the sidecar's session expects, with the length from the completion.
constexpr uint32_t v1ImmFromLink(uint32_t link_imm, uint32_t byte_len) {
  return (link_imm & ~kMaxMessageBytes) | (byte_len & kMaxMessageBytes);
}
static_assert(kLinkSessionBits == kImmLengthBits, "the session id takes the length's place");
static_assert(linkSession(encodeLinkImm(encodeImm(ImmType::kData, 4095, 9), 65535)) == 65535);
static_assert(v1ImmFromLink(encodeLinkImm(encodeImm(ImmType::kData, 7, 9), 3), 9) ==
              encodeImm(ImmType::kData, 7, 9));

}  // namespace rdmesh::wire::agent
