// Agent fabric, data path. Index discipline (agent_wire.h): each index has one writer; entries
// are written before the index that publishes them is stored with release, and read after the
// index is loaded with acquire. The agent is trusted no further than the shm backend trusts its
// peer: an index that runs ahead of what is possible is a protocol error, never a wild read.
#include <fmt/format.h>

#include "agent_connection.h"

namespace rdmesh::transport {

namespace agentwire = wire::agent;

AgentConnection::AgentConnection(Parts parts)
    : p_(std::move(parts)),
      header_(p_.region->header()),
      sq_mask_(p_.region->layout().sq_depth - 1),
      cq_mask_(p_.region->layout().cq_depth - 1),
      peer_area_bytes_(p_.hello.peer.geometry.receiveAreaBytes()),
      staging_(p_.region->layout().staging_bytes),
      staging_end_(p_.region->layout().sq_depth) {}

void AgentConnection::retire() {
  uint64_t completed = header_.sq_completed.load(std::memory_order_acquire);
  if (completed == sq_retired_) return;
  if (completed > sq_published_ || completed < sq_retired_) {
    broken_ = protocolError(fmt::format(
        "agent: {} submissions completed, but {} were published and {} completed before",
        completed, sq_published_, sq_retired_));
    return;
  }
  staging_.release(staging_end_[(completed - 1) & sq_mask_]);
  sq_retired_ = completed;
  if (starved_) {
    starved_ = false;
    resumed_ = true;
  }
}

std::span<std::byte> AgentConnection::stageWrite(uint64_t remote_offset, size_t max_len) {
  if (!broken_ || max_len == 0) return {};
  max_len = std::min<size_t>(max_len, wire::kMaxMessageBytes);
  if (remote_offset > peer_area_bytes_ || max_len > peer_area_bytes_ - remote_offset) {
    broken_ = internalError(fmt::format("agent: write of {} bytes at {} outside the peer's area",
                                        max_len, remote_offset));
    return {};
  }
  auto room = [&]() -> std::optional<size_t> {
    if (sq_tail_ - sq_retired_ > sq_mask_) return std::nullopt;  // every SQ entry in flight
    return staging_.reserve(max_len);
  };
  std::optional<size_t> at = room();
  if (!at) {
    retire();  // completions may be waiting
    at = room();
  }
  if (!at) {
    starved_ = true;
    return {};
  }
  staged_ = true;
  staged_at_ = *at;
  staged_remote_ = remote_offset;
  return p_.region->staging().subspan(*at, max_len);
}

void AgentConnection::postWriteWithImm(size_t len, uint32_t imm) {
  if (!staged_) return;
  staged_ = false;
  if (len == 0) return;
  p_.region->submissions()[sq_tail_ & sq_mask_] = {staged_at_, staged_remote_,
                                                   static_cast<uint32_t>(len), imm};
  staging_end_[sq_tail_ & sq_mask_] = staging_.commit(len);
  ++sq_tail_;
}

Status AgentConnection::flush() {
  if (sq_tail_ != sq_published_) {
    // Release: the staged bytes and the entries are visible before the agent sees the tail.
    header_.sq_tail.store(sq_tail_, std::memory_order_release);
    sq_published_ = sq_tail_;
    if (Status s = wakeIfSleeping(header_.agent_sleeping, p_.doorbell_to_agent.get()); !s) {
      broken_ = s;
    }
  }
  return broken_;
}

Result<size_t> AgentConnection::poll(std::span<Completion> out) {
  retire();
  if (!broken_) return broken_;
  uint64_t tail = header_.cq_tail.load(std::memory_order_acquire);
  if (tail - cq_head_ > uint64_t{cq_mask_} + 1) {
    return protocolError(fmt::format("agent: {} arrivals published into a queue of {}",
                                     tail - cq_head_, cq_mask_ + 1));
  }
  size_t n = 0;
  const agentwire::Arrival* arrivals = p_.region->arrivals();
  while (cq_head_ != tail && n < out.size()) {
    agentwire::Arrival a = arrivals[cq_head_ & cq_mask_];
    if (a.byte_len != wire::immLength(a.imm) || a.byte_len == 0) {
      return protocolError(fmt::format("agent: arrival of {} bytes disagrees with immediate {:#x}",
                                       a.byte_len, a.imm));
    }
    out[n++] = {a.imm, a.byte_len};
    ++cq_head_;
  }
  if (n) {
    header_.cq_head.store(cq_head_, std::memory_order_release);
    return n;
  }
  // Nothing is written after `closed`: once the queue is drained, the session is over.
  if (header_.closed.load(std::memory_order_acquire) != 0) {
    return unavailable("the node agent closed the session (the peer sidecar or its node is gone)");
  }
  return n;
}

bool AgentConnection::prepareToSleep() {
  return sleep_.prepare(header_.sidecar_sleeping, [&] {
    return header_.cq_tail.load(std::memory_order_seq_cst) != cq_head_ ||
           header_.closed.load(std::memory_order_seq_cst) != 0 ||
           (starved_ && header_.sq_completed.load(std::memory_order_seq_cst) != sq_retired_);
  });
}

void AgentConnection::markAwake() {
  sleep_.clear(header_.sidecar_sleeping);
}

void AgentConnection::afterWakeup() {
  sleep_.afterWakeup(header_.sidecar_sleeping);
}

}  // namespace rdmesh::transport
