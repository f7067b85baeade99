// shm backend, data path: completions through a lock-free single-producer ring; the doorbell
// protocol is Dekker-style (both sides use seq_cst on "sleeping" and the queue index) so a
// wake-up can never be lost, and a busy receiver is never woken by a syscall.
#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

#include "doorbell.h"
#include "shm_fabric.h"

namespace rdmesh::transport {

ShmConnection::ShmConnection(Parts parts)
    : p_(std::move(parts)),
      local_depth_((p_.local_queue->bytes().size() - sizeof(ShmQueueHeader)) / sizeof(uint64_t)),
      peer_depth_(p_.hello.peer.geometry.recv_depth) {}

ShmQueueHeader& ShmConnection::localQueue() const {
  return *reinterpret_cast<ShmQueueHeader*>(p_.local_queue->bytes().data());
}
ShmQueueHeader& ShmConnection::peerQueue() const {
  return *reinterpret_cast<ShmQueueHeader*>(p_.peer_queue->bytes().data());
}
uint64_t* ShmConnection::peerEntries() const {
  return reinterpret_cast<uint64_t*>(p_.peer_queue->bytes().data() + sizeof(ShmQueueHeader));
}
const uint64_t* ShmConnection::localEntries() const {
  return reinterpret_cast<const uint64_t*>(p_.local_queue->bytes().data() + sizeof(ShmQueueHeader));
}

void ShmConnection::releaseReceiveMemory(uint64_t offset, uint64_t bytes) {
  // MADV_REMOVE frees the memfd's backing pages, for the peer's mapping too.
  ::madvise(p_.local_area->bytes().data() + offset, bytes, MADV_REMOVE);
}

std::span<std::byte> ShmConnection::stageWrite(uint64_t remote_offset, size_t max_len) {
  auto area = p_.peer_area->bytes();
  if (remote_offset > area.size() || max_len > area.size() - remote_offset) return {};
  staged_ = true;
  staged_offset_ = remote_offset;
  return area.subspan(remote_offset, max_len);
}

void ShmConnection::postWriteWithImm(size_t len, uint32_t imm) {
  if (!staged_) return;
  staged_ = false;
  if (len == 0) return;
  ShmQueueHeader& q = peerQueue();
  uint64_t head = q.head.load(std::memory_order_acquire);
  if (peer_tail_ - head >= peer_depth_) {
    // The session's receive-WQE credits make this impossible with an honest peer.
    broken_ = protocolError("shm: peer completion queue overrun");
    return;
  }
  peerEntries()[peer_tail_ % peer_depth_] = uint64_t{imm} | (uint64_t{len} << 32);
  ++peer_tail_;
  // Release: the payload (written before) is visible before the peer sees the new tail.
  q.tail.store(peer_tail_, std::memory_order_release);
  // Wake a sleeping peer now rather than at the end of our loop iteration: it starts on this
  // write while we produce the next (bulk pipelines; a request is answered sooner). The ring
  // clears the flag, so a burst of writes costs one syscall at most; an awake peer costs none.
  posted_ = true;
}

void ShmConnection::ringIfSleeping() {
  if (Status s = wakeIfSleeping(peerQueue().sleeping, p_.peer_doorbell.get()); !s) broken_ = s;
}

Status ShmConnection::flush() {
  if (posted_) ringIfSleeping();
  posted_ = false;
  return broken_;
}

Result<size_t> ShmConnection::poll(std::span<Completion> out) {
  ShmQueueHeader& q = localQueue();
  uint64_t tail = q.tail.load(std::memory_order_acquire);
  if (tail - local_head_ > local_depth_) {
    return protocolError(fmt::format("shm: peer published {} completions into a queue of {}",
                                     tail - local_head_, local_depth_));
  }
  size_t n = 0;
  const uint64_t* entries = localEntries();
  while (local_head_ != tail && n < out.size()) {
    uint64_t e = entries[local_head_ % local_depth_];
    auto imm = static_cast<uint32_t>(e);
    auto len = static_cast<uint32_t>(e >> 32);
    if (len != wire::immLength(imm) || len == 0) {
      return protocolError(
          fmt::format("shm: completion length {} disagrees with immediate {:#x}", len, imm));
    }
    out[n++] = {imm, len};
    ++local_head_;
  }
  if (n) q.head.store(local_head_, std::memory_order_release);
  return n;
}

bool ShmConnection::prepareToSleep() {
  ShmQueueHeader& q = localQueue();
  return sleep_.prepare(q.sleeping,
                        [&] { return q.tail.load(std::memory_order_seq_cst) != local_head_; });
}

void ShmConnection::markAwake() {
  sleep_.clear(localQueue().sleeping);
}

void ShmConnection::afterWakeup() {
  sleep_.afterWakeup(localQueue().sleeping);
}

}  // namespace rdmesh::transport
