// libFuzzer target for what a peer node agent sends on a node-pair link: the LinkHello, and the
// tcp link's frame stream. The first input byte picks which.
//   hello: every rejection is a ProtocolError with a message; an accepted hello is within the
//          documented limits and re-encodes to the same bytes.
//   frames: a tcp link is brought up through LinkDomain::accept on a socketpair, the rest of the
//          input is written into the peer's end, and poll() runs until it reports an error. A
//          simple model predicts the outcome: every whole valid frame arrives in order (writes with
//          their bytes at their offset of the one registration, control messages with their
//          bytes); the first bad header (unknown key, out of bounds, bad type...) is a protocol
//          error; a clean end of stream, possibly inside a frame, is "peer closed".
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "rdmesh/transport/link_codec.h"
#include "rdmesh/transport/link_wire.h"
#include "rdmesh/transport/pair_link.h"

namespace {

using namespace rdmesh;
using namespace rdmesh::transport;
namespace wl = rdmesh::wire::link;

[[noreturn]] void failProperty(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "fuzz_pair_link: %s\n%s\n", what, detail.c_str());
  std::abort();
}

void fuzzHello(std::span<const std::byte> bytes) {
  auto size = linkHelloSize(bytes);
  auto hello = parseLinkHello(bytes);
  if (!hello.isOk()) {
    if (hello.status().code() != StatusCode::kProtocolError) {
      failProperty("rejected with a code other than ProtocolError", hello.status().message());
    }
    if (hello.status().message().empty()) failProperty("rejection without a message");
    return;
  }
  if (!size.isOk() || *size != bytes.size()) failProperty("size disagrees with the parser");
  if (hello->node_name.empty() || hello->node_name.size() > wire::kMaxNodeNameBytes) {
    failProperty("accepted a bad node name", hello->node_name);
  }
  if (hello->fabric != wire::FabricKind::kTcp && hello->fabric != wire::FabricKind::kVerbs) {
    failProperty("accepted a fabric a link cannot run");
  }
  if (hello->version_min == 0 || hello->version_min > hello->version_max) {
    failProperty("accepted a bad version range");
  }
  auto again = encodeLinkHello(*hello);
  if (again.size() != bytes.size() || std::memcmp(again.data(), bytes.data(), bytes.size()) != 0) {
    failProperty("re-encoding an accepted hello gives different bytes");
  }
}

constexpr size_t kAreaBytes = 64 << 10;

struct Target {
  std::unique_ptr<LinkDomain> domain;
  std::vector<std::byte> memory = std::vector<std::byte>(kAreaBytes);
  std::shared_ptr<RegisteredMemory> reg;
  uint32_t key = 0;
};

Target& target() {
  static Target t = [] {
    Target t;
    LinkDomainOptions o;
    o.node_name = "fuzz-node";
    o.rdma = false;
    t.domain = makeLinkDomain(o);
    auto reg = t.domain->registerMemory(t.memory);
    if (!reg.isOk()) failProperty("registerMemory", reg.status().message());
    t.reg = std::move(reg.value());
    return t;
  }();
  return t;
}

struct Frame {
  wl::LinkFrameHeader header;
  const uint8_t* payload;
};

struct Expectation {
  std::vector<Frame> frames;    // whole valid frames, in order
  bool protocol_error = false;  // a bad header follows them
};

bool headerValid(const wl::LinkFrameHeader& h, uint32_t key) {
  if (h.reserved0 != 0 || h.reserved1 != 0) return false;
  if (h.type == 1) {
    return (h.imm >> 28) != 0xf && h.key == key && h.offset <= kAreaBytes &&
           h.length <= kAreaBytes - h.offset;
  }
  if (h.type == 2) {
    return h.length >= 1 && h.length <= wl::kMaxControlBytes && h.imm == 0 && h.key == 0 &&
           h.offset == 0;
  }
  return false;
}

Expectation model(const uint8_t* data, size_t size, uint32_t key) {
  Expectation e;
  size_t pos = 0;
  while (size - pos >= sizeof(wl::LinkFrameHeader)) {
    wl::LinkFrameHeader h;
    std::memcpy(&h, data + pos, sizeof(h));
    if (!headerValid(h, key)) {
      e.protocol_error = true;
      return e;
    }
    if (size - pos - sizeof(h) < h.length) return e;  // cut off inside the payload
    e.frames.push_back({h, data + pos + sizeof(h)});
    pos += sizeof(h) + h.length;
  }
  return e;
}

void fuzzFrames(const uint8_t* data, size_t size) {
  Target& t = target();
  std::memset(t.memory.data(), 0, t.memory.size());
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) failProperty("socketpair");
  const int peer = fds[1];
  LinkHello theirs;
  theirs.node_name = "fuzz-peer";
  auto hello = encodeLinkHello(theirs);
  if (::send(peer, hello.data(), hello.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(hello.size())) {
    failProperty("send hello");
  }
  auto accepted =
      t.domain->accept(fds[0], std::chrono::steady_clock::now() + std::chrono::seconds(5));
  if (!accepted.isOk()) failProperty("accept", accepted.status().message());
  PairLink& link = *accepted.value();
  const uint32_t key = link.describe(*t.reg).key;
  ::fcntl(peer, F_SETFL, ::fcntl(peer, F_GETFL) | O_NONBLOCK);

  const Expectation expect = model(data, size, key);
  std::vector<std::byte> shadow(kAreaBytes);  // what the memory must hold after the arrivals
  size_t sent = 0;
  bool shut = false;
  size_t arrived = 0;
  std::vector<LinkEvent> events;
  const size_t max_polls = 4 * size + 1000;  // each poll delivers, reads, or waits for the sender
  for (size_t polls = 0;; ++polls) {
    if (polls > max_polls) failProperty("poll() makes no progress");
    if (sent < size) {
      ssize_t n = ::send(peer, data + sent, size - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<size_t>(n);
    }
    if (sent == size && !shut) {
      ::shutdown(peer, SHUT_WR);
      shut = true;
    }
    events.clear();
    auto n = link.poll(events, 64);
    if (!n.isOk()) {
      const Status& st = n.status();
      if (expect.protocol_error) {
        if (st.code() != StatusCode::kProtocolError) {
          failProperty("expected a protocol error", st.message());
        }
        // The events of the poll() that hit the bad frame are lost with the link.
        if (arrived > expect.frames.size()) failProperty("delivered past the bad frame");
      } else {
        if (st.code() != StatusCode::kUnavailable || !shut) {
          failProperty("expected 'peer closed' at the end of the stream", st.message());
        }
        if (arrived > expect.frames.size())
          failProperty("delivered frames the model does not have");
      }
      break;
    }
    if (events.size() != *n) failProperty("poll() count differs from the events appended");
    for (const LinkEvent& e : events) {
      if (arrived >= expect.frames.size()) failProperty("an event the model does not expect");
      const Frame& f = expect.frames[arrived++];
      const auto* payload = reinterpret_cast<const std::byte*>(f.payload);
      if (f.header.type == 1) {
        if (e.type != LinkEvent::Type::kWriteArrived || e.imm != f.header.imm ||
            e.byte_len != f.header.length) {
          failProperty("write arrival mismatch");
        }
        std::memcpy(shadow.data() + f.header.offset, payload, f.header.length);
      } else if (e.type != LinkEvent::Type::kControl || e.control.size() != f.header.length ||
                 std::memcmp(e.control.data(), payload, f.header.length) != 0) {
        failProperty("control message mismatch");
      }
    }
    if (!events.empty() && std::memcmp(shadow.data(), t.memory.data(), kAreaBytes) != 0) {
      failProperty("registered memory differs from the writes delivered so far");
    }
  }
  ::close(peer);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  if (data[0] & 1) {
    fuzzFrames(data + 1, size - 1);
  } else {
    fuzzHello({reinterpret_cast<const std::byte*>(data) + 1, size - 1});
  }
  return 0;
}
