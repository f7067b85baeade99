// verbs backend: one RC queue pair per peer node. Every session write is an RDMA WRITE WITH
// IMMEDIATE from a registered send staging area (the caller's read() fills it: no other copy)
// straight into the peer's registered receive area; the immediate becomes the peer's completion.
// One CQ per connection, bound to a completion channel that sleeps in the event loop.
#pragma once

#include <infiniband/verbs.h>

#include <memory>
#include <string>
#include <vector>

#include "rdmesh/transport/fabric.h"
#include "rdmesh/transport/qp_state_machine.h"
#include "rdmesh/transport/verbs_bootstrap.h"
#include "unix_fd.h"
#include "verbs_device.h"

namespace rdmesh::transport {

// Everything one connection owns on the device, in construction order (destroyed in reverse).
struct VerbsQp {
  std::string device_name;
  QpPath path;
  uint32_t psn = 0;
  uint32_t send_depth = 0;
  uint32_t recv_wqes = 0;
  uint32_t max_inline = 0;
  VerbsPtr<ibv_context> context;
  VerbsPtr<ibv_pd> pd;
  VerbsPtr<ibv_comp_channel> channel;
  VerbsPtr<ibv_cq> cq;
  VerbsPtr<ibv_mr> area_mr;
  std::unique_ptr<MemoryRegion> staging;
  VerbsPtr<ibv_mr> staging_mr;
  VerbsPtr<ibv_qp> qp;
  QpStateMachine state;

  VerbsQp() = default;
  VerbsQp(VerbsQp&&) = default;
  VerbsQp& operator=(VerbsQp&&) = default;
  ~VerbsQp() {
    // The QP goes before the CQ and the MRs it uses (members would go in reverse order anyway;
    // spelled out because ibv_destroy_cq fails while a QP still uses it).
    qp.reset();
  }
};

class VerbsConnection : public FabricConnection {
 public:
  struct Parts {
    UniqueFd socket;  // bootstrap socket, kept open: its hang-up is the peer's death notice
    HelloExchange hello;
    std::unique_ptr<MemoryRegion> area;
    VerbsQp qp;
    VerbsPeerInfo peer;
  };
  static Result<std::unique_ptr<FabricConnection>> create(Parts parts);
  ~VerbsConnection() override;

  wire::FabricKind kind() const override { return wire::FabricKind::kVerbs; }
  const Hello& peerHello() const override { return p_.hello.peer; }
  uint16_t version() const override { return p_.hello.version; }
  std::span<std::byte> receiveArea() override { return p_.area->bytes(); }
  // Registered memory is pinned: giving pages back would detach them from the MR. A no-op.
  void releaseReceiveMemory(uint64_t /*offset*/, uint64_t /*bytes*/) override {}

  std::span<std::byte> stageWrite(uint64_t remote_offset, size_t max_len) override;
  void postWriteWithImm(size_t len, uint32_t imm) override;
  Status flush() override;
  bool wantsWritable() const override { return false; }

  Result<size_t> poll(std::span<Completion> out) override;

  int eventFd() const override { return event_fd_.get(); }
  int livenessFd() const override { return p_.socket.get(); }
  bool eventFdIsDoorbell() const override { return false; }
  // CQ polling is a read of memory the device writes: worth a short spin, like shm.
  bool pollsUsefully() const override { return true; }
  bool hasBufferedCompletions() const override { return ready_head_ < ready_.size() || !broken_; }
  bool prepareToSleep() override;
  void afterWakeup() override;
  void markAwake() override {}
  bool resumedSending() override;

 private:
  explicit VerbsConnection(Parts parts);
  Status init();
  // Polls the CQ: send completions retire staging and send-queue slots, receive completions go
  // to ready_. Returns the number of CQ entries seen.
  size_t reapCq(size_t max_entries);
  void retireSends(uint64_t through_seq);
  Status repostReceives();
  void drainAsyncEvents();
  bool reserveStaging(size_t len, size_t* offset);
  uint64_t sendsInFlight() const { return next_seq_ - retired_seq_; }

  Parts p_;
  UniqueFd event_fd_;  // epoll set: completion channel + device async events

  // send side
  struct SendSlot {
    ibv_send_wr wr;
    ibv_sge sge;
    uint64_t staging_end;  // staging_head_ after this write: freed up to here when it completes
  };
  std::vector<SendSlot> slots_;  // indexed by sequence % send_depth
  uint64_t next_seq_ = 0;        // sequence of the next write
  uint64_t retired_seq_ = 0;     // writes below this have completed
  uint64_t last_signaled_seq_ = 0;
  uint64_t unsignaled_bytes_ = 0;
  ibv_send_wr* chain_head_ = nullptr;  // writes posted since the last flush
  ibv_send_wr* chain_tail_ = nullptr;
  size_t staging_bytes_ = 0;
  uint64_t staging_head_ = 0;  // bytes handed out, including the padding skipped at the end
  uint64_t staging_tail_ = 0;  // bytes freed by completed writes
  bool staged_ = false;
  size_t staged_at_ = 0;
  uint64_t staged_pad_ = 0;
  uint64_t staged_remote_ = 0;
  bool starved_ = false;  // stageWrite() failed for want of room
  bool resumed_ = false;

  // receive side
  std::vector<Completion> ready_;  // receive completions not yet returned by poll()
  size_t ready_head_ = 0;
  uint32_t reposts_owed_ = 0;
  std::vector<ibv_recv_wr> recv_wrs_;
  bool armed_ = false;  // CQ notification requested since the last event

  Status broken_;
};

}  // namespace rdmesh::transport
