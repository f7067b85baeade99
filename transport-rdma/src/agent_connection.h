// Agent fabric (mesh mode), data path: the sidecar's side of one session region (agent_wire.h).
// Writes go into the region's send staging (the caller's read() is the only copy) and are handed
// to the node agent as Submissions; the remote sidecar's writes land in the region's receive area
// and are announced as Arrivals. Both queues are SPSC rings with the shm backend's sleep/doorbell
// discipline (doorbell.h).
#pragma once

#include <memory>
#include <vector>

#include "doorbell.h"
#include "memory_region.h"
#include "rdmesh/transport/agent_wire.h"
#include "rdmesh/transport/fabric.h"
#include "staging_ring.h"
#include "unix_fd.h"

namespace rdmesh::transport {

// One session's region: a memfd laid out by buildAgentRegionLayout(). As a MemoryRegion it is
// the session's receive area.
class AgentRegion : public MemoryRegion {
 public:
  // Creates the memfd and writes the header (layout and zeroed indexes).
  static Result<std::unique_ptr<AgentRegion>> create(const wire::agent::RegionLayout& layout);

  std::span<std::byte> bytes() override { return section(layout_.receive_offset, layout_.receive_bytes); }
  const wire::agent::RegionLayout& layout() const { return layout_; }
  wire::agent::RegionHeader& header() { return *reinterpret_cast<wire::agent::RegionHeader*>(base()); }
  wire::agent::Submission* submissions() {
    return reinterpret_cast<wire::agent::Submission*>(base() + layout_.sq_offset);
  }
  const wire::agent::Arrival* arrivals() {
    return reinterpret_cast<const wire::agent::Arrival*>(base() + layout_.cq_offset);
  }
  std::span<std::byte> staging() { return section(layout_.staging_offset, layout_.staging_bytes); }
  int fd() const { return memfd_->fd(); }

 private:
  AgentRegion(std::unique_ptr<MemfdRegion> memfd, const wire::agent::RegionLayout& layout)
      : memfd_(std::move(memfd)), layout_(layout) {}
  std::byte* base() { return memfd_->bytes().data(); }
  std::span<std::byte> section(uint64_t offset, uint64_t bytes) { return {base() + offset, bytes}; }

  std::unique_ptr<MemfdRegion> memfd_;
  wire::agent::RegionLayout layout_;
};

class AgentConnection : public FabricConnection {
 public:
  struct Parts {
    UniqueFd session;  // node.sock connection: its hang-up is the session's death notice
    HelloExchange hello;
    std::unique_ptr<AgentRegion> region;
    UniqueFd doorbell_to_agent;
    UniqueFd doorbell_to_sidecar;
  };
  explicit AgentConnection(Parts parts);

  wire::FabricKind kind() const override { return wire::FabricKind::kAgent; }
  const Hello& peerHello() const override { return p_.hello.peer; }
  uint16_t version() const override { return p_.hello.version; }
  std::span<std::byte> receiveArea() override { return p_.region->bytes(); }
  // The agent may have registered the region with an RNIC (pinned): giving pages back would
  // detach them from its memory registration. A no-op, as on the verbs backend.
  void releaseReceiveMemory(uint64_t /*offset*/, uint64_t /*bytes*/) override {}

  std::span<std::byte> stageWrite(uint64_t remote_offset, size_t max_len) override;
  void postWriteWithImm(size_t len, uint32_t imm) override;
  Status flush() override;
  bool wantsWritable() const override { return false; }

  Result<size_t> poll(std::span<Completion> out) override;

  int eventFd() const override { return p_.doorbell_to_sidecar.get(); }
  bool eventFdIsDoorbell() const override { return true; }
  int livenessFd() const override { return p_.session.get(); }
  bool pollsUsefully() const override { return true; }
  bool hasBufferedCompletions() const override { return false; }
  bool prepareToSleep() override;
  void afterWakeup() override;
  void markAwake() override;
  bool resumedSending() override { return std::exchange(resumed_, false); }

 private:
  // Frees the staging of submissions the agent has completed.
  void retire();

  Parts p_;
  wire::agent::RegionHeader& header_;
  const uint32_t sq_mask_;
  const uint32_t cq_mask_;
  const uint64_t peer_area_bytes_;
  StagingRing staging_;
  std::vector<uint64_t> staging_end_;  // per SQ entry: staging position to release once done
  uint64_t sq_tail_ = 0;       // submissions written (published by flush())
  uint64_t sq_published_ = 0;  // what flush() last published
  uint64_t sq_retired_ = 0;    // completions already applied to staging_
  uint64_t cq_head_ = 0;
  bool staged_ = false;
  size_t staged_at_ = 0;
  uint64_t staged_remote_ = 0;
  bool starved_ = false;  // stageWrite() came back empty for want of room
  bool resumed_ = false;
  SleepMark sleep_;
  Status broken_;  // an error found while posting, reported by flush()
};

}  // namespace rdmesh::transport
