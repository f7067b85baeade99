// Session data path: completions of the peer's writes, stream reads and writes straight from and
// into the rings, credits, and the once-per-iteration flush that batches every stream's control
// records into one write.
#include <event2/event.h>
#include <spdlog/spdlog.h>

#include <cstring>

#include "session_impl.h"

namespace rdmesh::transport {

namespace {
// Largest data write: below the immediate's 16-bit length, a multiple of the page size.
constexpr size_t kMaxDataWrite = size_t{60} * 1024;
static_assert(kMaxDataWrite <= wire::kMaxMessageBytes);
// A control batch is closed at this size so that it always fits the immediate's length.
constexpr size_t kControlBatchTarget = size_t{16} * 1024;
static_assert(kControlBatchTarget + wire::kMaxControlRecordBytes <= wire::kMaxMessageBytes);
constexpr size_t kCompletionsPerPoll = 64;
}  // namespace

// ---------------------------------------------------------------- stream data API

std::byte* StreamImpl::ring() const {
  const SessionGeometry& g = session_.options_.geometry;
  return session_.connection_->receiveArea().data() +
         wire::streamRingOffset(g.control_ring_bytes, slot_, g.ring_bytes);
}

std::span<const std::byte> StreamImpl::readable() const {
  if (!session_.connection_ || received_ == consumed_) return {};
  uint32_t ring_bytes = session_.options_.geometry.ring_bytes;
  size_t pos = consumed_ & (ring_bytes - 1);
  size_t n = std::min<uint64_t>(received_ - consumed_, ring_bytes - pos);
  return {ring() + pos, n};
}

void StreamImpl::consume(size_t bytes) {
  consumed_ += std::min<uint64_t>(bytes, received_ - consumed_);
  // Credit goes back lazily, about half a ring at a time; not at all once the peer is done.
  uint32_t half_ring = session_.options_.geometry.ring_bytes / 2;
  if (phase_ == Phase::kOpen && !remoteTerminal() && consumed_ - credit_returned_ >= half_ring) {
    session_.priority().credit(remote_ref_, consumed_);
    credit_returned_ = consumed_;
  }
}

std::span<std::byte> StreamImpl::writable() {
  SessionImpl& ss = session_;
  if (!ss.connection_ || phase_ != Phase::kOpen || localTerminal()) return {};
  auto block = [&](bool session_wide) -> std::span<std::byte> {
    if (session_wide) ss.blocked_refs_.push_back(ref());
    blocked_ = true;
    ss.stats_.credit_stalls_total.inc();
    return {};
  };
  if (!ack_posted_) return block(true);
  uint32_t ring_bytes = ss.peer_geometry_.ring_bytes;
  uint64_t room = ring_bytes - (sent_ - acked_);
  if (room == 0) return block(false);  // the peer's CREDIT wakes us
  if (ss.wqeCreditsLeft() <= wire::kReservedControlWqes) return block(true);
  size_t pos = sent_ & (ring_bytes - 1);
  size_t n = std::min<uint64_t>({room, ring_bytes - pos, kMaxDataWrite});
  uint64_t offset = wire::streamRingOffset(ss.peer_geometry_.control_ring_bytes,
                                           wire::refSlot(remote_ref_), ring_bytes) +
                    pos;
  auto span = ss.connection_->stageWrite(offset, n);
  if (span.empty()) {
    ss.updateWriteEvent();
    return block(true);
  }
  return span;
}

void StreamImpl::commit(size_t bytes) {
  SessionImpl& ss = session_;
  if (!ss.connection_) return;
  ss.connection_->postWriteWithImm(
      bytes, wire::encodeImm(wire::ImmType::kData, wire::refSlot(remote_ref_), bytes));
  if (bytes == 0) return;
  sent_ += bytes;
  ++ss.posted_total_;
  ss.stats_.bytes_sent.inc(bytes);
  ss.stats_.writes_posted.inc();
}

// ---------------------------------------------------------------- completions

bool SessionImpl::pollOnce() {
  if (!connection_) return false;
  Completion batch[kCompletionsPerPoll];
  auto n = connection_->poll(batch);
  if (!n) {
    teardown(n.status());
    return false;
  }
  if (connection_->resumedSending()) unblockStreams();
  if (*n == 0) return false;
  last_rx_ = std::chrono::steady_clock::now();
  for (size_t i = 0; i < *n; ++i) {
    if (Status s = handleCompletion(batch[i]); !s) {
      teardown(s);
      return false;
    }
  }
  maybeReturnSessionCredit();
  deliverNotifications();
  if (idle_close_due_) {
    flush();  // our own answer first, when both sides asked at once
    closeIdle();
  }
  return true;
}

Status SessionImpl::handleCompletion(const Completion& c) {
  ++completions_total_;
  uint32_t len = wire::immLength(c.imm);
  switch (wire::immType(c.imm)) {
    case wire::ImmType::kData:
      return handleData(wire::immSlot(c.imm), len);
    case wire::ImmType::kControl:
      return handleControl(len);
  }
  return protocolError(fmt::format("unknown immediate type in {:#x}", c.imm));
}

Status SessionImpl::handleData(uint32_t slot, uint32_t len) {
  if (slot >= slots_.size() || !slots_[slot]) {
    return protocolError(fmt::format("data for unused slot {}", slot));
  }
  StreamImpl& s = *slots_[slot];
  if (s.phase_ != StreamImpl::Phase::kOpen || s.remoteTerminal()) {
    return protocolError(fmt::format("data for slot {} that is not open", slot));
  }
  uint32_t ring_bytes = options_.geometry.ring_bytes;
  size_t pos = s.received_ & (ring_bytes - 1);
  if (s.received_ - s.consumed_ + len > ring_bytes || pos + len > ring_bytes) {
    return protocolError(fmt::format("write of {} bytes overruns slot {}'s ring", len, slot));
  }
  s.received_ += len;
  stats_.bytes_received.inc(len);
  if (s.detached_ || s.local_reset_) {
    s.consumed_ = s.received_;  // nobody will read it
  } else {
    s.notify_data_ = true;
    markNotify(s);
  }
  return {};
}

Status SessionImpl::handleControl(uint32_t len) {
  uint32_t ring_bytes = options_.geometry.control_ring_bytes;
  size_t pos = control_consumed_ % ring_bytes;
  if (ring_bytes - pos < len) {  // the writer skipped the tail of the ring
    control_consumed_ += ring_bytes - pos;
    pos = 0;
  }
  if (len > ring_bytes) return protocolError("control batch larger than the control ring");
  parsed_.clear();
  Status st = parseControlBatch(connection_->receiveArea().subspan(pos, len), parsed_);
  control_consumed_ += len;
  if (!st) return st;
  for (const ControlRecord& rec : parsed_) {
    if (Status s = handleRecord(rec); !s) return s;
  }
  return {};
}

void SessionImpl::maybeReturnSessionCredit() {
  if (completions_total_ - completions_returned_ >= options_.geometry.recv_depth / 4 ||
      control_consumed_ - control_returned_ >= options_.geometry.control_ring_bytes / 4) {
    priority().sessionCredit(completions_total_, control_consumed_);
    completions_returned_ = completions_total_;
    control_returned_ = control_consumed_;
  }
}

// ---------------------------------------------------------------- control batches

ControlEncoder& SessionImpl::normal(uint32_t ack_ref) {
  if (normal_batches_.empty() || normal_batches_.back().records.size() >= kControlBatchTarget) {
    normal_batches_.emplace_back();
  }
  if (ack_ref) normal_batches_.back().acks.push_back(ack_ref);
  return normal_batches_.back().records;
}

ControlEncoder& SessionImpl::priority() {
  if (priority_batches_.empty() || priority_batches_.back().records.size() >= kControlBatchTarget) {
    priority_batches_.emplace_back();
  }
  return priority_batches_.back().records;
}

uint64_t SessionImpl::wqeCreditsLeft() const {
  return peer_geometry_.recv_depth - (posted_total_ - peer_completions_total_);
}

bool SessionImpl::postControl(ControlBatch& batch, bool may_use_reserve) {
  size_t len = batch.records.size();
  if (len == 0) return true;
  uint32_t ring_bytes = peer_geometry_.control_ring_bytes;
  size_t pos = control_written_ % ring_bytes;
  size_t pad = ring_bytes - pos < len ? ring_bytes - pos : 0;
  uint64_t space = ring_bytes - (control_written_ - peer_control_consumed_);
  uint64_t keep_bytes = may_use_reserve ? 0 : wire::kReservedControlBytes;
  uint64_t wqes = wqeCreditsLeft();
  if (pad + len + keep_bytes > space || wqes == 0 ||
      (!may_use_reserve && wqes <= wire::kReservedControlWqes)) {
    return false;
  }
  if (pad) pos = 0;
  auto span = connection_->stageWrite(pos, len);
  if (span.size() < len) {
    connection_->postWriteWithImm(0, 0);
    return false;
  }
  std::memcpy(span.data(), batch.records.bytes().data(), len);
  connection_->postWriteWithImm(len, wire::encodeImm(wire::ImmType::kControl, 0, len));
  control_written_ += pad + len;
  ++posted_total_;
  stats_.control_batches_sent.inc();
  for (uint32_t ref : batch.acks) {
    StreamImpl* s = lookup(ref);
    if (s == nullptr) continue;
    s->ack_posted_ = true;
    if (s->blocked_ && !s->detached_) {
      s->blocked_ = false;
      s->notify_writable_ = true;
      markNotify(*s);
    }
  }
  return true;
}

void SessionImpl::flushControl() {
  if (!connection_) return;
  while (!priority_batches_.empty() && postControl(priority_batches_.front(), true)) {
    priority_batches_.pop_front();
  }
  if (!priority_batches_.empty()) return;
  while (!normal_batches_.empty() && postControl(normal_batches_.front(), false)) {
    normal_batches_.pop_front();
  }
}

void SessionImpl::flush() {
  if (!connection_ || in_flush_) return;
  in_flush_ = true;
  // Callbacks may write more; a few rounds settle it without starving the loop.
  for (int round = 0; round < 4 && connection_; ++round) {
    flushControl();
    if (Status s = connection_->flush(); !s) {
      in_flush_ = false;
      teardown(s);
      return;
    }
    if (notify_queue_.empty()) break;
    deliverNotifications();
  }
  in_flush_ = false;
  if (connection_) updateWriteEvent();
}

void SessionImpl::updateWriteEvent() {
  if (!connection_) return;
  bool want = connection_->wantsWritable();
  if (want && write_ev_ == nullptr) {
    write_ev_ = event_new(base_, connection_->eventFd(), EV_WRITE | EV_PERSIST,
                          &SessionImpl::onEventFd, this);
    event_add(write_ev_, nullptr);
  } else if (!want && write_ev_ != nullptr) {
    event_free(write_ev_);
    write_ev_ = nullptr;
  }
}

// ---------------------------------------------------------------- notifications

void SessionImpl::markNotify(StreamImpl& s) {
  if (!s.queued_for_notify_) {
    s.queued_for_notify_ = true;
    notify_queue_.push_back(s.ref());
  }
}

void SessionImpl::unblockStreams() {
  std::vector<uint32_t> refs;
  refs.swap(blocked_refs_);
  for (uint32_t ref : refs) {
    StreamImpl* s = lookup(ref);
    if (s && s->blocked_ && !s->detached_) {
      s->blocked_ = false;
      s->notify_writable_ = true;
      markNotify(*s);
    }
  }
}

void SessionImpl::deliverNotifications() {
  while (!notify_queue_.empty()) {
    std::vector<uint32_t> refs;
    refs.swap(notify_queue_);
    for (uint32_t ref : refs) {
      StreamImpl* s = lookup(ref);
      if (s == nullptr) continue;
      s->queued_for_notify_ = false;
      StreamCallbacks* cb = s->callbacks_;
      if (s->detached_ || cb == nullptr) {
        maybeFree(*s);
        continue;
      }
      if (s->notify_reset_) {
        wire::ResetReason reason = s->reset_reason_;
        s->notify_reset_ = s->notify_opened_ = s->notify_data_ = s->notify_writable_ = false;
        s->detached_ = true;
        s->callbacks_ = nullptr;
        s->queued_for_notify_ = true;  // keeps the stream alive through the callback
        cb->onStreamReset(reason);
        if ((s = lookup(ref)) != nullptr) {
          s->queued_for_notify_ = false;
          maybeFree(*s);
        }
        continue;
      }
      if (std::exchange(s->notify_opened_, false)) {
        cb->onStreamOpened();
        if ((s = lookup(ref)) == nullptr || s->detached_) continue;
      }
      if (std::exchange(s->notify_data_, false)) {
        cb->onStreamData();
        if ((s = lookup(ref)) == nullptr || s->detached_) continue;
      }
      if (std::exchange(s->notify_writable_, false)) cb->onStreamWritable();
    }
  }
}

// ---------------------------------------------------------------- sleeping

bool SessionImpl::pollsUsefully() const {
  return connection_ && connection_->pollsUsefully();
}

bool SessionImpl::wantsPoll() const {
  return connection_ && (connection_->pollsUsefully() || connection_->hasBufferedCompletions());
}

bool SessionImpl::prepareToSleep() {
  if (!connection_) return true;
  // Batches still waiting are waiting for credit, which arrives as a completion and wakes us.
  if (!notify_queue_.empty()) return false;
  return connection_->prepareToSleep();
}

void SessionImpl::afterWakeup() {
  if (connection_) connection_->afterWakeup();
}

void SessionImpl::markAwake() {
  if (connection_) connection_->markAwake();
}

}  // namespace rdmesh::transport
