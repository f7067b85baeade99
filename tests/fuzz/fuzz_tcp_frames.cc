// libFuzzer target for the tcp fabric's frame parser: the input is the byte stream a peer sends on
// an established tcp fabric connection (after the Hello). The connection is brought up through the
// public Fabric API on a socketpair, the input is written into the other end, and poll() runs until
// it reports an error. A simple model of the framing predicts the outcome: every whole valid frame
// is completed in order with its bytes at its offset; the first bad frame header is a protocol
// error; a clean end of stream (possibly inside a frame) is "peer closed".
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

#include "rdmesh/transport/fabric.h"
#include "rdmesh/transport/hello.h"
#include "rdmesh/transport/wire.h"
#include "socket_feeder.h"

namespace {

using namespace rdmesh;
using namespace rdmesh::transport;

[[noreturn]] void failProperty(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "fuzz_tcp_frames: %s\n%s\n", what, detail.c_str());
  std::abort();
}

// Receive area: control ring 16 KiB + 12 rings of 4 KiB = 64 KiB.
SessionGeometry geometry() {
  SessionGeometry g;
  g.max_streams = 12;
  g.ring_bytes = 4096;
  g.control_ring_bytes = 16384;
  g.recv_depth = 64;
  g.keepalive_timeout_ms = 1000;
  return g;
}

struct Frame {
  uint32_t imm;
  uint32_t length;
  uint64_t offset;
  const uint8_t* payload;
};

struct Expectation {
  std::vector<Frame> frames;    // whole valid frames, in order
  bool protocol_error = false;  // a bad header follows them
};

Expectation model(const uint8_t* data, size_t size, uint64_t area) {
  Expectation e;
  size_t pos = 0;
  while (size - pos >= sizeof(wire::TcpFrameHeader)) {
    wire::TcpFrameHeader h;
    std::memcpy(&h, data + pos, sizeof(h));
    if (h.length == 0 || h.length != wire::immLength(h.imm) || h.remote_offset > area ||
        h.length > area - h.remote_offset) {
      e.protocol_error = true;
      return e;
    }
    if (size - pos - sizeof(h) < h.length) return e;  // cut off inside the payload
    e.frames.push_back({h.imm, h.length, h.remote_offset, data + pos + sizeof(h)});
    pos += sizeof(h) + h.length;
  }
  return e;
}

Fabric& fabric() {
  static std::unique_ptr<Fabric> f = makeTcpFabric();
  return *f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) failProperty("socketpair");
  const int peer = fds[1];

  // The peer dials: its Hello is waiting in the socket when we accept.
  Hello theirs;
  theirs.fabric = wire::FabricKind::kTcp;
  theirs.node_name = "fuzz-peer";
  theirs.geometry = geometry();
  auto hello = encodeHello(theirs);
  if (::send(peer, hello.data(), hello.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(hello.size())) {
    failProperty("send hello");
  }
  Hello ours = theirs;
  ours.node_name = "fuzz-node";
  auto region = fabric().registerRegion(geometry().receiveAreaBytes());
  if (!region.isOk()) failProperty("registerRegion", region.status().message());
  auto accepted = fabric().accept(fds[0], ours, std::move(region.value()),
                                  std::chrono::steady_clock::now() + std::chrono::seconds(5));
  if (!accepted.isOk()) failProperty("accept", accepted.status().message());
  FabricConnection& conn = *accepted.value();
  rdmesh::fuzz::SocketFeeder feeder(peer, data, size);

  auto area = conn.receiveArea();
  const Expectation expect = model(data, size, area.size());
  std::vector<std::byte> shadow(area.size());  // what the area must hold after the completions

  size_t completed = 0;
  Completion buf[64];
  for (size_t polls = 0;; ++polls) {
    if (polls > feeder.maxPolls()) failProperty("poll() makes no progress");
    feeder.feed();
    auto n = conn.poll(buf);
    if (!n.isOk()) {
      const Status& st = n.status();
      if (expect.protocol_error) {
        if (st.code() != StatusCode::kProtocolError)
          failProperty("expected a protocol error", st.message());
        // Completions of the poll() that hit the bad frame may be dropped with it.
        if (completed > expect.frames.size()) failProperty("completed past the bad frame");
      } else {
        if (st.code() != StatusCode::kUnavailable || !feeder.shut()) {
          failProperty("expected 'peer closed' at the end of the stream", st.message());
        }
        if (completed != expect.frames.size()) failProperty("frames lost before the end");
      }
      break;
    }
    for (size_t i = 0; i < *n; ++i) {
      if (completed >= expect.frames.size()) failProperty("completion the model does not expect");
      const Frame& f = expect.frames[completed];
      if (buf[i].imm != f.imm || buf[i].byte_len != f.length) failProperty("completion mismatch");
      std::memcpy(shadow.data() + f.offset, f.payload, f.length);
      ++completed;
    }
    if (*n > 0 && std::memcmp(shadow.data(), area.data(), area.size()) != 0) {
      failProperty("receive area differs from the frames completed so far");
    }
    if (*n < std::size(buf) && conn.hasBufferedCompletions()) {
      failProperty("poll() returned early while whole frames were buffered");
    }
  }
  ::close(peer);
  return 0;
}
