// libFuzzer target for the agent-to-agent control messages (node/src/link_control.*), which a
// peer node agent sends over the PairLink. Properties beyond "never crash": a message that
// parses encodes again, and that encoding parses to the same message; every session id that
// comes out is in range.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "link_control.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data), size);
  rdmesh::Result<rdmesh::node::LinkMessage> parsed = rdmesh::node::parseLinkMessage(input);
  if (!parsed) {
    if (parsed.status().message().empty()) std::abort();
    return 0;
  }
  if (parsed->type != rdmesh::node::linkwire::MessageType::kClose &&
      parsed->session >= rdmesh::wire::agent::kMaxLinkSessions) {
    std::fprintf(stderr, "session id out of range\n");
    std::abort();
  }
  auto again = rdmesh::node::encodeLinkMessage(*parsed);
  if (!again) {
    std::fprintf(stderr, "a parsed message does not encode: %s\n",
                 again.status().message().c_str());
    std::abort();
  }
  auto reparsed = rdmesh::node::parseLinkMessage(*again);
  if (!reparsed || !(*reparsed == *parsed)) {
    std::fprintf(stderr, "encode/parse round trip differs\n");
    std::abort();
  }
  return 0;
}
