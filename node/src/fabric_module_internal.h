// The session switch's records, shared by fabric_module.cc, fabric_links.cc and
// fabric_datapath.cc (not a public header).
#pragma once

#include <event2/event.h>

#include "fabric_module.h"

namespace rdmesh::node {

constexpr std::chrono::milliseconds kFirstBackoff{100};

// One peer node: its link when up, the sessions riding it, and the dial state.
struct FabricModule::Link {
  FabricModule* owner = nullptr;  // for the C callbacks
  std::string peer;
  std::string address;
  bool dials = false;
  bool dialing = false;
  std::unique_ptr<transport::PairLink> link;  // null while down
  uint64_t generation = 0;                    // bumped per link instance
  event* read_ev = nullptr;
  event* write_ev = nullptr;
  event* liveness_ev = nullptr;
  event* retry_ev = nullptr;
  std::chrono::milliseconds backoff = kFirstBackoff;
  std::string last_error;
  std::string down_reason = "not connected yet";
  std::string logged_fallback;  // the tcp-instead-of-RDMA reason last logged (logged once)
  std::map<uint32_t, Session*> sessions;  // by our session id on this link
  uint32_t next_id = 0;
  std::deque<Inflight> inflight;  // posted writes, in cookie order
  uint64_t next_cookie = 1;
  bool needs_flush = false;
  bool readable = false;  // its event fd fired: afterWakeup() has something to take
};

// One sidecar session riding a link (both ends of a same-node pair never get here: shm).
struct FabricModule::Session {
  uint64_t uid = 0;
  SessionState state = SessionState::kOpening;
  bool freed = false;  // resources released; the record goes at the next poll()
  Link* link = nullptr;
  uint32_t local_id = 0;
  uint32_t remote_id = linkwire::kUnknownSession;
  bool opener = false;
  std::string destination_ip;
  std::unique_ptr<SidecarRegion> region;
  std::shared_ptr<transport::RegisteredMemory> registration;
  SessionMemory remote;      // the peer sidecar's receive area, as its agent described it
  ConnectionRef connection;  // the session's node.sock connection; null once it is gone
  event* doorbell_ev = nullptr;
  event* timer_ev = nullptr;
  uint64_t sq_head = 0;   // submissions taken (our copy of header.sq_head)
  uint64_t cq_tail = 0;   // arrivals published (our copy of header.cq_tail)
  uint64_t inflight = 0;  // our writes from its staging not yet completed
  bool wake_pending = false;
  FabricModule* owner = nullptr;
};

// A session offered to a listening sidecar, waiting for session_accept/session_refuse.
struct FabricModule::Offer {
  uint64_t id = 0;
  std::string destination_ip;
  std::string source_ip;
  std::vector<std::byte> hello;  // the opening sidecar's
  // From a peer agent:
  std::string peer_node;
  uint64_t link_generation = 0;
  uint32_t opener_session = 0;
  SessionMemory memory;
  // Same node: the opening sidecar's connection (its session_open reply is pending).
  ConnectionRef local_opener;
  event* timer = nullptr;
  FabricModule* owner = nullptr;
};

}  // namespace rdmesh::node
