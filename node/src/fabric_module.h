// The agent's session switch (docs/design/node-agent-datapath.md): one PairLink per peer node
// (the node with the lower name dials; reconnect with backoff; bootstrap off the loop), the
// sidecar listeners and sessions behind node.sock's session_* ops, and the data path that moves
// the sidecars' submissions onto the links and the links' arrivals into the sidecars' queues.
//
// Files: fabric_module.cc (ops, session setup and teardown), fabric_links.cc (links),
// fabric_datapath.cc (the per-iteration drain/poll and the sleep protocol).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "client_connection.h"
#include "link_control.h"
#include "op_table.h"
#include "pod_module.h"
#include "pod_registry.h"
#include "rdmesh/common/blocking_jobs.h"
#include "rdmesh/common/stats.h"
#include "rdmesh/transport/adaptive_poller.h"
#include "rdmesh/transport/pair_link.h"
#include "rdmesh/transport/session_manager.h"
#include "sidecar_region.h"

struct event;
struct event_base;

namespace rdmesh::node {

struct FabricOptions {
  std::string node_name;
  std::string listen_address = "0.0.0.0:15008";  // "" = do not accept links (tests)
  std::vector<transport::PeerSpec> peers;
  // session_listen/session_accept/session_open check that the caller runs in the netns of the
  // registered pod that owns the IPs. Off only for standalone tests without pod_add.
  bool verify_caller_netns = true;
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds max_backoff{5000};
  std::chrono::milliseconds offer_timeout{5000};  // a listening sidecar's answer to an offer
  std::chrono::milliseconds open_timeout{8000};   // the peer agent's answer to an open
  std::chrono::milliseconds close_timeout{5000};  // close_ack; then the link is reset
  // A verified caller's session_listen asked to exclude these outbound ports for its pod
  // (the pod module applies them); unset = refused.
  std::function<Status(const PodRecord&, const std::vector<uint16_t>&)> exclude_ports;
};

class FabricModule final : public NodeModule, public transport::Pollable {
 public:
  // `domain` may be null: no node-pair links in this build; same-node sessions still work.
  FabricModule(event_base* base, FabricOptions options,
               std::unique_ptr<transport::LinkDomain> domain, const PodRegistry& registry,
               NetnsResolver resolve, StatsStore& stats);
  ~FabricModule() override;
  FabricModule(const FabricModule&) = delete;
  FabricModule& operator=(const FabricModule&) = delete;

  // Listens for peer agents and dials the configured peers.
  Status start();
  // Replaces the peer list live (node.yaml now, the control plane later): new peers are dialed
  // (when this node dials), a changed address is used from the next dial, a removed peer is no
  // longer redialed (its link stays until it fails).
  void setPeers(std::vector<transport::PeerSpec> peers);

  void registerOps(OpTable& table) override;
  // Updates the gauges the stats op reports (links, sessions, fds, registered bytes).
  void refreshStats();

  // Pollable: the agent's adaptive poller drives the data path.
  bool poll() override;
  void flush() override;
  bool spinWorthwhile() const override;
  bool prepareToSleep() override;
  void markAwake() override;

 private:
  struct Link;
  struct Session;
  struct Offer;
  struct Listener {
    std::string ip;
    ConnectionRef connection;
  };
  enum class SessionState { kOpening, kActive, kClosing, kReleasing };
  // One write on a link whose completion frees staging of `session` up to sq index `index`.
  struct Inflight {
    uint64_t cookie;
    uint64_t session_uid;
    uint64_t index;
  };

  // ---- ops (fabric_module.cc) ----
  Result<OpResult> sessionListen(const RequestEnvelope& r, const ConnectionRef& c);
  Result<OpResult> sessionOpen(const RequestEnvelope& r, RequestFds& fds, const ConnectionRef& c);
  Result<OpResult> sessionAccept(const RequestEnvelope& r, RequestFds& fds, const ConnectionRef& c);
  Result<OpResult> sessionRefuse(const RequestEnvelope& r);
  // The registered pod whose netns the client runs in (checks off: null).
  Result<const PodRecord*> callerPod(const ConnectionRef& c);
  Result<std::unique_ptr<SidecarRegion>> takeRegion(RequestFds& fds, const transport::Hello& hello);
  // The opener's IP for the offer's peer_ip: its pod's (checked), else the IP its process
  // listens for, else the unspecified address.
  std::string sourceIp(const ConnectionRef& c, const PodRecord* pod,
                       const std::string& destination_ip) const;
  // Marks `c` as carrying `role`; an error if it already carries something.
  Status adopt(const ConnectionRef& c, const std::string& role);
  // Offers a session to the sidecar listening for `offer->destination_ip`; false when none is.
  bool offer(std::unique_ptr<Offer> offer, const std::string& peer_node);
  void dropOffer(uint64_t offer_id);
  void expireOffer(uint64_t offer_id);
  // Tells the opener (its sidecar, or its agent) why, and forgets the offer.
  void refuseOffer(uint64_t offer_id, const std::string& why);
  static void onOfferTimer(int fd, short what, void* arg);
  void onListenerGone(const ClientConnection* c);
  void onSidecarGone(uint64_t uid);

  // ---- sessions (fabric_module.cc) ----
  Result<Session*> newSession(Link& link, std::unique_ptr<SidecarRegion> region,
                              ConnectionRef connection, bool opener);
  void onControl(Link& link, std::span<const std::byte> bytes);
  void onOpen(Link& link, const LinkMessage& m);
  void onAccepted(Link& link, const LinkMessage& m);
  void onRefused(Link& link, const LinkMessage& m);
  void onClose(Link& link, const LinkMessage& m);
  void onCloseAck(Link& link, const LinkMessage& m);
  // Our side ends the session (sidecar gone, bad submission, timeout): stop its data path, tell
  // the peer, keep its memory until close_ack.
  void closeSession(Session& s, const std::string& why);
  // The session is over on both sides: free it once its own writes have completed.
  void releaseSession(Session& s);
  void maybeFree(Session& s);
  void endSidecarConnection(Session& s);
  Status sendControl(Link& link, const LinkMessage& m);
  static void onSessionTimer(int fd, short what, void* arg);
  void armTimer(Session& s, std::chrono::milliseconds after);
  Link* linkTo(const std::string& peer);

  // ---- links (fabric_links.cc) ----
  Link& peerFor(const std::string& name);
  void dial(Link& p);
  void onLinkUp(const std::string& peer, std::unique_ptr<transport::PairLink> link, bool dialed);
  void linkLost(Link& p, const std::string& why);
  void scheduleRetry(Link& p);
  void watchLink(Link& p);
  static void onListen(int fd, short what, void* arg);
  static void onLinkEvent(int fd, short what, void* arg);
  static void onLivenessEvent(int fd, short what, void* arg);
  static void onRetry(int fd, short what, void* arg);
  static void onDoorbell(int fd, short what, void* arg);

  // ---- data path (fabric_datapath.cc) ----
  bool drainSubmissions(Session& s);
  bool pollLink(Link& p);
  void onWriteDone(Link& p, uint64_t cookie);
  void onArrival(Link& p, uint32_t imm, uint32_t byte_len);

  event_base* base_;
  FabricOptions options_;
  std::unique_ptr<transport::LinkDomain> domain_;
  const PodRegistry& registry_;
  NetnsResolver resolve_;
  StatsStore& stats_;
  int listen_fd_ = -1;
  event* listen_ev_ = nullptr;
  std::map<std::string, std::unique_ptr<Link>, std::less<>> links_;
  std::map<uint64_t, std::unique_ptr<Session>> sessions_;  // by uid
  std::map<uint64_t, std::unique_ptr<Offer>> offers_;      // by offer id
  std::map<std::string, Listener> listeners_;              // by pod IP
  // Connections that carry a listener or a session (each carries one).
  std::map<const ClientConnection*, std::string> adopted_;
  uint64_t next_uid_ = 1;
  uint64_t next_offer_id_ = 1;
  std::vector<Session*> sessions_to_wake_;
  std::vector<uint64_t> to_free_;
  std::vector<transport::LinkEvent> events_;

  Gauge& sessions_active_;
  Gauge& sessions_fds_;
  Gauge& registered_bytes_;
  Gauge& pinned_bytes_;
  Gauge& links_up_;
  Gauge& offers_pending_;
  Gauge& listeners_active_;
  Gauge& process_fds_;
  Counter& opened_total_;
  Counter& shm_brokered_total_;
  Counter& refused_total_;
  Counter& closed_total_;
  Counter& bad_submissions_;
  Counter& submissions_;
  Counter& arrivals_;
  Counter& doorbells_;
  Counter& link_lost_total_;

  BlockingJobs jobs_;  // last: joined first, while everything its results touch is alive
};

}  // namespace rdmesh::node
