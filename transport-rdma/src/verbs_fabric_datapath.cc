// verbs backend, data path: writes are chained and posted once per loop iteration (one doorbell
// for every stream's writes), signalled selectively; receive WQEs are reposted as their
// completions are polled, so the receive-WQE credits the session hands out are always backed.
#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "verbs_fabric.h"

namespace rdmesh::transport {

namespace {
constexpr size_t kStagingAlign = 64;  // each write starts on its own cache line
constexpr size_t kPollBatch = 32;

}  // namespace

Result<std::unique_ptr<FabricConnection>> VerbsConnection::create(Parts parts) {
  std::unique_ptr<VerbsConnection> c(new VerbsConnection(std::move(parts)));
  if (Status s = c->init(); !s) return s;
  return std::unique_ptr<FabricConnection>(std::move(c));
}

VerbsConnection::VerbsConnection(Parts parts) : p_(std::move(parts)) {}

VerbsConnection::~VerbsConnection() {
  // Events taken from the channel were acknowledged as they were read; ibv_destroy_cq (in p_)
  // would wait forever for an unacknowledged one.
}

Status VerbsConnection::init() {
  auto ep = makeCompletionEpoll(p_.qp.channel.get(), p_.qp.context.get());
  if (!ep) return ep.status();
  event_fd_ = std::move(ep.value());
  slots_.resize(p_.qp.send_depth);
  staging_bytes_ = p_.qp.staging->bytes().size();
  recv_wrs_.resize(p_.qp.recv_wqes);
  ready_.reserve(p_.qp.recv_wqes);
  return {};
}

// ---------------------------------------------------------------- send side

bool VerbsConnection::reserveStaging(size_t len, size_t* offset) {
  size_t pos = staging_head_ % staging_bytes_;
  uint64_t pad = staging_bytes_ - pos < len ? staging_bytes_ - pos : 0;
  uint64_t used = staging_head_ - staging_tail_;
  if (used + pad + len > staging_bytes_) return false;
  *offset = pad ? 0 : pos;
  staged_pad_ = pad;
  return true;
}

std::span<std::byte> VerbsConnection::stageWrite(uint64_t remote_offset, size_t max_len) {
  if (!broken_ || max_len == 0) return {};
  if (remote_offset > p_.peer.area_bytes || max_len > p_.peer.area_bytes - remote_offset) {
    broken_ = internalError(fmt::format("verbs: write of {} bytes at {} outside the peer's area",
                                        max_len, remote_offset));
    return {};
  }
  size_t at = 0;
  bool room = sendsInFlight() < p_.qp.send_depth && reserveStaging(max_len, &at);
  if (!room) {
    // Completions may already be waiting: retire them and try once more.
    reapCq(kPollBatch);
    room = sendsInFlight() < p_.qp.send_depth && reserveStaging(max_len, &at);
  }
  if (!room) {
    starved_ = true;
    return {};
  }
  staged_ = true;
  staged_at_ = at;
  staged_remote_ = remote_offset;
  return p_.qp.staging->bytes().subspan(at, max_len);
}

void VerbsConnection::postWriteWithImm(size_t len, uint32_t imm) {
  if (!staged_) return;
  staged_ = false;
  if (len == 0) return;
  uint64_t seq = next_seq_++;
  SendSlot& slot = slots_[seq % slots_.size()];
  staging_head_ += staged_pad_ + ((len + kStagingAlign - 1) & ~(kStagingAlign - 1));
  slot.staging_end = staging_head_;
  unsignaled_bytes_ += len;
  // Selective signalling: a completion every quarter of the send queue or of the staging area,
  // so that whenever either is full a signalled write is in flight to free it.
  bool signal =
      seq - last_signaled_seq_ >= p_.qp.send_depth / 4 || unsignaled_bytes_ >= staging_bytes_ / 4;
  if (signal) {
    last_signaled_seq_ = seq;
    unsignaled_bytes_ = 0;
  }
  slot.sge = {reinterpret_cast<uintptr_t>(p_.qp.staging->bytes().data() + staged_at_),
              static_cast<uint32_t>(len), p_.qp.staging_mr->lkey};
  ibv_send_wr& wr = slot.wr;
  wr = {};
  wr.wr_id = seq;
  wr.sg_list = &slot.sge;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_RDMA_WRITE_WITH_IMM;
  wr.send_flags =
      (signal ? IBV_SEND_SIGNALED : 0) | (len <= p_.qp.max_inline ? IBV_SEND_INLINE : 0);
  wr.imm_data = htonl(imm);
  wr.wr.rdma.remote_addr = p_.peer.area_addr + staged_remote_;
  wr.wr.rdma.rkey = p_.peer.area_rkey;
  if (chain_tail_) {
    chain_tail_->next = &wr;
  } else {
    chain_head_ = &wr;
  }
  chain_tail_ = &wr;
}

Status VerbsConnection::flush() {
  // Not every chain ends signalled: a reply would then cost a wake-up for its send completion.
  // Staging held by an idle connection is freed by the next signalled write.
  if (chain_head_ != nullptr && broken_) {
    ibv_send_wr* bad = nullptr;
    int rc = ibv_post_send(p_.qp.qp.get(), chain_head_, &bad);
    if (rc != 0) {
      broken_ = unavailable(fmt::format("verbs: ibv_post_send: {}", strerror(rc)));
    }
  }
  chain_head_ = chain_tail_ = nullptr;
  return broken_;
}

void VerbsConnection::retireSends(uint64_t through_seq) {
  // A signalled completion means every earlier write on this RC QP has completed too.
  if (through_seq < retired_seq_ || through_seq >= next_seq_) return;
  staging_tail_ = slots_[through_seq % slots_.size()].staging_end;
  retired_seq_ = through_seq + 1;
  if (starved_) {
    starved_ = false;
    resumed_ = true;
  }
}

bool VerbsConnection::resumedSending() {
  return std::exchange(resumed_, false);
}

// ---------------------------------------------------------------- completions

size_t VerbsConnection::reapCq(size_t max_entries) {
  ibv_wc wcs[kPollBatch];
  size_t seen = 0;
  while (seen < max_entries && broken_) {
    int n = ibv_poll_cq(p_.qp.cq.get(), static_cast<int>(std::min(kPollBatch, max_entries - seen)),
                        wcs);
    if (n < 0) {
      broken_ = unavailable("verbs: ibv_poll_cq failed (CQ overrun?)");
      break;
    }
    for (int i = 0; i < n; ++i) {
      const ibv_wc& wc = wcs[i];
      if (wc.status != IBV_WC_SUCCESS) {
        broken_ = completionError(wc, "verbs");
        break;
      }
      if (wc.opcode == IBV_WC_RDMA_WRITE) {
        retireSends(wc.wr_id);
        continue;
      }
      if (wc.opcode != IBV_WC_RECV_RDMA_WITH_IMM) {
        broken_ = protocolError(
            fmt::format("verbs: unexpected completion opcode {}", static_cast<int>(wc.opcode)));
        break;
      }
      uint32_t imm = ntohl(wc.imm_data);
      if (wc.byte_len != wire::immLength(imm) || wc.byte_len == 0) {
        broken_ = protocolError(
            fmt::format("verbs: write of {} bytes with immediate {:#x}", wc.byte_len, imm));
        break;
      }
      ++reposts_owed_;
      ready_.push_back({imm, wc.byte_len});
    }
    seen += static_cast<size_t>(std::max(n, 0));
    if (n < static_cast<int>(kPollBatch)) break;
  }
  return seen;
}

Status VerbsConnection::repostReceives() {
  // Write-with-immediate consumes a receive WQE but no buffer: WQEs without scatter entries.
  Status s = postEmptyReceives(p_.qp.qp.get(), reposts_owed_, recv_wrs_);
  reposts_owed_ = 0;
  return s;
}

Result<size_t> VerbsConnection::poll(std::span<Completion> out) {
  if (ready_head_ == ready_.size()) {
    ready_.clear();
    ready_head_ = 0;
    reapCq(out.size());
  }
  if (!broken_) return broken_;
  // Receive WQEs go back before the session sees (and later credits) the completions.
  if (Status s = repostReceives(); !s) {
    broken_ = s;
    return s;
  }
  size_t n = std::min(out.size(), ready_.size() - ready_head_);
  std::copy_n(ready_.begin() + static_cast<ptrdiff_t>(ready_head_), n, out.begin());
  ready_head_ += n;
  return n;
}

bool VerbsConnection::prepareToSleep() {
  if (ready_head_ < ready_.size() || !broken_) return false;
  if (!armed_) {
    if (ibv_req_notify_cq(p_.qp.cq.get(), 0) != 0) {
      broken_ = unavailable("verbs: ibv_req_notify_cq failed");
      return false;
    }
    armed_ = true;
  }
  // A completion that arrived before the request raised no event: look once more.
  ready_.clear();
  ready_head_ = 0;
  reapCq(p_.qp.recv_wqes + p_.qp.send_depth);
  return ready_.empty() && broken_ && !resumed_;
}

void VerbsConnection::afterWakeup() {
  if (takeCqEvent(p_.qp.channel.get(), p_.qp.cq.get())) {
    armed_ = false;
    return;
  }
  // Then the async fd woke us (level-triggered: one pending with a CQ event wakes us again).
  drainAsyncEvents();
}

void VerbsConnection::drainAsyncEvents() {
  ibv_async_event ev{};
  while (ibv_get_async_event(p_.qp.context.get(), &ev) == 0) {
    if (isFatalAsyncEvent(ev.event_type) && broken_) {
      broken_ = unavailable(fmt::format("verbs: async event on {}: {}", p_.qp.device_name,
                                        ibv_event_type_str(ev.event_type)));
    }
    ibv_ack_async_event(&ev);
  }
}

}  // namespace rdmesh::transport
