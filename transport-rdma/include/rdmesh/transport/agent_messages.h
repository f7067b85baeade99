// The sidecar's side of the node.sock session ops (docs/node-agent.md, contract v1): the JSON
// requests it sends its node agent and the parser for what comes back (replies and events).
// Everything the agent sends is checked before use: a bad datagram is a clear error, never a crash.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rdmesh/common/status.h"
#include "rdmesh/transport/hello.h"

namespace rdmesh::transport {

// Requests (one datagram each).
std::string encodeSessionListen(const std::vector<std::string>& pod_ips,
                                const std::vector<uint16_t>& exclude_outbound_ports = {});
std::string encodeSessionOpen(std::string_view destination_ip, std::string_view node,
                              const Hello& hello);
std::string encodeSessionAccept(uint64_t offer_id, const Hello& hello);
std::string encodeSessionRefuse(uint64_t offer_id, std::string_view reason);

enum class SessionMode { kNone, kAgent, kShm };

struct AgentReply {
  bool ok = false;
  std::string error;                      // !ok: the agent's reason
  SessionMode mode = SessionMode::kNone;  // session_open / session_accept replies
  bool has_peer_hello = false;
  Hello peer_hello;
};

// An inbound session for one of our pod IPs (session_listen connections only).
struct AgentOffer {
  uint64_t offer_id = 0;
  std::string peer_node;
  std::string peer_ip;         // canonical form
  std::string destination_ip;  // ours, canonical form
  Hello peer_hello;
};

struct AgentMessage {
  enum class Kind { kReply, kOffer, kUnknownEvent };
  Kind kind = Kind::kReply;
  AgentReply reply;
  AgentOffer offer;
  std::string event;  // kUnknownEvent: its name (newer agents may send events we do not know)
};

// One datagram from the agent.
Result<AgentMessage> parseAgentMessage(std::string_view datagram);

// Hellos travel as lowercase hex of encodeHello().
std::string toHex(std::span<const std::byte> bytes);
Result<std::vector<std::byte>> fromHex(std::string_view hex);

// An IPv4/IPv6 address in canonical text form ("10.0.0.1", "fd00::1"), or an error.
Result<std::string> canonicalIp(std::string_view ip);

}  // namespace rdmesh::transport
