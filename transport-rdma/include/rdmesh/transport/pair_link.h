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
    // Our write `cookie` and every write posted before it have completed, so their sources may
    // be reused (verbs: acknowledged by the peer's RNIC; tcp: in our socket's kernel buffer).
    // One event may cover several writes; every cookie is covered by exactly one event.
    kWriteDone,
    kControl,  // a control message from the peer agent (bytes in `control`)
  };
  Type type = Type::kWriteArrived;
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

  // How the peer must address `memory` (registered in this link's domain) in its writes; all
  // zero for memory of another domain.
  virtual RemoteMemory describe(const RegisteredMemory& memory) const = 0;

  // Posts a WRITE WITH IMMEDIATE of src[src_offset, +len) to dst.addr + dst_offset. `len` may be
  // 0 (an immediate alone). Writes and control messages reach the peer in posting order. The
  // caller keeps src unchanged until kWriteDone for `cookie` (cookies strictly increase).
  // Returns kUnavailable when the send queue is full or control messages wait for credits (retry
  // after a later poll()), kInvalidArgument for a caller mistake (the link is unharmed), any other
  // error means the link is lost. Both ranges are bounds-checked against the registrations; an
  // immediate whose type is 15 is reserved for the link (link_wire.h).
  virtual Status postWrite(const RegisteredMemory& src, uint64_t src_offset, uint32_t len,
                           const RemoteMemory& dst, uint64_t dst_offset, uint32_t imm,
                           uint64_t cookie) = 0;
  // A small ordered, reliable message to the peer agent (1..kMaxLinkControlBytes bytes). Never
  // refused for want of room: it waits in order behind missing credits (verbs), and writes
  // posted meanwhile get kUnavailable so that none overtakes it.
  virtual Status sendControl(std::span<const std::byte> message) = 0;
  // Rings the device / writes the socket for everything posted since the last flush: one call
  // per loop iteration batches all sidecars' writes.
  virtual Status flush() = 0;
  // True when flush() left bytes behind (tcp): call again once eventFd() is writable.
  virtual bool wantsWritable() const = 0;

  // Non-blocking: appends up to max_events events to `out` and returns how many. An error means
  // the link is lost (the peer died, a QP error, a protocol error); what arrived before it is
  // returned first, and the error by the next call (hasBufferedEvents() says to make it).
  virtual Result<size_t> poll(std::vector<LinkEvent>& out, size_t max_events) = 0;

  // Readable when events may be pending; the same sleep protocol as FabricConnection.
  virtual int eventFd() const = 0;
  virtual int livenessFd() const = 0;  // hang-up: the peer agent is gone
  virtual bool pollsUsefully() const = 0;
  virtual bool hasBufferedEvents() const = 0;
  virtual bool prepareToSleep() = 0;
  virtual void afterWakeup() = 0;
};

inline constexpr size_t kMaxLinkControlBytes = size_t{16} * 1024;

struct LinkDomainOptions {
  std::string node_name;
  bool rdma = true;            // false: tcp links only
  VerbsFabricOptions verbs;    // device / GID selection, as for the standalone verbs fabric
  uint32_t send_depth = 1024;  // per link
  uint32_t recv_depth = 4096;  // per link: receive WQEs, reposted as soon as they complete
  // Register sidecar memory on demand (ODP) when the device supports it for RC writes: pages are
  // faulted in as the RNIC touches them instead of pinned whole at registration. Off: pinned.
  bool on_demand_paging = false;
};

// The agent's RDMA context (device, protection domain) shared by all its links, or none when RDMA
// is unavailable (then every link is tcp and registration pins nothing).
class LinkDomain {
 public:
  virtual ~LinkDomain() = default;
  // kVerbs when a device is open, else kTcp; why RDMA is off (empty when on).
  virtual wire::FabricKind kind() const = 0;
  virtual const std::string& rdmaUnavailableReason() const = 0;
  // "on" when registrations page on demand, else "off: <why>" (not asked for, no RDMA, or what
  // the device lacks): for the agent's /stats.
  virtual const std::string& onDemandPaging() const = 0;

  // Registers memory the caller keeps mapped for as long as the returned object lives; it is
  // usable on every link of the domain, now and later (verbs: one MR, local + remote write;
  // tcp: an id the peer's frames name, resolved and bounds-checked here). Releasing it while a
  // link may still write from it, or the peer into it, is the caller's bug (design: only after
  // the peer acknowledged the close): a tcp link then fails the write as an unknown key, a verbs
  // peer gets a remote access error; the domain itself neither crashes nor leaks.
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
