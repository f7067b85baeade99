// The byte stream a peer sends, for fuzz targets that drive a real connection: the input is
// written into the peer's end of a socketpair as fast as the reader takes it, then the peer
// half-closes, so the reader sees a clean end of stream after the last byte.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

namespace rdmesh::fuzz {

class SocketFeeder {
 public:
  SocketFeeder(int fd, const uint8_t* data, size_t size) : fd_(fd), data_(data), size_(size) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  // Sends what the socket takes now; half-closes once everything is sent.
  void feed() {
    if (sent_ < size_) {
      ssize_t n = ::send(fd_, data_ + sent_, size_ - sent_, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) sent_ += static_cast<size_t>(n);
    }
    if (sent_ == size_ && !shut_) {
      ::shutdown(fd_, SHUT_WR);
      shut_ = true;
    }
  }
  bool shut() const { return shut_; }
  // A bound on the reader's polls: each one delivers, reads, or waits for the sender.
  size_t maxPolls() const { return 4 * size_ + 1000; }

 private:
  int fd_;
  const uint8_t* data_;
  size_t size_;
  size_t sent_ = 0;
  bool shut_ = false;
};

}  // namespace rdmesh::fuzz
