// verbs PairLink: one RC QP on the domain's protection domain, with its own CQ and completion
// channel. Writes go as RDMA WRITE WITH IMMEDIATE from any registration of the domain (lkey)
// into any memory the peer described (rkey), chained and posted once per flush(), signalled
// selectively; control messages are writes into the peer's control ring (link_wire.h).
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "link_domain_core.h"
#include "memory_region.h"
#include "rdmesh/transport/pair_link.h"
#include "rdmesh/transport/qp_state_machine.h"
#include "rdmesh/transport/verbs_bootstrap.h"
#include "unix_fd.h"
#include "verbs_device.h"

namespace rdmesh::transport {

// What one link owns on the device, in construction order (destroyed in reverse, QP first).
struct VerbsLinkQp {
  std::shared_ptr<LinkDomainCore> core;  // first: the PD outlives everything below
  QpPath path;
  uint32_t psn = 0;
  uint32_t send_depth = 0;
  uint32_t recv_depth = 0;
  uint32_t max_inline = 0;
  VerbsPtr<ibv_comp_channel> channel;
  VerbsPtr<ibv_cq> cq;
  std::unique_ptr<MemoryRegion> control_in;  // the peer writes its control messages here
  VerbsPtr<ibv_mr> control_in_mr;
  std::unique_ptr<MemoryRegion> control_out;  // ours are staged here (slot = sequence)
  VerbsPtr<ibv_mr> control_out_mr;
  VerbsPtr<ibv_qp> qp;
  QpStateMachine state;

  VerbsLinkQp() = default;
  VerbsLinkQp(VerbsLinkQp&&) = default;
  VerbsLinkQp& operator=(VerbsLinkQp&&) = default;
  ~VerbsLinkQp() { qp.reset(); }  // ibv_destroy_cq fails while a QP still uses the CQ
};

// Creates the link's QP on the domain (GID by the bootstrap socket's local address), posts its
// receive WQEs and moves it to INIT; the error says why this link cannot run RDMA.
Result<VerbsLinkQp> openLinkQp(std::shared_ptr<LinkDomainCore> core,
                               const LinkDomainOptions& options, int socket_fd);
// Our offer for the peer: QP, GID, control ring.
VerbsPeerInfo linkOffer(const VerbsLinkQp& q);
// Checks the peer's offer and moves our QP to RTS towards it.
Status connectLinkQp(VerbsLinkQp& q, const VerbsPeerInfo& peer);

class VerbsPairLink : public PairLink {
 public:
  static Result<std::unique_ptr<PairLink>> create(UniqueFd socket, std::string peer_node,
                                                  VerbsLinkQp qp, VerbsPeerInfo peer);
  ~VerbsPairLink() override;

  wire::FabricKind kind() const override { return wire::FabricKind::kVerbs; }
  const std::string& peerNode() const override { return peer_node_; }
  const std::string& fallbackReason() const override { return no_reason_; }
  RemoteMemory describe(const RegisteredMemory& memory) const override;

  Status postWrite(const RegisteredMemory& src, uint64_t src_offset, uint32_t len,
                   const RemoteMemory& dst, uint64_t dst_offset, uint32_t imm,
                   uint64_t cookie) override;
  Status sendControl(std::span<const std::byte> message) override;
  Status flush() override;
  bool wantsWritable() const override { return false; }

  Result<size_t> poll(std::vector<LinkEvent>& out, size_t max_events) override;

  int eventFd() const override { return event_fd_.get(); }
  int livenessFd() const override { return socket_.get(); }
  // CQ polling reads memory the device writes: worth a short spin.
  bool pollsUsefully() const override { return true; }
  bool hasBufferedEvents() const override { return ready_head_ < ready_.size() || !broken_; }
  bool prepareToSleep() override;
  void afterWakeup() override;

 private:
  VerbsPairLink(UniqueFd socket, std::string peer_node, VerbsLinkQp qp, VerbsPeerInfo peer);
  Status init();

  // send queue
  bool sendQueueFull() const { return next_seq_ - retired_seq_ >= q_.send_depth; }
  ibv_send_wr& stage(uint32_t imm, uint64_t remote_addr, uint32_t rkey, const std::byte* local,
                     uint32_t len, uint32_t lkey);
  Status postChain();
  void retireSends(uint64_t through_seq);
  // control messages and their credits
  bool canPostControl() const;
  void stageControl(std::span<const std::byte> message);
  // Posts what waited for credits or send-queue room: control backlog, credit returns.
  Status postDeferred();
  Status takeControl(uint32_t imm, uint32_t byte_len);
  Status takeCredit(uint32_t value);

  // Polls the CQ into ready_ (and retires sends); returns entries seen.
  size_t reapCq(size_t max_entries);
  // Reposts the receive WQEs taken and posts deferred WRs: after every reap that may sleep next.
  Status settle();
  void fail(Status status);

  VerbsLinkQp q_;    // first: destroyed last
  UniqueFd socket_;  // bootstrap socket, kept open: its hang-up is the peer's death notice
  std::string peer_node_;
  std::string no_reason_;
  VerbsPeerInfo peer_;
  UniqueFd event_fd_;
  Status broken_;

  struct SendSlot {
    ibv_send_wr wr;
    ibv_sge sge;
    bool has_cookie;  // a write with a cookie was posted at or before this WR
    uint64_t cookie;  // the last such cookie
  };
  std::vector<SendSlot> slots_;  // indexed by sequence % send_depth
  uint64_t next_seq_ = 0;
  uint64_t retired_seq_ = 0;  // WRs below this have completed
  uint64_t last_signaled_seq_ = 0;
  ibv_send_wr* chain_head_ = nullptr;  // WRs staged since the last post
  ibv_send_wr* chain_tail_ = nullptr;
  bool any_cookie_ = false;
  uint64_t last_cookie_ = 0;
  bool any_reported_ = false;
  uint64_t last_reported_ = 0;

  uint64_t control_sent_ = 0;                           // control messages staged, ever
  uint64_t control_acked_ = 0;                          // of those, consumed by the peer (credits)
  std::deque<std::vector<std::byte>> control_backlog_;  // waiting for credits or room
  uint64_t control_received_ = 0;                       // the peer's control messages taken, ever
  uint64_t credit_returned_ = 0;  // control_received_ as last told to the peer

  std::vector<LinkEvent> ready_;  // events not yet returned by poll()
  size_t ready_head_ = 0;
  uint32_t reposts_owed_ = 0;
  std::vector<ibv_recv_wr> recv_wrs_;
  bool armed_ = false;
};

}  // namespace rdmesh::transport
