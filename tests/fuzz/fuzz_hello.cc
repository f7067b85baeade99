// libFuzzer target for the bootstrap Hello parser. Beyond "never crash": every rejection is a
// ProtocolError, and every accepted Hello is valid by the documented limits and re-encodes to the
// very same bytes (the header has no field the parser ignores).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>

#include "rdmesh/transport/hello.h"
#include "rdmesh/transport/wire.h"

namespace {

[[noreturn]] void failProperty(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "fuzz_hello: %s\n%s\n", what, detail.c_str());
  std::abort();
}

bool isPowerOfTwo(uint32_t v) {
  return v != 0 && (v & (v - 1)) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rdmesh;
  using namespace rdmesh::transport;
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);

  auto size_only = helloSize(bytes);
  auto hello = parseHello(bytes);
  if (!hello.isOk()) {
    if (hello.status().code() != StatusCode::kProtocolError) {
      failProperty("rejected with a code other than ProtocolError", hello.status().message());
    }
    if (hello.status().message().empty()) failProperty("rejection without a message");
    return 0;
  }

  // Accepted: helloSize agrees, and everything is within the documented limits.
  if (!size_only.isOk() || *size_only != size) failProperty("helloSize disagrees with parseHello");
  const Hello& h = *hello;
  const SessionGeometry& g = h.geometry;
  if (!isValidNodeName(h.node_name)) failProperty("accepted an invalid node name", h.node_name);
  if (h.version_min == 0 || h.version_min > h.version_max) failProperty("bad version range");
  if (g.max_streams == 0 || g.max_streams > wire::kMaxSlots) failProperty("bad max_streams");
  if (!isPowerOfTwo(g.ring_bytes) || g.ring_bytes < wire::kMinRingBytes ||
      g.ring_bytes > wire::kMaxRingBytes) {
    failProperty("bad ring_bytes");
  }
  if (g.control_ring_bytes < wire::kMinControlRingBytes ||
      g.control_ring_bytes > wire::kMaxControlRingBytes) {
    failProperty("bad control_ring_bytes");
  }
  if (g.recv_depth < wire::kMinRecvDepth || g.recv_depth > wire::kMaxRecvDepth) {
    failProperty("bad recv_depth");
  }
  if (g.keepalive_timeout_ms == 0) failProperty("zero keepalive");
  // The area a peer may announce stays far below what uint64 can address.
  if (g.receiveAreaBytes() > (uint64_t{1} << 40)) failProperty("receive area overflow");

  auto again = encodeHello(h);
  if (again.size() != size || std::memcmp(again.data(), data, size) != 0) {
    failProperty("re-encoding an accepted Hello gives different bytes");
  }

  // Negotiation against our own range never crashes and picks a version both speak.
  Hello local;
  auto version = negotiateVersion(local, h);
  if (version.isOk() && (*version < h.version_min || *version > h.version_max ||
                         *version < local.version_min || *version > local.version_max)) {
    failProperty("negotiated a version outside a range");
  }
  return 0;
}
