#include "stream_input.h"

#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>

#include "unix_fd.h"

namespace rdmesh::transport {

namespace {
Status readFailed(const char* who) {
  return unavailable(fmt::format("{} recv: {}", who, strerror(errno)));
}
Status peerClosed(const char* who) {
  return unavailable(fmt::format("{}: the peer closed the connection", who));
}
}  // namespace

Result<bool> StreamInput::readOnce(int fd, const char* who) {
  if (begin_ > 0) {
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  ssize_t got = ::recv(fd, buf_.data() + end_, buf_.size() - end_, MSG_DONTWAIT);
  if (got > 0) {
    end_ += static_cast<size_t>(got);
    return true;
  }
  if (got == 0) return peerClosed(who);
  if (errno == EAGAIN || errno == EINTR) return false;
  return readFailed(who);
}

Result<size_t> StreamInput::readDirect(int fd, std::byte* dest, size_t need, size_t next_bytes,
                                       const char* who) {
  iovec iov[2] = {{dest, need}, {buf_.data(), std::min(next_bytes, buf_.size())}};
  ssize_t got = ::readv(fd, iov, 2);
  if (got == 0) return peerClosed(who);
  if (got < 0) {
    if (errno == EAGAIN || errno == EINTR) return size_t{0};
    return readFailed(who);
  }
  auto bytes = static_cast<size_t>(got);
  if (bytes <= need) return bytes;
  begin_ = 0;
  end_ = bytes - need;
  return need;
}

}  // namespace rdmesh::transport
