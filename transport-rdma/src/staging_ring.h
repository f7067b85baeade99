// Send staging as a ring of variable-sized writes that complete in order: a write takes
// contiguous room (skipping the ring's tail end when it does not fit there), and the room comes
// back when the write completes. Positions count bytes ever handed out, so they never wrap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

namespace rdmesh::transport {

class StagingRing {
 public:
  static constexpr size_t kAlign = 64;  // each write starts on its own cache line

  explicit StagingRing(uint64_t bytes) : bytes_(bytes) {}

  // Offset of `len` contiguous free bytes, or nullopt when full. Holds until commit().
  std::optional<size_t> reserve(size_t len) {
    size_t pos = head_ % bytes_;
    uint64_t pad = bytes_ - pos < len ? bytes_ - pos : 0;
    if (head_ - tail_ + pad + len > bytes_) return std::nullopt;
    pad_ = pad;
    return pad ? 0 : pos;
  }
  // The reserved write went out with `len` bytes; returns the position to release() once it
  // has completed.
  uint64_t commit(size_t len) {
    head_ += pad_ + ((len + kAlign - 1) & ~(kAlign - 1));
    pad_ = 0;
    return head_;
  }
  // Every write up to the one whose commit() returned `end` has completed.
  void release(uint64_t end) { tail_ = end; }

 private:
  uint64_t bytes_;
  uint64_t head_ = 0;  // handed out, including the padding skipped at the end
  uint64_t tail_ = 0;  // freed by completed writes
  uint64_t pad_ = 0;
};

}  // namespace rdmesh::transport
