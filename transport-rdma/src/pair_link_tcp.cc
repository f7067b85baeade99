// tcp PairLink, data path: frames out with one sendmsg() over many iovecs per flush (headers from
// the queue, payloads from registered memory), frames in through one receive buffer; large
// payloads are read straight into their target registration.
#include "pair_link_tcp.h"

#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include "rdmesh/transport/link_codec.h"

namespace rdmesh::transport {

namespace {
namespace wl = wire::link;
constexpr size_t kInputBufferBytes = size_t{256} << 10;  // > a control frame or a small write
// Payloads at least this large are read straight into their target when not already buffered.
// Smaller ones are copied from the input buffer: a memcpy of a few KiB costs less than a readv().
constexpr uint32_t kDirectPayloadBytes = 8192;
constexpr size_t kMaxIov = 64;
static_assert(kInputBufferBytes >= sizeof(wl::LinkFrameHeader) + wl::kMaxControlBytes);
static_assert(kInputBufferBytes >= sizeof(wl::LinkFrameHeader) + kDirectPayloadBytes);
}  // namespace

TcpPairLink::TcpPairLink(std::shared_ptr<LinkDomainCore> core, UniqueFd fd, std::string peer_node,
                         std::string fallback_reason, uint32_t send_depth)
    : core_(std::move(core)),
      fd_(std::move(fd)),
      peer_node_(std::move(peer_node)),
      fallback_reason_(std::move(fallback_reason)),
      send_depth_(send_depth),
      in_(kInputBufferBytes) {}

RemoteMemory TcpPairLink::describe(const RegisteredMemory& memory) const {
  const LinkRegistration* reg = ownRegistration(*core_, memory);
  if (reg == nullptr) return {};
  return {0, reg->id(), reg->bytes().size()};
}

// ---------------------------------------------------------------- send side

Status TcpPairLink::postWrite(const RegisteredMemory& src, uint64_t src_offset, uint32_t len,
                              const RemoteMemory& dst, uint64_t dst_offset, uint32_t imm,
                              uint64_t cookie) {
  if (!broken_) return broken_;
  auto reg = checkWrite(*core_, src, src_offset, len, dst, dst_offset, imm);
  if (!reg) return reg.status();
  if (Status s = checkCookie(any_cookie_, last_cookie_, cookie); !s) return s;
  if (queued_writes_ >= send_depth_) {
    return unavailable("tcp link: send queue full (the socket is backed up)");
  }
  OutFrame f{};
  f.header.type = static_cast<uint8_t>(wl::FrameType::kWrite);
  f.header.imm = imm;
  f.header.key = dst.key;
  f.header.length = len;
  f.header.offset = dst.addr + dst_offset;
  f.payload = (*reg)->bytes().data() + src_offset;
  f.has_cookie = true;
  f.cookie = cookie;
  out_.push_back(std::move(f));
  ++queued_writes_;
  any_cookie_ = true;
  last_cookie_ = cookie;
  return {};
}

Status TcpPairLink::sendControl(std::span<const std::byte> message) {
  if (!broken_) return broken_;
  if (Status s = checkControl(message); !s) return s;
  OutFrame f{};
  f.header.type = static_cast<uint8_t>(wl::FrameType::kControl);
  f.header.length = static_cast<uint32_t>(message.size());
  f.owned.assign(message.begin(), message.end());
  f.payload = f.owned.data();
  out_.push_back(std::move(f));
  return {};
}

void TcpPairLink::sent(size_t bytes) {
  while (bytes > 0) {
    OutFrame& f = out_.front();
    size_t frame_bytes = sizeof(f.header) + f.header.length;
    size_t take = std::min(bytes, frame_bytes - head_sent_);
    head_sent_ += take;
    bytes -= take;
    if (head_sent_ < frame_bytes) break;
    // In the kernel now: the source may be reused, which is what kWriteDone tells the caller.
    if (f.has_cookie) {
      done_cookie_ = f.cookie;
      done_pending_ = true;
      --queued_writes_;
    }
    out_.pop_front();
    head_sent_ = 0;
  }
}

Status TcpPairLink::flush() {
  if (!broken_) return broken_;
  while (!out_.empty()) {
    iovec iov[kMaxIov];
    size_t n = 0;
    size_t skip = head_sent_;
    for (auto it = out_.begin(); it != out_.end() && n + 2 <= kMaxIov; ++it) {
      const auto* header = reinterpret_cast<const std::byte*>(&it->header);
      if (skip < sizeof(it->header)) {
        iov[n++] = {const_cast<std::byte*>(header + skip), sizeof(it->header) - skip};
        skip = 0;
      } else {
        skip -= sizeof(it->header);
      }
      if (it->header.length > skip) {
        iov[n++] = {const_cast<std::byte*>(it->payload + skip), it->header.length - skip};
      }
      skip = 0;
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
    ssize_t got = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (got > 0) {
      sent(static_cast<size_t>(got));
      continue;
    }
    if (got < 0 && errno == EINTR) continue;
    if (got < 0 && errno == EAGAIN) break;
    broken_ = unavailable(errnoText("tcp link send"));
    return broken_;
  }
  return {};
}

// ---------------------------------------------------------------- receive side

bool TcpPairLink::hasWholeFrame() const {
  size_t avail = in_end_ - in_begin_;
  if (direct_.active || avail < sizeof(wl::LinkFrameHeader)) return false;
  wl::LinkFrameHeader h{};
  std::memcpy(&h, in_.data() + in_begin_, sizeof(h));
  // A bad header counts too (poll() reports it), and so does a large write that will go direct.
  return avail - sizeof(h) >= h.length || !checkLinkFrameHeader(h) ||
         (h.type == static_cast<uint8_t>(wl::FrameType::kWrite) && h.length >= kDirectPayloadBytes);
}

Result<bool> TcpPairLink::takeFrame(LinkEvent& out) {
  size_t avail = in_end_ - in_begin_;
  if (avail < sizeof(wl::LinkFrameHeader)) return false;
  wl::LinkFrameHeader h{};
  std::memcpy(&h, in_.data() + in_begin_, sizeof(h));
  if (Status s = checkLinkFrameHeader(h); !s) return s;
  const std::byte* payload = in_.data() + in_begin_ + sizeof(h);
  bool whole = avail - sizeof(h) >= h.length;
  if (h.type == static_cast<uint8_t>(wl::FrameType::kControl)) {
    if (!whole) return false;
    out = LinkEvent::controlMessage({payload, payload + h.length});
    in_begin_ += sizeof(h) + h.length;
    return true;
  }
  auto dest = core_->resolve(h.key, h.offset, h.length);
  if (!dest) return protocolError("tcp link: " + dest.status().message());
  if (whole) {
    if (h.length) std::memcpy(*dest, payload, h.length);
    in_begin_ += sizeof(h) + h.length;
    out = LinkEvent::writeArrived(h.imm, h.length);
    return true;
  }
  if (h.length >= kDirectPayloadBytes) {
    // The rest of a large payload is still on its way: what arrived goes to its target now, the
    // rest is read straight into it (readDirect).
    size_t have = avail - sizeof(h);
    std::memcpy(*dest, payload, have);
    direct_ = {true, h, static_cast<uint32_t>(have)};
    in_begin_ = in_end_ = 0;
  }
  return false;
}

// One readv(): the rest of the payload into its target, and the next frame header into the
// input buffer (so the next large payload can go direct too).
Result<bool> TcpPairLink::readDirect(LinkEvent& out) {
  const wl::LinkFrameHeader& h = direct_.header;
  // Looked up again: the registration may have been released since the frame began (a caller
  // bug, see LinkDomain::registerMemory), which must end the link, not write to freed memory.
  auto dest = core_->resolve(h.key, h.offset, h.length);
  if (!dest) {
    return protocolError(
        fmt::format("tcp link: registration {} was released while a write to it "
                    "was arriving ({})",
                    h.key, dest.status().message()));
  }
  size_t need = h.length - direct_.done;
  iovec iov[2] = {{*dest + direct_.done, need}, {in_.data(), sizeof(wl::LinkFrameHeader)}};
  ssize_t got = ::readv(fd_.get(), iov, 2);
  if (got == 0) return unavailable("tcp link: the peer closed the connection");
  if (got < 0) {
    if (errno == EAGAIN || errno == EINTR) return false;
    return unavailable(errnoText("tcp link recv"));
  }
  auto bytes = static_cast<size_t>(got);
  if (bytes < need) {
    direct_.done += static_cast<uint32_t>(bytes);
    return false;
  }
  in_begin_ = 0;
  in_end_ = bytes - need;
  direct_.active = false;
  out = LinkEvent::writeArrived(h.imm, h.length);
  return true;
}

Result<size_t> TcpPairLink::poll(std::vector<LinkEvent>& out, size_t max_events) {
  if (!broken_) return broken_;
  // On an error nothing is appended: the link is lost with whatever it held.
  const size_t before = out.size();
  auto lost = [&](Status status) {
    out.resize(before);
    broken_ = std::move(status);
    return broken_;
  };
  size_t n = 0;
  if (done_pending_ && n < max_events) {
    out.push_back(LinkEvent::writeDone(done_cookie_));
    done_pending_ = false;
    ++n;
  }
  bool read_once = false;  // one read per poll: let the event loop serve the others
  LinkEvent event;
  while (n < max_events) {
    Result<bool> got = false;
    if (direct_.active) {
      if (read_once) break;
      read_once = true;
      got = readDirect(event);
    } else {
      got = takeFrame(event);
    }
    if (!got) return lost(got.status());
    if (*got) {
      out.push_back(std::move(event));
      ++n;
      continue;
    }
    if (direct_.active) continue;
    if (read_once) break;
    // Make room: move the partial frame to the front.
    if (in_begin_ > 0) {
      std::memmove(in_.data(), in_.data() + in_begin_, in_end_ - in_begin_);
      in_end_ -= in_begin_;
      in_begin_ = 0;
    }
    ssize_t r = ::recv(fd_.get(), in_.data() + in_end_, in_.size() - in_end_, MSG_DONTWAIT);
    read_once = true;
    if (r > 0) {
      in_end_ += static_cast<size_t>(r);
      continue;
    }
    if (r == 0) return lost(unavailable("tcp link: the peer closed the connection"));
    if (errno == EAGAIN || errno == EINTR) break;
    return lost(unavailable(errnoText("tcp link recv")));
  }
  return n;
}

}  // namespace rdmesh::transport
