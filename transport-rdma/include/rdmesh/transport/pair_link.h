// PairLink: the node agent's ONE connection to a peer node (an RC QP over verbs, or one TCP
// connection when RDMA cannot come up), shared by every sidecar session between the two nodes.
// Unlike FabricConnection it owns no receive area: the agent registers the sidecars' memory in
// the LinkDomain and posts writes from any registered memory into any memory the peer agent has
// described to it. The link never looks at payload bytes. See docs/design/node-agent-datapath.md.
//
// Control path (LinkDomain::connect/accept) blocks with a deadline off the event loop; the data
// path (PairLink) is non-blocking and single-threaded, driven by the agent's event loop.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "rdmesh/common/status.h"
#include "rdmesh/transport/fabric.h"
#include "rdmesh/transport/wire.h"

namespace rdmesh::transport {

// Local memory registered once in the domain (verbs: one MR on the domain's protection domain,
// local read + remote write); usable as a write source and a write target on every link.
class RegisteredMemory {
 public:
  virtual ~RegisteredMemory() = default;
  virtual std::span<std::byte> bytes() const = 0;
  // Bytes pinned for the device (0 without RDMA): for the agent's /stats.
  virtual uint64_t pinnedBytes() const = 0;
};

// What the peer agent told us about one of its registrations (sent over the link's control
// messages). `key` is link-kind specific (verbs: rkey; tcp: the peer's registration id); `addr`
// is the base the offsets below are added to (verbs: the virtual address of the MR).
struct RemoteMemory {
  uint64_t addr = 0;
  uint32_t key = 0;
  uint64_t bytes = 0;
};

// One event from PairLink::poll().
struct LinkEvent {
  enum class Type : uint8_t {
    kWriteArrived,  // the peer's write with immediate landed in our memory (data is visible)
    kWriteDone,     // our write `cookie` and every write posted before it have completed
    kControl,       // a control message from the peer agent (bytes in `control`)
  };
  Type type;
  uint32_t imm = 0;                // kWriteArrived: the immediate as posted by the peer
  uint32_t byte_len = 0;           // kWriteArrived: bytes written
  uint64_t cookie = 0;             // kWriteDone
  std::vector<std::byte> control;  // kControl

  static LinkEvent writeArrived(uint32_t imm, uint32_t byte_len) {
    return {Type::kWriteArrived, imm, byte_len, 0, {}};
  }
  static LinkEvent writeDone(uint64_t cookie) { return {Type::kWriteDone, 0, 0, cookie, {}}; }
  static LinkEvent controlMessage(std::vector<std::byte> bytes) {
    return {Type::kControl, 0, 0, 0, std::move(bytes)};
  }
};

class PairLink {
 public:
  virtual ~PairLink() = default;

  virtual wire::FabricKind kind() const = 0;  // kVerbs or kTcp
  virtual const std::string& peerNode() const = 0;
  // Why this link runs tcp although the domain has RDMA (the peer has none, GID mismatch, ...);
  // empty for a verbs link or when the domain itself has no RDMA.
  virtual const std::string& fallbackReason() const = 0;

  // How the peer must address `memory` (registered in this link's domain) in its writes.
  virtual RemoteMemory describe(const RegisteredMemory& memory) const = 0;

  // Posts a WRITE WITH IMMEDIATE of src[src_offset, +len) to dst.addr + dst_offset. `len` may be
  // 0 (an immediate alone). Writes and control messages reach the peer in posting order. The
  // caller keeps src unchanged until kWriteDone for `cookie` (cookies increase). Returns
  // kUnavailable when the send queue is full (retry after a kWriteDone), any other error means
  // the link is lost. Both ranges are bounds-checked against the registrations.
  virtual Status postWrite(const RegisteredMemory& src, uint64_t src_offset, uint32_t len,
                           const RemoteMemory& dst, uint64_t dst_offset, uint32_t imm,
                           uint64_t cookie) = 0;
  // A small ordered, reliable message to the peer agent (<= kMaxLinkControlBytes).
  virtual Status sendControl(std::span<const std::byte> message) = 0;
  // Rings the device / writes the socket for everything posted since the last flush: one call
  // per loop iteration batches all sidecars' writes.
  virtual Status flush() = 0;
  // True when flush() left bytes behind (tcp): call again once eventFd() is writable.
  virtual bool wantsWritable() const = 0;

  // Non-blocking: appends up to max_events events to `out` and returns how many. An error means
  // the link is lost (the peer died, a QP error, a protocol error); nothing is appended then.
  virtual Result<size_t> poll(std::vector<LinkEvent>& out, size_t max_events) = 0;

  // Readable when events may be pending; the same sleep protocol as FabricConnection.
  virtual int eventFd() const = 0;
  virtual int livenessFd() const = 0;  // hang-up: the peer agent is gone
  virtual bool pollsUsefully() const = 0;
  virtual bool hasBufferedEvents() const = 0;
  virtual bool prepareToSleep() = 0;
  virtual void afterWakeup() = 0;
};

inline constexpr size_t kMaxLinkControlBytes = 16 * 1024;

struct LinkDomainOptions {
  std::string node_name;
  bool rdma = true;            // false: tcp links only
  VerbsFabricOptions verbs;    // device / GID selection, as for the standalone verbs fabric
  uint32_t send_depth = 1024;  // per link
  uint32_t recv_depth = 4096;  // per link: receive WQEs, reposted as soon as they complete
};

// The agent's RDMA context (device, protection domain) shared by all its links, or none when RDMA
// is unavailable (then every link is tcp and registration pins nothing).
class LinkDomain {
 public:
  virtual ~LinkDomain() = default;
  // kVerbs when a device is open, else kTcp; why RDMA is off (empty when on).
  virtual wire::FabricKind kind() const = 0;
  virtual const std::string& rdmaUnavailableReason() const = 0;

  // Registers memory the caller keeps mapped for as long as the returned object lives.
  virtual Result<std::shared_ptr<RegisteredMemory>> registerMemory(std::span<std::byte> bytes) = 0;

  // Bootstrap on the node-agent port (ARCHITECTURE.md: 15008): Hello-style versioned exchange,
  // then an RC QP (both sides can run verbs) or tcp on the same connection; the caller logs the
  // reason for a fallback once (PairLink::fallbackReason()). Never hangs: every step has the
  // deadline.
  virtual Result<int> listen(const std::string& address) = 0;
  virtual Result<std::unique_ptr<PairLink>> connect(const std::string& address,
                                                    Deadline deadline) = 0;
  virtual Result<std::unique_ptr<PairLink>> accept(int fd, Deadline deadline) = 0;
};

std::unique_ptr<LinkDomain> makeLinkDomain(LinkDomainOptions options);

}  // namespace rdmesh::transport
