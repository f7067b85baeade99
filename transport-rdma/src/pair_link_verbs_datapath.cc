// verbs PairLink, data path. Every WR (write, control message, credit return) takes one send
// queue slot; a chain is posted once per flush() with one doorbell, and its last WR is signalled
// (plus every send_depth / 4 in between), so every write's completion is reported soon and the
// queue can never fill with unsignalled WRs. A signalled completion retires every WR before it
// (RC completes in order): kWriteDone(c) means every write with cookie <= c has completed.
// Receive WQEs are reposted as soon as their completions are polled.
#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "pair_link_verbs.h"
#include "rdmesh/transport/link_wire.h"

namespace rdmesh::transport {

namespace {
namespace wl = wire::link;
constexpr size_t kPollBatch = 32;
// Control messages queued behind missing credits; beyond this the peer is not reading them.
constexpr size_t kMaxControlBacklog = 4096;
}  // namespace

void VerbsPairLink::fail(Status status) {
  if (broken_) broken_ = std::move(status);
}

RemoteMemory VerbsPairLink::describe(const RegisteredMemory& memory) const {
  const LinkRegistration* reg = ownRegistration(*q_.core, memory);
  if (reg == nullptr || reg->mr() == nullptr) return {};
  return {reinterpret_cast<uintptr_t>(reg->bytes().data()), reg->mr()->rkey, reg->bytes().size()};
}

// ---------------------------------------------------------------- send side

ibv_send_wr& VerbsPairLink::stage(uint32_t imm, uint64_t remote_addr, uint32_t rkey,
                                  const std::byte* local, uint32_t len, uint32_t lkey) {
  uint64_t seq = next_seq_++;
  SendSlot& slot = slots_[seq % slots_.size()];
  slot.has_cookie = any_cookie_;
  slot.cookie = last_cookie_;
  slot.sge = {reinterpret_cast<uintptr_t>(local), len, lkey};
  ibv_send_wr& wr = slot.wr;
  wr = {};
  wr.wr_id = seq;
  wr.sg_list = len ? &slot.sge : nullptr;
  wr.num_sge = len ? 1 : 0;
  wr.opcode = IBV_WR_RDMA_WRITE_WITH_IMM;
  bool signal = seq - last_signaled_seq_ >= q_.send_depth / 4;
  if (signal) last_signaled_seq_ = seq;
  wr.send_flags =
      (signal ? IBV_SEND_SIGNALED : 0) | (len > 0 && len <= q_.max_inline ? IBV_SEND_INLINE : 0);
  wr.imm_data = htonl(imm);
  wr.wr.rdma.remote_addr = remote_addr;
  wr.wr.rdma.rkey = rkey;
  if (chain_tail_) {
    chain_tail_->next = &wr;
  } else {
    chain_head_ = &wr;
  }
  chain_tail_ = &wr;
  return wr;
}

Status VerbsPairLink::postWrite(const RegisteredMemory& src, uint64_t src_offset, uint32_t len,
                                const RemoteMemory& dst, uint64_t dst_offset, uint32_t imm,
                                uint64_t cookie) {
  if (!broken_) return broken_;
  auto reg = checkWrite(*q_.core, src, src_offset, len, dst, dst_offset, imm);
  if (!reg) return reg.status();
  if (Status s = checkCookie(any_cookie_, last_cookie_, cookie); !s) return s;
  if ((*reg)->mr() == nullptr) return invalidArgument("pair link: source memory has no MR");
  if (!control_backlog_.empty()) {
    return unavailable("pair link: control messages wait for credits (retry after poll())");
  }
  if (sendQueueFull()) {
    reapCq(kPollBatch);  // completions may already be waiting
    if (!broken_) return broken_;
    if (sendQueueFull()) return unavailable("pair link: send queue full (retry after poll())");
  }
  any_cookie_ = true;
  last_cookie_ = cookie;
  stage(imm, dst.addr + dst_offset, dst.key, (*reg)->bytes().data() + src_offset, len,
        (*reg)->mr()->lkey);
  return {};
}

bool VerbsPairLink::canPostControl() const {
  return control_sent_ - control_acked_ < wl::kControlSlots && !sendQueueFull();
}

void VerbsPairLink::stageControl(std::span<const std::byte> message) {
  uint64_t slot_offset = (control_sent_ % wl::kControlSlots) * wl::kMaxControlBytes;
  std::byte* staged = q_.control_out->bytes().data() + slot_offset;
  std::memcpy(staged, message.data(), message.size());
  uint32_t imm =
      wl::encodeLinkInternalImm(wl::LinkImmKind::kControl, static_cast<uint32_t>(control_sent_));
  stage(imm, peer_.area_addr + slot_offset, peer_.area_rkey, staged,
        static_cast<uint32_t>(message.size()), q_.control_out_mr->lkey);
  ++control_sent_;
}

Status VerbsPairLink::sendControl(std::span<const std::byte> message) {
  if (!broken_) return broken_;
  if (Status s = checkControl(message); !s) return s;
  if (control_backlog_.empty() && canPostControl()) {
    stageControl(message);
    return {};
  }
  if (control_backlog_.size() >= kMaxControlBacklog) {
    fail(
        unavailable(fmt::format("pair link: {} control messages wait for credits; the peer does "
                                "not read them",
                                control_backlog_.size())));
    return broken_;
  }
  control_backlog_.emplace_back(message.begin(), message.end());
  return {};
}

Status VerbsPairLink::postDeferred() {
  // Credits first: they unblock the peer.
  if (control_received_ - credit_returned_ >= wl::kControlSlots / 2 && !sendQueueFull()) {
    credit_returned_ = control_received_;
    stage(wl::encodeLinkInternalImm(wl::LinkImmKind::kControlCredit,
                                    static_cast<uint32_t>(credit_returned_)),
          peer_.area_addr, peer_.area_rkey, nullptr, 0, 0);
  }
  while (!control_backlog_.empty() && canPostControl()) {
    stageControl(control_backlog_.front());
    control_backlog_.pop_front();
  }
  return postChain();
}

Status VerbsPairLink::postChain() {
  if (chain_head_ == nullptr || !broken_) {
    chain_head_ = chain_tail_ = nullptr;
    return broken_;
  }
  // The chain's last WR is signalled: its completion reports every write in the chain.
  chain_tail_->send_flags |= IBV_SEND_SIGNALED;
  last_signaled_seq_ = chain_tail_->wr_id;
  ibv_send_wr* bad = nullptr;
  int rc = ibv_post_send(q_.qp.get(), chain_head_, &bad);
  chain_head_ = chain_tail_ = nullptr;
  if (rc != 0) fail(unavailable(fmt::format("pair link: ibv_post_send: {}", strerror(rc))));
  return broken_;
}

Status VerbsPairLink::flush() {
  if (!broken_) return broken_;
  return postDeferred();
}

void VerbsPairLink::retireSends(uint64_t through_seq) {
  if (through_seq < retired_seq_ || through_seq >= next_seq_) return;
  retired_seq_ = through_seq + 1;
  const SendSlot& slot = slots_[through_seq % slots_.size()];
  if (slot.has_cookie && (!any_reported_ || slot.cookie > last_reported_)) {
    any_reported_ = true;
    last_reported_ = slot.cookie;
    ready_.push_back(LinkEvent::writeDone(slot.cookie));
  }
}

// ---------------------------------------------------------------- completions

Status VerbsPairLink::takeControl(uint32_t imm, uint32_t byte_len) {
  uint32_t expected = static_cast<uint32_t>(control_received_) & wl::kLinkImmValueMask;
  if (wl::linkImmValue(imm) != expected) {
    return protocolError(fmt::format("pair link: control message {} out of sequence (expected {})",
                                     wl::linkImmValue(imm), expected));
  }
  if (byte_len == 0 || byte_len > wl::kMaxControlBytes) {
    return protocolError(fmt::format("pair link: control message of {} bytes", byte_len));
  }
  const std::byte* bytes = q_.control_in->bytes().data() +
                           (control_received_ % wl::kControlSlots) * wl::kMaxControlBytes;
  ready_.push_back(LinkEvent::controlMessage({bytes, bytes + byte_len}));
  ++control_received_;  // copied out: the slot is free again
  return {};
}

Status VerbsPairLink::takeCredit(uint32_t value) {
  uint64_t delta = (value - control_acked_) & wl::kLinkImmValueMask;
  if (delta > control_sent_ - control_acked_) {
    return protocolError(fmt::format("pair link: credit for {} control messages, {} outstanding",
                                     delta, control_sent_ - control_acked_));
  }
  control_acked_ += delta;
  return {};
}

size_t VerbsPairLink::reapCq(size_t max_entries) {
  ibv_wc wcs[kPollBatch];
  size_t seen = 0;
  while (seen < max_entries && broken_) {
    int want = static_cast<int>(std::min(kPollBatch, max_entries - seen));
    int n = ibv_poll_cq(q_.cq.get(), want, wcs);
    if (n < 0) {
      fail(unavailable("pair link: ibv_poll_cq failed (CQ overrun?)"));
      break;
    }
    for (int i = 0; i < n && broken_; ++i) {
      const ibv_wc& wc = wcs[i];
      if (wc.status != IBV_WC_SUCCESS) {
        fail(completionError(wc, "pair link"));
        break;
      }
      if (wc.opcode == IBV_WC_RDMA_WRITE) {
        retireSends(wc.wr_id);
        continue;
      }
      if (wc.opcode != IBV_WC_RECV_RDMA_WITH_IMM) {
        fail(protocolError(fmt::format("pair link: unexpected completion opcode {}",
                                       static_cast<int>(wc.opcode))));
        break;
      }
      ++reposts_owed_;
      uint32_t imm = ntohl(wc.imm_data);
      if (!wl::isLinkImm(imm)) {
        ready_.push_back(LinkEvent::writeArrived(imm, wc.byte_len));
        continue;
      }
      switch (wl::linkImmKind(imm)) {
        case wl::LinkImmKind::kControl:
          fail(takeControl(imm, wc.byte_len));
          break;
        case wl::LinkImmKind::kControlCredit:
          fail(takeCredit(wl::linkImmValue(imm)));
          break;
        default:
          fail(protocolError(fmt::format("pair link: unknown link immediate {:#x}", imm)));
          break;
      }
    }
    seen += static_cast<size_t>(std::max(n, 0));
    if (n < want) break;
  }
  return seen;
}

Status VerbsPairLink::settle() {
  if (!broken_) return broken_;
  // Receive WQEs go back before anyone can be told (and credit) what they carried.
  if (reposts_owed_ > 0) {
    Status s = postEmptyReceives(q_.qp.get(), reposts_owed_, recv_wrs_);
    reposts_owed_ = 0;
    if (!s) {
      fail(unavailable("pair link: " + s.message()));
      return broken_;
    }
  }
  bool deferred =
      !control_backlog_.empty() || control_received_ - credit_returned_ >= wl::kControlSlots / 2;
  return deferred ? postDeferred() : broken_;
}

Result<size_t> VerbsPairLink::poll(std::vector<LinkEvent>& out, size_t max_events) {
  if (ready_head_ == ready_.size()) {
    ready_.clear();
    ready_head_ = 0;
    reapCq(std::max(max_events, kPollBatch));
  }
  settle();
  // After an error, what completed before it goes out first; the error with the next call.
  size_t n = std::min(max_events, ready_.size() - ready_head_);
  if (n == 0 && !broken_) return broken_;
  for (size_t i = 0; i < n; ++i) out.push_back(std::move(ready_[ready_head_ + i]));
  ready_head_ += n;
  return n;
}

bool VerbsPairLink::prepareToSleep() {
  if (ready_head_ < ready_.size() || !broken_) return false;
  if (!armed_) {
    if (ibv_req_notify_cq(q_.cq.get(), 0) != 0) {
      fail(unavailable("pair link: ibv_req_notify_cq failed"));
      return false;
    }
    armed_ = true;
  }
  // A completion that arrived before the request raised no event: look once more.
  ready_.clear();
  ready_head_ = 0;
  reapCq(q_.recv_depth + q_.send_depth);
  settle();
  return ready_.empty() && broken_;
}

void VerbsPairLink::afterWakeup() {
  bool completion = takeCqEvent(q_.channel.get(), q_.cq.get());
  if (completion) armed_ = false;
  // The device's async fd is read only when the completion channel did not wake us (it is in
  // every link's epoll set, level-triggered); errors another link read are in the core's map.
  std::string error = q_.core->asyncError(q_.qp.get(), q_.cq.get(), /*read_device=*/!completion);
  if (!error.empty()) fail(unavailable("pair link: " + error));
}

}  // namespace rdmesh::transport
