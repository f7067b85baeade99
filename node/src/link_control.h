// Encoding and parsing of the agent-to-agent control messages (link_control_wire.h). Pure
// functions: no I/O, never throw; a malformed message is an error naming what is wrong.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "link_control_wire.h"
#include "rdmesh/common/status.h"
#include "rdmesh/transport/pair_link.h"

namespace rdmesh::node {

// A sidecar's receive area as the peer agent addresses it.
struct SessionMemory {
  transport::RemoteMemory region;  // the whole registration
  uint64_t receive_offset = 0;
  uint64_t receive_bytes = 0;
  bool operator==(const SessionMemory& o) const {
    return region.addr == o.region.addr && region.key == o.region.key &&
           region.bytes == o.region.bytes && receive_offset == o.receive_offset &&
           receive_bytes == o.receive_bytes;
  }
};

// One message; which fields are meaningful depends on `type` (see link_control_wire.h).
struct LinkMessage {
  linkwire::MessageType type = linkwire::MessageType::kClose;
  uint32_t session = 0;          // open: sender's id; accepted/refused/close_ack: the opener's or
                                 // closer's id; close: the receiver's id or kUnknownSession
  uint32_t peer_session = 0;     // accepted: the acceptor's id; close: the closer's id
  std::string destination_ip;    // open (canonical text)
  std::string source_ip;         // open ("" = unknown)
  std::vector<std::byte> hello;  // open, accepted
  SessionMemory memory;          // open, accepted
  std::string reason;            // refused
  bool operator==(const LinkMessage&) const = default;
};

LinkMessage openMessage(uint32_t sender_session, std::string destination_ip, std::string source_ip,
                        std::vector<std::byte> hello, SessionMemory memory);
LinkMessage acceptedMessage(uint32_t opener_session, uint32_t acceptor_session,
                            std::vector<std::byte> hello, SessionMemory memory);
LinkMessage refusedMessage(uint32_t opener_session, std::string reason);
LinkMessage closeMessage(uint32_t receiver_session, uint32_t sender_session);
LinkMessage closeAckMessage(uint32_t closer_session);

// Fails only on a message the peer could not parse (an IP that is not one, a hello or reason
// over the limits): the caller's bug, reported rather than sent.
Result<std::vector<std::byte>> encodeLinkMessage(const LinkMessage& message);
Result<LinkMessage> parseLinkMessage(std::span<const std::byte> bytes);

const char* toString(linkwire::MessageType type);

}  // namespace rdmesh::node
