// tcp backend, data path: frames out through one send buffer (one send() per loop iteration for
// every stream), frames in through one receive buffer (one recv() for many frames).
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "tcp_fabric.h"

namespace rdmesh::transport {

namespace {
constexpr size_t kInputBufferBytes = size_t{512} * 1024;  // > the largest frame (64 KiB + header)
constexpr size_t kMaxUnsentBytes = 4 << 20;  // beyond this, stageWrite says "backed up"
// Payloads at least this large are read straight into the ring when not already buffered.
constexpr uint32_t kDirectPayloadBytes = 8192;
}  // namespace

TcpConnection::TcpConnection(UniqueFd fd, HelloExchange hello, std::unique_ptr<MemoryRegion> area)
    : fd_(std::move(fd)), hello_(std::move(hello)), area_(std::move(area)), in_(kInputBufferBytes) {
  out_.grow(1 << 20);
}

void TcpConnection::SendBuffer::grow(size_t needed) {
  if (needed <= capacity) return;
  size_t cap = std::max(needed, capacity * 2);
  auto bigger = std::make_unique_for_overwrite<std::byte[]>(cap);
  if (used) std::memcpy(bigger.get(), data.get(), used);
  data = std::move(bigger);
  capacity = cap;
}

std::span<std::byte> TcpConnection::stageWrite(uint64_t remote_offset, size_t max_len) {
  if (out_.used - out_head_ >= kMaxUnsentBytes) return {};
  staged_ = true;
  staged_at_ = out_.used;
  staged_offset_ = remote_offset;
  out_.grow(staged_at_ + sizeof(wire::TcpFrameHeader) + max_len);
  return {out_.data.get() + staged_at_ + sizeof(wire::TcpFrameHeader), max_len};
}

void TcpConnection::postWriteWithImm(size_t len, uint32_t imm) {
  if (!staged_) return;
  staged_ = false;
  if (len == 0) return;
  wire::TcpFrameHeader h{imm, static_cast<uint32_t>(len), staged_offset_};
  std::memcpy(out_.data.get() + staged_at_, &h, sizeof(h));
  out_.used = staged_at_ + sizeof(h) + len;
}

Status TcpConnection::flush() {
  while (out_head_ < out_.used) {
    ssize_t n = ::send(fd_.get(), out_.data.get() + out_head_, out_.used - out_head_,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      out_head_ += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    return unavailable(errnoText("tcp fabric send"));
  }
  if (out_head_ == out_.used) {
    out_.used = 0;
    out_head_ = 0;
  } else if (out_head_ > out_.used / 2) {
    std::memmove(out_.data.get(), out_.data.get() + out_head_, out_.used - out_head_);
    out_.used -= out_head_;
    out_head_ = 0;
  }
  return {};
}

bool TcpConnection::hasWholeFrame() const {
  wire::TcpFrameHeader h{};
  if (direct_.active || !in_.peek(&h)) return false;
  return in_.available() >= sizeof(h) + h.length;  // a bad header counts too: poll() reports it
}

Status TcpConnection::checkHeader(const wire::TcpFrameHeader& h) {
  if (h.length != wire::immLength(h.imm) || h.length == 0) {
    return protocolError(
        fmt::format("tcp frame: length {} does not match immediate {:#x}", h.length, h.imm));
  }
  auto area = area_->bytes();
  if (h.remote_offset > area.size() || h.length > area.size() - h.remote_offset) {
    return protocolError(fmt::format("tcp frame: write of {} bytes at {} outside the {}-byte area",
                                     h.length, h.remote_offset, area.size()));
  }
  return {};
}

Result<bool> TcpConnection::takeFrame(Completion& out) {
  wire::TcpFrameHeader h{};
  if (!in_.peek(&h)) return false;
  if (Status s = checkHeader(h); !s) return s;
  size_t avail = in_.available();
  const std::byte* payload = in_.data() + sizeof(h);
  std::byte* dest = area_->bytes().data() + h.remote_offset;
  if (avail >= sizeof(h) + h.length) {
    std::memcpy(dest, payload, h.length);
    in_.consume(sizeof(h) + h.length);
    out = {h.imm, h.length};
    return true;
  }
  if (h.length >= kDirectPayloadBytes) {
    // A large payload still on its way: what arrived goes to the ring now, the rest will be read
    // straight into it (readDirect), saving a copy of most of the frame.
    size_t have = avail - sizeof(h);
    std::memcpy(dest, payload, have);
    direct_ = {true, h, static_cast<uint32_t>(have)};
    in_.clear();
  }
  return false;
}

// One readv(): the rest of the large payload into the ring, and the next frame header into the
// input buffer (so that the next payload of a bulk stream can go direct too).
Result<bool> TcpConnection::readDirect(Completion& out) {
  const wire::TcpFrameHeader& h = direct_.header;
  auto got = in_.readDirect(fd_.get(), area_->bytes().data() + h.remote_offset + direct_.done,
                            h.length - direct_.done, sizeof(wire::TcpFrameHeader), "tcp fabric");
  if (!got) return got.status();
  direct_.done += static_cast<uint32_t>(*got);
  if (direct_.done < h.length) return false;
  direct_.active = false;
  out = {h.imm, h.length};
  return true;
}

void TcpConnection::releaseReceiveMemory(uint64_t offset, uint64_t bytes) {
  ::madvise(area_->bytes().data() + offset, bytes, MADV_DONTNEED);
}

Result<size_t> TcpConnection::poll(std::span<Completion> out) {
  size_t n = 0;
  bool read_once = false;  // one read per poll: let the event loop serve others
  while (n < out.size()) {
    if (direct_.active) {
      if (read_once) break;
      read_once = true;
      auto done = readDirect(out[n]);
      if (!done) return done.status();
      if (!*done) break;
      ++n;
      continue;
    }
    auto frame = takeFrame(out[n]);
    if (!frame) return frame.status();
    if (*frame) {
      ++n;
      continue;
    }
    if (direct_.active) continue;
    if (read_once) break;
    read_once = true;
    auto got = in_.readOnce(fd_.get(), "tcp fabric");
    if (!got) return got.status();
    if (!*got) break;
  }
  return n;
}

}  // namespace rdmesh::transport
