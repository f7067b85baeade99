#include "socket_end.h"

#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace rdmesh::proxy {

namespace {
// Reads per readable event before yielding to other connections of the loop.
constexpr int kMaxReadsPerEvent = 8;
}  // namespace

SocketEnd::SocketEnd(event_base* base, Owner& owner) : base_(base), owner_(owner) {}

SocketEnd::~SocketEnd() {
  close();
}

void SocketEnd::adopt(int fd) {
  fd_ = fd;
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  read_ev_ = event_new(base_, fd_, EV_READ | EV_PERSIST, &SocketEnd::onEvent, this);
  write_ev_ = event_new(base_, fd_, EV_WRITE | EV_PERSIST, &SocketEnd::onEvent, this);
}

void SocketEnd::connect(const InetAddress& address) {
  int fd = ::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    // Keep an fd for the event machinery so the failure is reported like any other.
    fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    connect_errno_ = errno == 0 ? EMFILE : errno;
  }
  adopt(fd);
  connecting_ = true;
  if (connect_errno_ == 0 && ::connect(fd, address.sockaddrPtr(), address.sockaddrLen()) != 0 &&
      errno != EINPROGRESS) {
    connect_errno_ = errno;
  }
  if (connect_errno_ != 0) {
    write_armed_ = true;
    event_add(write_ev_, nullptr);
    event_active(write_ev_, EV_WRITE, 0);
    return;
  }
  armWrite(true);
}

void SocketEnd::enableRead(bool on) {
  if (fd_ < 0 || on == reading_) return;
  reading_ = on;
  if (on) {
    event_add(read_ev_, nullptr);
  } else {
    event_del(read_ev_);
  }
}

void SocketEnd::armWrite(bool on) {
  if (fd_ < 0 || on == write_armed_) return;
  write_armed_ = on;
  if (on) {
    event_add(write_ev_, nullptr);
  } else {
    event_del(write_ev_);
  }
}

SocketEnd::ReadResult SocketEnd::readInto(ByteSink& sink) {
  for (int i = 0; i < kMaxReadsPerEvent; ++i) {
    std::span<std::byte> room = sink.writable();
    if (room.empty()) return ReadResult::kSinkFull;
    ssize_t n = ::recv(fd_, room.data(), room.size(), MSG_DONTWAIT);
    if (n > 0) {
      sink.commit(static_cast<size_t>(n));
      // A short read emptied the socket: skip the recv() that would only say EAGAIN.
      if (static_cast<size_t>(n) < room.size()) return ReadResult::kDrained;
      continue;
    }
    sink.commit(0);
    if (n == 0) return ReadResult::kEof;
    if (errno == EAGAIN || errno == EINTR) return ReadResult::kDrained;
    return ReadResult::kError;
  }
  return ReadResult::kDrained;  // level-triggered: the loop calls again if more is there
}

SocketEnd::WriteResult SocketEnd::writeFrom(ByteSource& source) {
  for (;;) {
    std::span<const std::byte> data = source.readable();
    if (data.empty()) {
      armWrite(false);
      return WriteResult::kAllWritten;
    }
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      source.consume(static_cast<size_t>(n));
      if (static_cast<size_t>(n) < data.size()) {
        armWrite(true);
        return WriteResult::kBlocked;
      }
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      armWrite(true);
      return WriteResult::kBlocked;
    }
    return WriteResult::kError;
  }
}

void SocketEnd::shutdownWrite() {
  if (fd_ < 0 || write_shut_) return;
  write_shut_ = true;
  ::shutdown(fd_, SHUT_WR);
}

void SocketEnd::closeWithReset() {
  if (fd_ < 0) return;
  linger lg{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  close();
}

void SocketEnd::close() {
  if (read_ev_) event_free(read_ev_);
  if (write_ev_) event_free(write_ev_);
  read_ev_ = write_ev_ = nullptr;
  reading_ = write_armed_ = false;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void SocketEnd::onEvent(int fd, short what, void* arg) {
  auto* self = static_cast<SocketEnd*>(arg);
  if (self->connecting_ && (what & EV_WRITE)) {
    self->connecting_ = false;
    self->armWrite(false);
    int err = self->connect_errno_;
    socklen_t len = sizeof(err);
    if (err == 0) ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      self->owner_.onSocketConnectFailed(*self, unavailable(strerror(err)));
    } else {
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      self->owner_.onSocketConnected(*self);
    }
    return;
  }
  // The owner may close (and schedule deletion of) the connection in either call: check fd_.
  if (what & EV_WRITE) self->owner_.onSocketWritable(*self);
  if ((what & EV_READ) && self->fd_ >= 0) self->owner_.onSocketReadable(*self);
}

}  // namespace rdmesh::proxy
