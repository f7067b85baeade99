// Stream users for session tests: an opener (Client) that sends a pattern and collects what
// comes back, and an acceptor (Server) that echoes or sinks. Shared by the session suites.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "rdmesh/common/address.h"
#include "rdmesh/transport/session.h"

namespace rdmesh::transport::test_streams {

using wire::ResetReason;

inline std::byte patternByte(uint32_t seed, uint64_t i) {
  uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ (uint64_t{seed} << 32 | seed);
  x ^= x >> 29;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 32;
  return static_cast<std::byte>(x);
}

inline std::vector<std::byte> pattern(uint32_t seed, size_t n) {
  std::vector<std::byte> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = patternByte(seed, i);
  return out;
}

// Index of the first difference, or -1.
inline ptrdiff_t firstDifference(const std::vector<std::byte>& got, const std::vector<std::byte>& want) {
  size_t n = std::min(got.size(), want.size());
  for (size_t i = 0; i < n; ++i) {
    if (got[i] != want[i]) return static_cast<ptrdiff_t>(i);
  }
  return got.size() == want.size() ? -1 : static_cast<ptrdiff_t>(n);
}

// ---------------------------------------------------------------- stream users

// The opener's side: sends `to_send` (in chunks of at most `max_chunk` per pump), optionally
// finishes after it, and collects what comes back.
class Client : public StreamCallbacks {
 public:
  explicit Client(std::vector<std::byte> to_send = {}) : to_send_(std::move(to_send)) {}

  Stream* stream = nullptr;
  bool opened = false;
  bool got_reset = false;
  ResetReason reset_reason = ResetReason::kUnknown;
  int writable_events = 0;
  bool read_automatically = true;
  bool finish_when_sent = false;
  bool close_at_eof = true;
  bool eof = false;
  bool closed = false;
  size_t max_chunk = SIZE_MAX;
  std::vector<std::byte> received;

  const std::vector<std::byte>& toSend() const { return to_send_; }
  size_t sent() const { return sent_; }
  bool done() const { return closed || got_reset; }

  bool open(Session& session, uint16_t port = 8080, std::string_view identity = "spiffe://a") {
    auto dst = InetAddress::parse("10.0.0.1:" + std::to_string(port));
    stream = session.openStream(dst.value(), identity, this);
    return stream != nullptr;
  }

  // Writes as much as credit allows (at most one chunk when `once`).
  void pump(bool once = false) {
    if (stream == nullptr || !opened) return;
    while (sent_ < to_send_.size()) {
      auto room = stream->writable();
      if (room.empty()) break;
      size_t n = std::min({room.size(), to_send_.size() - sent_, max_chunk});
      std::memcpy(room.data(), to_send_.data() + sent_, n);
      stream->commit(n);
      sent_ += n;
      if (once) break;
    }
    if (finish_when_sent && sent_ == to_send_.size() && !finished_) {
      finished_ = true;
      stream->finish();
    }
  }

  void read() {
    if (stream == nullptr) return;
    for (;;) {
      auto r = stream->readable();
      if (r.empty()) break;
      received.insert(received.end(), r.begin(), r.end());
      stream->consume(r.size());
    }
    if (stream->atEof()) {
      eof = true;
      if (close_at_eof && finished_) {
        stream->close();
        stream = nullptr;
        closed = true;
      }
    }
  }

  void onStreamOpened() override {
    opened = true;
    pump();
  }
  void onStreamData() override {
    if (read_automatically) read();
  }
  void onStreamWritable() override {
    ++writable_events;
    pump();
  }
  void onStreamReset(ResetReason reason) override {
    got_reset = true;
    reset_reason = reason;
    stream = nullptr;
  }

 private:
  std::vector<std::byte> to_send_;
  size_t sent_ = 0;
  bool finished_ = false;
};

// The acceptor's side. Echo mode copies the ring straight into the peer's ring, never taking more
// than it can write (so backpressure reaches the opener); it finishes and closes after EOF.
// Otherwise it collects (sink) and lets the test drive it.
class Server : public StreamCallbacks {
 public:
  enum class Mode { kEcho, kSink };
  Server(Stream& s, Mode mode) : stream(&s), mode(mode) {}

  Stream* stream;
  Mode mode;
  bool read_automatically = true;
  bool got_reset = false;
  ResetReason reset_reason = ResetReason::kUnknown;
  bool eof = false;
  size_t received_at_eof = 0;
  bool closed = false;
  int writable_events = 0;
  std::vector<std::byte> received;
  size_t echoed = 0;

  void echo() {
    if (stream == nullptr) return;
    for (;;) {
      auto r = stream->readable();
      if (r.empty()) break;
      auto w = stream->writable();
      if (w.empty()) break;  // onStreamWritable() follows
      size_t n = std::min(r.size(), w.size());
      std::memcpy(w.data(), r.data(), n);
      stream->commit(n);
      stream->consume(n);
      echoed += n;
    }
    if (stream->atEof()) {
      eof = true;
      stream->finish();
      stream->close();
      stream = nullptr;
      closed = true;
    }
  }

  void read() {
    if (stream == nullptr) return;
    for (;;) {
      auto r = stream->readable();
      if (r.empty()) break;
      received.insert(received.end(), r.begin(), r.end());
      stream->consume(r.size());
    }
    if (stream->atEof() && !eof) {
      eof = true;
      received_at_eof = received.size();
    }
  }

  // Writes `bytes` as far as credit allows; returns how many went.
  size_t write(std::span<const std::byte> bytes) {
    size_t done = 0;
    while (stream && done < bytes.size()) {
      auto w = stream->writable();
      if (w.empty()) break;
      size_t n = std::min(w.size(), bytes.size() - done);
      std::memcpy(w.data(), bytes.data() + done, n);
      stream->commit(n);
      done += n;
    }
    return done;
  }

  void onStreamOpened() override {}
  void onStreamData() override {
    if (mode == Mode::kEcho) {
      echo();
    } else if (read_automatically) {
      read();
    }
  }
  void onStreamWritable() override {
    ++writable_events;
    if (mode == Mode::kEcho) echo();
  }
  void onStreamReset(ResetReason reason) override {
    got_reset = true;
    reset_reason = reason;
    stream = nullptr;
  }
};

}  // namespace rdmesh::transport::test_streams
