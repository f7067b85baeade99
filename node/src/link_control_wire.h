// Agent-to-agent control messages, version 1: how two node agents set up and tear down the
// sidecar sessions that ride their PairLink (docs/design/node-agent-datapath.md). Each message
// is one PairLink::sendControl() payload: a Header, then the type's fixed body, then its
// variable part (a Hello, a reason). Every constant is defined here once and checked at compile
// time; link_control.{h,cc} encodes and parses (fuzzed: tests/fuzz/fuzz_link_control.cc).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

#include "rdmesh/transport/agent_wire.h"
#include "rdmesh/transport/pair_link.h"

namespace rdmesh::node::linkwire {

static_assert(std::endian::native == std::endian::little,
              "the wire structs are memcpy'd; a big-endian port needs byte swaps here");

inline constexpr uint32_t kMagic = 0x434c4452;  // "RDLC" in little-endian byte order
inline constexpr uint8_t kVersion = 1;

enum class MessageType : uint8_t {
  kOpen = 1,      // opener -> acceptor: a sidecar wants a session with a pod IP on the peer node
  kAccepted = 2,  // acceptor -> opener: the listening sidecar took it
  kRefused = 3,   // acceptor -> opener: no listener, refused, timed out, region invalid
  kClose = 4,     // either way: the session is over; stop writing into the sender's memory
  kCloseAck = 5,  // the receiver of kClose will not write into the closer's memory any more
};
inline constexpr uint8_t kMaxMessageType = 5;

// Session ids are the link immediate's session field (agent_wire.h): < kMaxLinkSessions. A close
// sent before the peer's id is known (the opener gave up waiting) names only its own id.
inline constexpr uint32_t kUnknownSession = 0xffffffffu;
static_assert(wire::agent::kMaxLinkSessions <= kUnknownSession);

inline constexpr size_t kMaxHelloBytes = 1024;   // a Hello is ~300 bytes (header + node name)
inline constexpr size_t kMaxReasonBytes = 1024;  // shown to the opening sidecar

struct Header {
  uint32_t magic;
  uint8_t version;
  uint8_t type;  // MessageType
  uint16_t reserved;
};
static_assert(sizeof(Header) == 8);

// Where the peer writes: a registration as PairLink::describe() tells it, and the sidecar's
// receive area inside it. The receiver checks receive_offset + receive_bytes <= bytes.
struct WireMemory {
  uint64_t addr;
  uint64_t bytes;
  uint32_t key;
  uint32_t reserved;
  uint64_t receive_offset;
  uint64_t receive_bytes;
};
static_assert(sizeof(WireMemory) == 40);

// IPs travel as 16 bytes; family 4 uses the first 4. Family 0 = not known (the source IP when
// the agent does not check netns ownership).
inline constexpr uint8_t kFamilyNone = 0;
inline constexpr uint8_t kFamilyV4 = 4;
inline constexpr uint8_t kFamilyV6 = 6;

struct OpenBody {
  uint32_t sender_session;  // the opener's id: the acceptor's writes carry it
  uint8_t destination_family;
  uint8_t source_family;
  uint16_t hello_bytes;  // the opening sidecar's Hello follows the body
  uint8_t destination_ip[16];
  uint8_t source_ip[16];
  WireMemory memory;
};
static_assert(sizeof(OpenBody) == 80);

struct AcceptedBody {
  uint32_t opener_session;
  uint32_t acceptor_session;  // the opener's writes carry it
  WireMemory memory;
  uint16_t hello_bytes;  // the accepting sidecar's Hello follows the body
  uint16_t reserved[3];
};
static_assert(sizeof(AcceptedBody) == 56);

struct RefusedBody {
  uint32_t opener_session;
  uint16_t reason_bytes;  // UTF-8 text follows the body
  uint16_t reserved;
};
static_assert(sizeof(RefusedBody) == 8);

struct CloseBody {
  uint32_t receiver_session;  // the receiver's id, or kUnknownSession
  uint32_t sender_session;    // the closer's id
};
static_assert(sizeof(CloseBody) == 8);

struct CloseAckBody {
  uint32_t receiver_session;  // the closer's id (CloseBody::sender_session)
  uint32_t reserved;
};
static_assert(sizeof(CloseAckBody) == 8);

static_assert(sizeof(Header) + sizeof(OpenBody) + kMaxHelloBytes <= transport::kMaxLinkControlBytes,
              "the largest message fits one control message");
static_assert(sizeof(Header) + sizeof(AcceptedBody) + kMaxHelloBytes <=
              transport::kMaxLinkControlBytes);

}  // namespace rdmesh::node::linkwire
