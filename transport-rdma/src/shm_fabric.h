// shm backend: two processes on one host (across network namespaces) map each other's receive
// area (memfd). A write is the caller's own read() straight into the peer's memory; its
// completion goes into the peer's completion queue, a single-producer ring in a second memfd.
// The doorbell is an eventfd that is rung only when the peer has said it is going to sleep.
#pragma once

#include <atomic>
#include <memory>

#include "doorbell.h"
#include "memory_region.h"
#include "rdmesh/transport/fabric.h"
#include "unix_fd.h"

namespace rdmesh::transport {

// Lives at the start of each side's queue memfd, followed by `depth` uint64_t entries.
struct ShmQueueHeader {
  alignas(64) std::atomic<uint64_t> tail;      // written by the peer (producer)
  alignas(64) std::atomic<uint64_t> head;      // written by the owner (consumer)
  alignas(64) std::atomic<uint32_t> sleeping;  // owner is blocked (or about to) on its doorbell
};
static_assert(std::atomic<uint64_t>::is_always_lock_free, "queue indexes are shared by processes");
static_assert(sizeof(ShmQueueHeader) == 192);

constexpr size_t shmQueueBytes(uint32_t depth) {
  return sizeof(ShmQueueHeader) + size_t{depth} * sizeof(uint64_t);
}

// The shm bootstrap (Hellos, then memfds and doorbells over SCM_RIGHTS) over an already connected
// AF_UNIX stream socket: the standalone listener's, or in mesh mode the end of a socketpair the
// node agent handed over. The dialer sends first. `brokered_by` is kept with the connection.
Result<std::unique_ptr<FabricConnection>> bringUpShm(UniqueFd sock, const Hello& local,
                                                     std::unique_ptr<MemoryRegion> area,
                                                     bool dialer, Deadline deadline,
                                                     UniqueFd brokered_by = {});
// A receive area the shm backend can hand to its peer (a memfd).
Result<std::unique_ptr<MemoryRegion>> makeShmRegion(size_t bytes);

class ShmConnection : public FabricConnection {
 public:
  struct Parts {
    UniqueFd socket;  // bootstrap socket, kept open: its hang-up is the peer's death notice
    HelloExchange hello;
    std::unique_ptr<MemoryRegion> local_area;
    std::unique_ptr<MemfdRegion> local_queue;
    UniqueFd local_doorbell;
    std::unique_ptr<MemfdRegion> peer_area;
    std::unique_ptr<MemfdRegion> peer_queue;
    UniqueFd peer_doorbell;
    // Mesh mode: the node.sock connection through which the agent brokered this session; kept
    // open for the session's life, as the contract asks (nothing is read from it).
    UniqueFd brokered_by;
  };
  explicit ShmConnection(Parts parts);

  wire::FabricKind kind() const override { return wire::FabricKind::kShm; }
  const Hello& peerHello() const override { return p_.hello.peer; }
  uint16_t version() const override { return p_.hello.version; }
  std::span<std::byte> receiveArea() override { return p_.local_area->bytes(); }
  void releaseReceiveMemory(uint64_t offset, uint64_t bytes) override;

  std::span<std::byte> stageWrite(uint64_t remote_offset, size_t max_len) override;
  void postWriteWithImm(size_t len, uint32_t imm) override;
  Status flush() override;
  bool wantsWritable() const override { return false; }

  Result<size_t> poll(std::span<Completion> out) override;

  int eventFd() const override { return p_.local_doorbell.get(); }
  int livenessFd() const override { return p_.socket.get(); }
  bool eventFdIsDoorbell() const override { return true; }
  bool pollsUsefully() const override { return true; }
  bool hasBufferedCompletions() const override { return false; }
  bool prepareToSleep() override;
  void afterWakeup() override;
  void markAwake() override;

 private:
  void ringIfSleeping();
  ShmQueueHeader& localQueue() const;
  ShmQueueHeader& peerQueue() const;
  uint64_t* peerEntries() const;
  const uint64_t* localEntries() const;

  Parts p_;
  uint32_t local_depth_;
  uint32_t peer_depth_;
  uint64_t peer_tail_ = 0;   // our copy of what we published to the peer
  uint64_t local_head_ = 0;  // our copy of what we consumed
  uint64_t staged_offset_ = 0;
  bool staged_ = false;
  SleepMark sleep_;
  bool posted_ = false;
  Status broken_;  // an error found while posting, reported by flush()
};

}  // namespace rdmesh::transport
