// The receive side of a framed byte stream over a socket (the tcp fabric, the tcp link): bytes
// read but not yet parsed, taken in as few syscalls as possible, and large payloads read straight
// into their destination together with the header that follows them.
#pragma once

#include <cstddef>
#include <cstring>
#include <vector>

#include "rdmesh/common/status.h"

namespace rdmesh::transport {

class StreamInput {
 public:
  explicit StreamInput(size_t capacity) : buf_(capacity) {}

  size_t available() const { return end_ - begin_; }
  const std::byte* data() const { return buf_.data() + begin_; }
  void consume(size_t bytes) { begin_ += bytes; }
  void clear() { begin_ = end_ = 0; }
  // Copies a fixed header from the front; false when fewer bytes are buffered.
  template <typename Header>
  bool peek(Header* header) const {
    if (available() < sizeof(Header)) return false;
    std::memcpy(header, data(), sizeof(Header));
    return true;
  }

  // Moves the unparsed bytes to the front and reads once (non-blocking): true when bytes came,
  // false when the socket has none now; an error (`who` names the reader) when the peer closed
  // the connection or the read failed.
  Result<bool> readOnce(int fd, const char* who);
  // For a payload whose buffered part was consumed (the buffer is empty): one readv() of up to
  // `need` bytes straight into `dest` and up to `next_bytes` that follow into this buffer.
  // Returns the payload bytes stored (0: nothing waiting now), or an error as readOnce().
  Result<size_t> readDirect(int fd, std::byte* dest, size_t need, size_t next_bytes,
                            const char* who);

 private:
  std::vector<std::byte> buf_;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace rdmesh::transport
