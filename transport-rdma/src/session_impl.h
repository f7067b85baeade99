// Implementation of Session and Stream. session.cc holds the control path (records, stream
// lifecycle, keepalive, teardown); session_datapath.cc the data path (completions, credits,
// writes, flush).
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "rdmesh/common/stats.h"
#include "rdmesh/transport/control_codec.h"
#include "rdmesh/transport/fabric.h"
#include "rdmesh/transport/session.h"

struct event;
struct event_base;

namespace rdmesh::transport {

class SessionImpl;

struct SessionOptions {
  std::string local_node;
  SessionGeometry geometry;  // of our receive area
  std::chrono::milliseconds keepalive_interval{5000};
  std::chrono::milliseconds keepalive_timeout{15000};
  // Close the connection after this long without streams (IDLE_CLOSE, protocol v2); 0 keeps it.
  // Mesh mode sets it: each session pins its region in the node agent.
  std::chrono::milliseconds idle_timeout{0};
};

class StreamImpl final : public Stream {
 public:
  enum class Phase {
    kPendingOpen,  // opener, session not established yet: OPEN not sent
    kOpening,      // opener, OPEN sent, waiting for OPEN_ACK or RESET
    kAccepting,    // acceptor, waiting for the user to accept() or reset()
    kOpen,
  };

  StreamImpl(SessionImpl& session, uint32_t slot, uint32_t generation)
      : session_(session), slot_(slot), generation_(generation) {}

  // Stream
  void setCallbacks(StreamCallbacks* callbacks) override { callbacks_ = callbacks; }
  const InetAddress& destination() const override { return destination_; }
  const std::string& identity() const override { return identity_; }
  std::span<const std::byte> readable() const override;
  void consume(size_t bytes) override;
  bool atEof() const override { return remote_fin_ && received_ == consumed_; }
  std::span<std::byte> writable() override;
  void commit(size_t bytes) override;
  void finish() override;
  void accept() override;
  void reset(wire::ResetReason reason) override;
  void close() override;

  uint32_t ref() const { return wire::makeStreamRef(slot_, generation_); }

 private:
  friend class SessionImpl;

  bool localTerminal() const { return local_fin_ || local_reset_; }
  bool remoteTerminal() const { return remote_fin_ || remote_reset_; }
  std::byte* ring() const;

  SessionImpl& session_;
  uint32_t slot_;
  uint32_t generation_;
  Phase phase_ = Phase::kPendingOpen;
  InetAddress destination_;
  std::string identity_;
  StreamCallbacks* callbacks_ = nullptr;
  uint32_t remote_ref_ = 0;
  bool ack_posted_ = true;  // acceptor: OPEN_ACK is on the fabric, data may follow it

  // receive direction (our ring)
  uint64_t received_ = 0;
  uint64_t consumed_ = 0;
  uint64_t credit_returned_ = 0;
  bool remote_fin_ = false;
  bool remote_reset_ = false;

  // send direction (the peer's ring)
  uint64_t sent_ = 0;
  uint64_t acked_ = 0;  // bytes the peer has consumed
  bool local_fin_ = false;
  bool local_reset_ = false;
  bool reset_when_acked_ = false;  // opener reset before OPEN_ACK: reset the acceptor then

  bool detached_ = false;  // the user dropped the pointer: no callbacks
  bool blocked_ = false;   // writable() came back empty: owe an onStreamWritable()

  // Callbacks owed, delivered after the current batch of work.
  bool notify_opened_ = false;
  bool notify_data_ = false;
  bool notify_writable_ = false;
  bool notify_reset_ = false;
  bool queued_for_notify_ = false;
  wire::ResetReason reset_reason_ = wire::ResetReason::kUnknown;
};

class SessionImpl final : public Session {
 public:
  struct Stats {
    Stat& bytes_sent;
    Stat& bytes_received;
    Stat& streams_active;
    Stat& streams_opened_total;
    Stat& streams_accepted_total;
    Stat& streams_reset_total;
    Stat& streams_refused_total;
    Stat& connects_total;
    Stat& disconnects_total;
    Stat& protocol_errors_total;
    Stat& keepalive_timeouts_total;
    Stat& control_batches_sent;
    Stat& writes_posted;
    Stat& credit_stalls_total;
    Stat& idle_closes_total;
    Stat& idle_closing;  // 1 between an IDLE_CLOSE request or confirmation and the close
  };

  SessionImpl(event_base* base, std::string peer_name, SessionOptions options, StatsStore& stats,
              AcceptHandler& accept_handler);
  ~SessionImpl() override;

  // Session
  const std::string& peerName() const override { return peer_name_; }
  State state() const override { return state_; }
  Stream* openStream(const InetAddress& destination, std::string_view identity,
                     StreamCallbacks* callbacks) override;

  // Hands the session a freshly bootstrapped connection (replacing none: call when down).
  void attach(std::unique_ptr<FabricConnection> connection);
  bool established() const { return connection_ != nullptr; }
  void disconnect(const Status& why) { teardown(why); }
  // Not connected and the connection cannot be made now (mesh mode: the dial failed): the
  // streams waiting for it are reset (kSessionLost) instead of waiting for their timeouts.
  void failPendingStreams(const Status& why);
  // Called with the reason when an established connection is lost.
  void setOnDown(std::function<void(const Status&)> on_down) { on_down_ = std::move(on_down); }
  // Peer-wide drain: tell the peer, refuse new streams, keep the open ones.
  void drain();
  size_t activeStreams() const { return active_streams_; }
  // Between an IDLE_CLOSE request or confirmation and the close: streams opened now are held for
  // the next connection.
  bool closingIdle() const { return idle_close_ != IdleClose::kNone; }
  // Closes the connection quietly, keeping the held streams for the next one: the end of an idle
  // close (also when the peer dialed a new session before we saw the old one go).
  void closeIdle();

  // Event-loop integration (see AdaptivePoller).
  bool pollOnce();  // completions processed? (true = did work)
  void flush();     // control batches out, fabric flush, owed callbacks
  bool pollsUsefully() const;
  // Worth a pollOnce() from the loop: spinning pays, or completions are buffered.
  bool wantsPoll() const;
  bool prepareToSleep();
  void afterWakeup();
  void markAwake();

 private:
  friend class StreamImpl;

  struct ControlBatch {
    ControlEncoder records;
    std::vector<uint32_t> acks;  // acceptor refs whose OPEN_ACK is in this batch
  };

  // control path (session.cc)
  StreamImpl* allocateStream();
  StreamImpl* lookup(uint32_t ref);
  void maybeFree(StreamImpl& s);
  void freeStream(StreamImpl& s);
  Status handleRecord(const ControlRecord& rec);
  Status handleOpen(const ControlRecord& rec);
  Status handleOpenAck(const ControlRecord& rec);
  Status handleReset(const ControlRecord& rec);
  void sendOpen(StreamImpl& s);
  void teardown(const Status& why);
  void dropConnection();
  // Resets the streams with their callbacks; `keep_held` keeps the ones whose OPEN is not sent.
  void resetStreams(bool keep_held);
  void resetAllStreams() { resetStreams(false); }
  void sendHeldOpens();
  // idle close (IDLE_CLOSE records, session.cc)
  void maybeRequestIdleClose(std::chrono::steady_clock::time_point now);
  Status handleIdleClose(const ControlRecord& rec);
  void onKeepaliveTimer();
  void onLiveness();
  static void onEventFd(int fd, short what, void* arg);
  static void onLivenessFd(int fd, short what, void* arg);
  static void onTimer(int fd, short what, void* arg);

  // data path (session_datapath.cc)
  Status handleCompletion(const Completion& c);
  Status handleData(uint32_t slot, uint32_t len);
  Status handleControl(uint32_t len);
  ControlEncoder& normal(uint32_t ack_ref = 0);
  ControlEncoder& priority();
  bool postControl(ControlBatch& batch, bool may_use_reserve);
  void flushControl();
  uint64_t wqeCreditsLeft() const;
  void markNotify(StreamImpl& s);
  void deliverNotifications();
  void unblockStreams();
  void maybeReturnSessionCredit();
  void updateWriteEvent();

  event_base* base_;
  std::string peer_name_;
  SessionOptions options_;
  AcceptHandler& accept_handler_;
  Stats stats_;
  std::function<void(const Status&)> on_down_;
  State state_ = State::kConnecting;
  bool peer_draining_ = false;

  std::unique_ptr<FabricConnection> connection_;
  SessionGeometry peer_geometry_;
  event* event_fd_ev_ = nullptr;
  event* liveness_ev_ = nullptr;
  event* timer_ev_ = nullptr;
  event* write_ev_ = nullptr;  // armed only while the fabric is backed up (tcp)

  // streams by local slot
  std::vector<std::unique_ptr<StreamImpl>> slots_;
  std::vector<uint32_t> generations_;
  std::vector<uint32_t> free_slots_;
  size_t active_streams_ = 0;
  std::vector<uint32_t> notify_queue_;  // refs with owed callbacks
  std::vector<uint32_t> blocked_refs_;  // refs waiting for session-wide credit
  std::vector<ControlRecord> parsed_;   // scratch for control batches

  // sender side accounting
  uint64_t posted_total_ = 0;            // writes we posted
  uint64_t peer_completions_total_ = 0;  // of those, consumed by the peer
  uint64_t control_written_ = 0;         // bytes of the peer's control ring, incl. padding
  uint64_t peer_control_consumed_ = 0;
  std::deque<ControlBatch> priority_batches_;  // credits and pongs: may use the reserve
  std::deque<ControlBatch> normal_batches_;
  // receiver side accounting
  uint64_t completions_total_ = 0;
  uint64_t completions_returned_ = 0;
  uint64_t control_consumed_ = 0;
  uint64_t control_returned_ = 0;
  std::chrono::steady_clock::time_point last_rx_;
  uint64_t ping_nonce_ = 0;
  bool in_flush_ = false;

  enum class IdleClose {
    kNone,
    kRequested,  // we asked; our new streams are held until the answer
    kConfirmed,  // the peer asked and we agreed; it closes (or we do at the next timer tick)
  };
  IdleClose idle_close_ = IdleClose::kNone;
  bool idle_close_due_ = false;  // close once the current batch of completions is handled
  std::chrono::steady_clock::time_point idle_since_;  // when the last stream ended
};

}  // namespace rdmesh::transport
