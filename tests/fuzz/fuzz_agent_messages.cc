// libFuzzer target for the sidecar's parser of what its node agent sends on node.sock (replies to
// session_* requests and offer events, docs/node-agent.md). Beyond "never crash": every rejection
// is a ProtocolError with a message; an accepted offer has a valid node name, canonical IPs and a
// Hello that re-encodes and re-parses; an accepted reply is either ok or carries a reason.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "rdmesh/transport/agent_messages.h"

namespace {

[[noreturn]] void failProperty(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "fuzz_agent_messages: %s\n%s\n", what, detail.c_str());
  std::abort();
}

void checkHello(const rdmesh::transport::Hello& hello) {
  using namespace rdmesh::transport;
  auto again = parseHello(encodeHello(hello));
  if (!again.isOk() || again->node_name != hello.node_name) {
    failProperty("an accepted Hello does not survive re-encoding");
  }
}

bool isCanonical(const std::string& ip) {
  auto canonical = rdmesh::transport::canonicalIp(ip);
  return canonical.isOk() && *canonical == ip;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rdmesh;
  using namespace rdmesh::transport;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto message = parseAgentMessage(text);
  if (!message.isOk()) {
    if (message.status().code() != StatusCode::kProtocolError) {
      failProperty("rejected with a code other than ProtocolError", message.status().message());
    }
    if (message.status().message().empty()) failProperty("rejection without a message");
    return 0;
  }
  switch (message->kind) {
    case AgentMessage::Kind::kOffer: {
      const AgentOffer& o = message->offer;
      if (!isValidNodeName(o.peer_node)) failProperty("offer with a bad peer_node", o.peer_node);
      if (!isCanonical(o.peer_ip) || !isCanonical(o.destination_ip)) {
        failProperty("offer with a non-canonical IP", o.peer_ip + " " + o.destination_ip);
      }
      checkHello(o.peer_hello);
      break;
    }
    case AgentMessage::Kind::kReply: {
      const AgentReply& r = message->reply;
      if (!r.ok && r.error.empty()) failProperty("an error reply without a reason");
      if (r.has_peer_hello) checkHello(r.peer_hello);
      break;
    }
    case AgentMessage::Kind::kUnknownEvent:
      if (message->event == "offer") failProperty("an offer reported as an unknown event");
      break;
  }
  return 0;
}
