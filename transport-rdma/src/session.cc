// Session control path: stream lifecycle (open, accept, FIN, RESET), control records, keepalive
// and teardown.
#include <event2/event.h>
#include <spdlog/spdlog.h>

#include "rdmesh/common/timeval.h"
#include "session_impl.h"

namespace rdmesh::transport {

using wire::ControlType;
using wire::ResetReason;

const char* toString(Session::State state) {
  switch (state) {
    case Session::State::kConnecting:
      return "connecting";
    case Session::State::kEstablished:
      return "established";
    case Session::State::kDraining:
      return "draining";
  }
  return "unknown";
}

namespace {
constexpr uint64_t kReleaseRingAfterBytes = uint64_t{256} * 1024;

SessionImpl::Stats makeStats(StatsStore& store, const std::string& peer) {
  std::string scope = "session." + peer;
  return {store.counter(scope, "bytes_sent"),
          store.counter(scope, "bytes_received"),
          store.gauge(scope, "streams_active"),
          store.counter(scope, "streams_opened_total"),
          store.counter(scope, "streams_accepted_total"),
          store.counter(scope, "streams_reset_total"),
          store.counter(scope, "streams_refused_total"),
          store.counter(scope, "connects_total"),
          store.counter(scope, "disconnects_total"),
          store.counter(scope, "protocol_errors_total"),
          store.counter(scope, "keepalive_timeouts_total"),
          store.counter(scope, "control_batches_sent"),
          store.counter(scope, "writes_posted"),
          store.counter(scope, "credit_stalls_total"),
          store.counter(scope, "idle_closes_total"),
          store.gauge(scope, "idle_closing")};
}
}  // namespace

SessionImpl::SessionImpl(event_base* base, std::string peer_name, SessionOptions options,
                         StatsStore& stats, AcceptHandler& accept_handler)
    : base_(base),
      peer_name_(std::move(peer_name)),
      options_(std::move(options)),
      accept_handler_(accept_handler),
      stats_(makeStats(stats, peer_name_)) {
  uint32_t n = options_.geometry.max_streams;
  slots_.resize(n);
  generations_.assign(n, 0);
  free_slots_.reserve(n);
  for (uint32_t i = n; i > 0; --i) free_slots_.push_back(i - 1);  // lowest slot first
  timer_ev_ = event_new(base_, -1, EV_PERSIST, &SessionImpl::onTimer, this);
  timeval tv = toTimeval(options_.keepalive_interval);
  event_add(timer_ev_, &tv);
}

SessionImpl::~SessionImpl() {
  for (auto& s : slots_) {
    if (s) s->detached_ = true;  // no callbacks into users that are going away too
  }
  if (connection_) teardown(Status{StatusCode::kUnavailable, "session destroyed"});
  if (timer_ev_) event_free(timer_ev_);
}

// ---------------------------------------------------------------- stream table

StreamImpl* SessionImpl::allocateStream() {
  if (free_slots_.empty()) return nullptr;
  uint32_t slot = free_slots_.back();
  free_slots_.pop_back();
  uint32_t gen = generations_[slot] =
      (generations_[slot] + 1) & ((1u << wire::kGenerationBits) - 1);
  slots_[slot] = std::make_unique<StreamImpl>(*this, slot, gen);
  ++active_streams_;
  stats_.streams_active.inc();
  return slots_[slot].get();
}

StreamImpl* SessionImpl::lookup(uint32_t ref) {
  uint32_t slot = wire::refSlot(ref);
  if (slot >= slots_.size() || !slots_[slot]) return nullptr;
  StreamImpl* s = slots_[slot].get();
  return s->generation_ == wire::refGeneration(ref) ? s : nullptr;
}

void SessionImpl::freeStream(StreamImpl& s) {
  uint32_t slot = s.slot_;
  const SessionGeometry& g = options_.geometry;
  // A stream that moved more than a little touched pages that would otherwise stay resident for
  // as long as the session lives; small request/response streams skip the syscall.
  if (connection_ && s.received_ > kReleaseRingAfterBytes) {
    uint64_t touched = std::min<uint64_t>(s.received_, g.ring_bytes);
    connection_->releaseReceiveMemory(
        wire::streamRingOffset(g.control_ring_bytes, slot, g.ring_bytes), touched);
  }
  slots_[slot].reset();
  free_slots_.push_back(slot);
  --active_streams_;
  stats_.streams_active.dec();
  if (active_streams_ == 0) idle_since_ = std::chrono::steady_clock::now();
}

// A slot may be reused once the user let go, we sent our last record to the peer's stream and
// the peer sent its last write into our ring.
void SessionImpl::maybeFree(StreamImpl& s) {
  if (s.detached_ && s.localTerminal() && s.remoteTerminal() && !s.queued_for_notify_) {
    freeStream(s);
  }
}

Stream* SessionImpl::openStream(const InetAddress& destination, std::string_view identity,
                                StreamCallbacks* callbacks) {
  if (state_ == State::kDraining || peer_draining_) return nullptr;
  StreamImpl* s = allocateStream();
  if (s == nullptr) {
    stats_.streams_refused_total.inc();
    return nullptr;
  }
  s->destination_ = destination;
  s->identity_ = std::string(identity);
  s->callbacks_ = callbacks;
  s->phase_ = StreamImpl::Phase::kPendingOpen;
  stats_.streams_opened_total.inc();
  // During an idle close the OPEN waits: for the refusal, or for the next connection.
  if (connection_ && !closingIdle()) sendOpen(*s);
  return s;
}

void SessionImpl::sendOpen(StreamImpl& s) {
  normal().open(s.ref(), s.destination_, s.identity_);
  s.phase_ = StreamImpl::Phase::kOpening;
}

// ---------------------------------------------------------------- stream API (control side)

void StreamImpl::accept() {
  if (phase_ != Phase::kAccepting) return;
  phase_ = Phase::kOpen;
  ack_posted_ = false;  // data may follow only once the OPEN_ACK is on the fabric
  session_.normal(ref()).openAck(remote_ref_, ref());
  session_.flushControl();
}

void StreamImpl::finish() {
  if (localTerminal()) return;
  if (phase_ != Phase::kOpen) {
    reset(ResetReason::kLocalReset);
    return;
  }
  local_fin_ = true;
  session_.normal().fin(remote_ref_);
}

void StreamImpl::reset(ResetReason reason) {
  detached_ = true;
  callbacks_ = nullptr;
  notify_opened_ = notify_data_ = notify_writable_ = notify_reset_ = false;
  if (!localTerminal()) {
    session_.stats_.streams_reset_total.inc();
    switch (phase_) {
      case Phase::kPendingOpen:
        // The peer never heard of it.
        local_reset_ = remote_reset_ = true;
        break;
      case Phase::kOpening:
        // We cannot address the acceptor's stream yet: reset it when its OPEN_ACK arrives.
        reset_when_acked_ = true;
        break;
      case Phase::kAccepting:
        // The opener never learned our slot, so it cannot write into it: free at once.
        if (session_.connection_) session_.normal().reset(remote_ref_, reason);
        local_reset_ = remote_reset_ = true;
        break;
      case Phase::kOpen:
        if (session_.connection_) session_.normal().reset(remote_ref_, reason);
        local_reset_ = true;
        break;
    }
  }
  consumed_ = received_;  // discard what the user will never read
  session_.maybeFree(*this);
}

void StreamImpl::close() {
  if (!localTerminal() || !atEof()) {
    reset(ResetReason::kLocalReset);
    return;
  }
  detached_ = true;
  callbacks_ = nullptr;
  session_.maybeFree(*this);
}

// ---------------------------------------------------------------- records

Status SessionImpl::handleRecord(const ControlRecord& rec) {
  switch (rec.type) {
    case ControlType::kOpen:
      return handleOpen(rec);
    case ControlType::kOpenAck:
      return handleOpenAck(rec);
    case ControlType::kFin: {
      StreamImpl* s = lookup(rec.stream);
      if (s == nullptr) return {};  // an earlier stream of a reused slot: harmless
      if (s->phase_ != StreamImpl::Phase::kOpen || s->remoteTerminal()) {
        return protocolError("FIN for a stream that is not open");
      }
      s->remote_fin_ = true;
      if (s->detached_) {
        maybeFree(*s);
      } else {
        s->notify_data_ = true;
        markNotify(*s);
      }
      return {};
    }
    case ControlType::kReset:
      return handleReset(rec);
    case ControlType::kCredit: {
      StreamImpl* s = lookup(rec.stream);
      if (s == nullptr) return {};
      if (rec.value < s->acked_ || rec.value > s->sent_) {
        return protocolError(
            fmt::format("CREDIT of {} outside {}..{}", rec.value, s->acked_, s->sent_));
      }
      s->acked_ = rec.value;
      if (s->blocked_ && !s->detached_) {
        s->blocked_ = false;
        s->notify_writable_ = true;
        markNotify(*s);
      }
      return {};
    }
    case ControlType::kSessionCredit:
      if (rec.value < peer_completions_total_ || rec.value > posted_total_ ||
          rec.value2 < peer_control_consumed_ || rec.value2 > control_written_) {
        return protocolError("SESSION_CREDIT outside what was sent");
      }
      peer_completions_total_ = rec.value;
      peer_control_consumed_ = rec.value2;
      unblockStreams();
      return {};
    case ControlType::kPing:
      priority().pong(rec.value);
      return {};
    case ControlType::kPong:
      return {};
    case ControlType::kGoAway:
      peer_draining_ = true;
      return {};
    case ControlType::kIdleClose:
      return handleIdleClose(rec);
  }
  return protocolError("unknown control record");
}

Status SessionImpl::handleOpen(const ControlRecord& rec) {
  StreamImpl* s = state_ == State::kDraining ? nullptr : allocateStream();
  if (s == nullptr) {
    stats_.streams_refused_total.inc();
    normal().reset(rec.stream, state_ == State::kDraining ? ResetReason::kDraining
                                                          : ResetReason::kStreamsExhausted);
    return {};
  }
  s->phase_ = StreamImpl::Phase::kAccepting;
  s->remote_ref_ = rec.stream;
  s->destination_ = rec.destination;
  s->identity_ = std::string(rec.identity);
  stats_.streams_accepted_total.inc();
  uint32_t ref = s->ref();
  StreamCallbacks* callbacks = accept_handler_ ? accept_handler_(*s) : nullptr;
  s = lookup(ref);  // the handler may have reset it already
  if (s == nullptr || s->detached_) return {};
  if (callbacks == nullptr) {
    s->reset(ResetReason::kNoRoute);
    return {};
  }
  s->callbacks_ = callbacks;
  return {};
}

Status SessionImpl::handleOpenAck(const ControlRecord& rec) {
  StreamImpl* s = lookup(rec.stream);
  if (s == nullptr || s->phase_ != StreamImpl::Phase::kOpening) {
    return protocolError("OPEN_ACK for a stream that is not opening");
  }
  s->phase_ = StreamImpl::Phase::kOpen;
  s->remote_ref_ = rec.acceptor_stream;
  if (s->reset_when_acked_) {
    normal().reset(s->remote_ref_, ResetReason::kLocalReset);
    s->local_reset_ = true;
    maybeFree(*s);
    return {};
  }
  s->notify_opened_ = true;
  markNotify(*s);
  return {};
}

Status SessionImpl::handleReset(const ControlRecord& rec) {
  StreamImpl* s = lookup(rec.stream);
  if (s == nullptr) return {};
  if (s->remote_reset_) return protocolError("second RESET for a stream");
  s->remote_reset_ = true;
  if (s->phase_ == StreamImpl::Phase::kOpening) {
    // Refused: the acceptor has no stream for us to reset back.
    s->local_reset_ = true;
  } else if (!s->local_reset_) {
    // Our reply is the terminal record the peer waits for before it frees its slot; a FIN we
    // sent earlier already was one.
    if (!s->local_fin_) normal().reset(s->remote_ref_, rec.reason);
    s->local_reset_ = true;
  }
  s->consumed_ = s->received_;
  if (s->detached_) {
    maybeFree(*s);
  } else {
    s->notify_reset_ = true;
    s->reset_reason_ = rec.reason;
    markNotify(*s);
  }
  return {};
}

// ---------------------------------------------------------------- connection lifecycle

void SessionImpl::attach(std::unique_ptr<FabricConnection> connection) {
  connection_ = std::move(connection);
  peer_geometry_ = connection_->peerHello().geometry;
  posted_total_ = peer_completions_total_ = control_written_ = peer_control_consumed_ = 0;
  completions_total_ = completions_returned_ = control_consumed_ = control_returned_ = 0;
  priority_batches_.clear();
  normal_batches_.clear();
  peer_draining_ = false;
  idle_close_ = IdleClose::kNone;
  idle_close_due_ = false;
  if (state_ != State::kDraining) state_ = State::kEstablished;
  last_rx_ = idle_since_ = std::chrono::steady_clock::now();
  short doorbell_flags = connection_->eventFdIsDoorbell() ? EV_ET : 0;
  event_fd_ev_ = event_new(base_, connection_->eventFd(), EV_READ | EV_PERSIST | doorbell_flags,
                           &SessionImpl::onEventFd, this);
  event_add(event_fd_ev_, nullptr);
  if (connection_->livenessFd() >= 0) {
    liveness_ev_ = event_new(base_, connection_->livenessFd(), EV_READ | EV_PERSIST,
                             &SessionImpl::onLivenessFd, this);
    event_add(liveness_ev_, nullptr);
  }
  stats_.connects_total.inc();
  spdlog::info("session to {}: established over {} (protocol v{}, peer rings {}x{} KiB)",
               peer_name_, toString(connection_->kind()), connection_->version(),
               peer_geometry_.max_streams, peer_geometry_.ring_bytes / 1024);
  // Streams opened while we were connecting go out now.
  sendHeldOpens();
  if (state_ == State::kDraining) normal().goAway();
  flush();
}

void SessionImpl::sendHeldOpens() {
  for (auto& s : slots_) {
    if (s && s->phase_ == StreamImpl::Phase::kPendingOpen && !s->detached_) sendOpen(*s);
  }
}

void SessionImpl::dropConnection() {
  for (event** ev : {&event_fd_ev_, &liveness_ev_, &write_ev_}) {
    if (*ev) event_free(*ev);
    *ev = nullptr;
  }
  connection_.reset();
  if (state_ != State::kDraining) state_ = State::kConnecting;
}

void SessionImpl::teardown(const Status& why) {
  if (!connection_) return;
  // Losing the connection in the middle of an idle close is how an idle close ends.
  if (closingIdle()) return closeIdle();
  spdlog::warn("session to {}: down: {}", peer_name_, why.message());
  stats_.disconnects_total.inc();
  if (why.code() == StatusCode::kProtocolError) stats_.protocol_errors_total.inc();
  dropConnection();
  resetAllStreams();
  if (on_down_) on_down_(why);
}

void SessionImpl::resetStreams(bool keep_held) {
  // A stream on the wire dies with the connection: the peer's rings are gone. Users hear it now,
  // while their Stream pointers are still valid; the slots are freed afterwards.
  auto dies = [keep_held](const StreamImpl& s) {
    return !keep_held || s.phase_ != StreamImpl::Phase::kPendingOpen || s.detached_;
  };
  std::vector<uint32_t> refs;
  for (auto& s : slots_) {
    if (s && dies(*s)) refs.push_back(s->ref());
  }
  notify_queue_.clear();
  blocked_refs_.clear();
  for (auto& s : slots_) {
    if (s) s->queued_for_notify_ = false;  // the queue is gone; held streams start afresh
  }
  for (uint32_t ref : refs) {
    StreamImpl* s = lookup(ref);
    if (s == nullptr) continue;
    StreamCallbacks* cb = s->detached_ ? nullptr : s->callbacks_;
    s->detached_ = true;
    s->callbacks_ = nullptr;
    if (cb) cb->onStreamReset(ResetReason::kSessionLost);
  }
  for (uint32_t ref : refs) {
    if (StreamImpl* s = lookup(ref)) freeStream(*s);
  }
}

// ---------------------------------------------------------------- idle close

void SessionImpl::maybeRequestIdleClose(std::chrono::steady_clock::time_point now) {
  if (options_.idle_timeout.count() == 0 || closingIdle() || active_streams_ > 0 ||
      state_ != State::kEstablished || peer_draining_ ||
      connection_->version() < wire::kVersionIdleClose ||
      now - idle_since_ < options_.idle_timeout) {
    return;
  }
  idle_close_ = IdleClose::kRequested;
  stats_.idle_closing.set(1);
  normal().idleClose(wire::IdleCloseStep::kRequest);
}

Status SessionImpl::handleIdleClose(const ControlRecord& rec) {
  switch (static_cast<wire::IdleCloseStep>(rec.value)) {
    case wire::IdleCloseStep::kRequest:
      if (idle_close_ == IdleClose::kRequested) {
        // Both asked at once: neither has a stream on the wire or sends OPEN any more.
        idle_close_due_ = true;
        return {};
      }
      if (active_streams_ > 0) {
        normal().idleClose(wire::IdleCloseStep::kRefuse);
        return {};
      }
      idle_close_ = IdleClose::kConfirmed;
      stats_.idle_closing.set(1);
      normal().idleClose(wire::IdleCloseStep::kConfirm);
      return {};
    case wire::IdleCloseStep::kConfirm:
      if (idle_close_ != IdleClose::kRequested) {
        return protocolError("IDLE_CLOSE confirmed without a request");
      }
      idle_close_due_ = true;
      return {};
    case wire::IdleCloseStep::kRefuse:
      if (idle_close_ != IdleClose::kRequested) {
        return protocolError("IDLE_CLOSE refused without a request");
      }
      // The peer opened a stream before it saw the request: carry on, and send what we held.
      idle_close_ = IdleClose::kNone;
      stats_.idle_closing.set(0);
      idle_since_ = std::chrono::steady_clock::now();
      sendHeldOpens();
      return {};
  }
  return protocolError("unknown IDLE_CLOSE step");
}

void SessionImpl::closeIdle() {
  if (!connection_) return;
  auto idle = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - idle_since_);
  spdlog::info("session to {}: closed after {} ms without streams", peer_name_, idle.count());
  stats_.idle_closes_total.inc();
  stats_.idle_closing.set(0);
  idle_close_ = IdleClose::kNone;
  idle_close_due_ = false;
  dropConnection();
  // Normally nothing is on the wire; streams opened since the request wait for a new session.
  resetStreams(/*keep_held=*/true);
  if (on_down_) on_down_(unavailable("closed while idle"));
}

void SessionImpl::failPendingStreams(const Status& why) {
  if (connection_ || active_streams_ == 0) return;
  spdlog::warn("session to {}: {} waiting stream(s) reset: {}", peer_name_, active_streams_,
               why.message());
  resetAllStreams();
}

void SessionImpl::drain() {
  if (state_ == State::kDraining) return;
  state_ = State::kDraining;
  if (connection_) {
    normal().goAway();
    flush();
  }
}

void SessionImpl::onKeepaliveTimer() {
  if (!connection_) return;
  if (idle_close_ == IdleClose::kConfirmed) {
    // We agreed; the asker closes when our confirmation arrives. Whichever side closes first,
    // the other ends its idle close on the lost connection.
    closeIdle();
    return;
  }
  auto now = std::chrono::steady_clock::now();
  auto silent = now - last_rx_;
  if (silent > options_.keepalive_timeout) {
    stats_.keepalive_timeouts_total.inc();
    teardown(unavailable(
        fmt::format("no word from the peer for {} ms",
                    std::chrono::duration_cast<std::chrono::milliseconds>(silent).count())));
    return;
  }
  maybeRequestIdleClose(now);
  priority().ping(++ping_nonce_);
  flush();
}

void SessionImpl::onLiveness() {
  if (!connection_) return;
  char buf[64];
  ssize_t n = ::recv(connection_->livenessFd(), buf, sizeof(buf), MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    teardown(unavailable("peer process closed the session"));
  }
}

void SessionImpl::onEventFd(int /*fd*/, short what, void* arg) {
  auto* self = static_cast<SessionImpl*>(arg);
  if (!self->connection_) return;
  if (what & EV_WRITE) {
    self->flush();
    if (!self->connection_) return;
    self->unblockStreams();
  }
  if (what & EV_READ) {
    self->afterWakeup();
    // Bounded, so one busy peer cannot starve the other sockets of this loop.
    for (int i = 0; i < 16 && self->connection_ && self->pollOnce(); ++i) {
    }
  }
}

void SessionImpl::onLivenessFd(int /*fd*/, short /*what*/, void* arg) {
  static_cast<SessionImpl*>(arg)->onLiveness();
}

void SessionImpl::onTimer(int /*fd*/, short /*what*/, void* arg) {
  static_cast<SessionImpl*>(arg)->onKeepaliveTimer();
}

}  // namespace rdmesh::transport
