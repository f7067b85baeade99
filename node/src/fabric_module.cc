#include "fabric_module.h"

#include <dirent.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>

#include "fabric_module_internal.h"
#include "rdmesh/common/hex.h"
#include "rdmesh/common/timeval.h"

namespace rdmesh::node {

using linkwire::kUnknownSession;
using nlohmann::json;

namespace {

std::string ms(std::chrono::milliseconds d) {
  return fmt::format("{} ms", d.count());
}

size_t openFdsOfProcess() {
  size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (const dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
    ::closedir(d);
    n -= n > 0 ? 1 : 0;  // the directory's own fd
  }
  return n;
}

}  // namespace

FabricModule::FabricModule(event_base* base, FabricOptions options,
                           std::unique_ptr<transport::LinkDomain> domain,
                           const PodRegistry& registry, NetnsResolver resolve, StatsStore& stats)
    : base_(base),
      options_(std::move(options)),
      domain_(std::move(domain)),
      registry_(registry),
      resolve_(std::move(resolve)),
      stats_(stats),
      sessions_active_(stats.gauge("node.sessions", "active")),
      sessions_fds_(stats.gauge("node.sessions", "open_fds")),
      registered_bytes_(stats.gauge("node.sessions", "registered_bytes")),
      pinned_bytes_(stats.gauge("node.sessions", "pinned_bytes")),
      links_up_(stats.gauge("node.links", "up")),
      offers_pending_(stats.gauge("node.sessions", "offers_pending")),
      listeners_active_(stats.gauge("node.sessions", "listeners")),
      process_fds_(stats.gauge("node.process", "open_fds")),
      opened_total_(stats.counter("node.sessions", "opened_total")),
      shm_brokered_total_(stats.counter("node.sessions", "shm_brokered_total")),
      refused_total_(stats.counter("node.sessions", "refused_total")),
      closed_total_(stats.counter("node.sessions", "closed_total")),
      bad_submissions_(stats.counter("node.sessions", "bad_submissions_total")),
      submissions_(stats.counter("node.datapath", "submissions")),
      arrivals_(stats.counter("node.datapath", "arrivals")),
      doorbells_(stats.counter("node.datapath", "doorbells_rung")),
      link_lost_total_(stats.counter("node.links", "lost_total")),
      jobs_(base) {
  if (domain_ == nullptr) {
    spdlog::warn("fabric: no node-pair link domain in this build: same-node sessions only");
  } else if (!domain_->rdmaUnavailableReason().empty()) {
    spdlog::info("fabric: RDMA unavailable ({}): links run tcp", domain_->rdmaUnavailableReason());
  } else {
    spdlog::info("fabric: on-demand paging of sidecar memory: {}", domain_->onDemandPaging());
  }
  if (domain_ != nullptr) {
    stats.setText("node.sessions", "on_demand_paging", domain_->onDemandPaging());
  }
}

FabricModule::~FabricModule() {
  // Links first: nothing may write into (or read from) sidecar memory once it is unmapped.
  for (auto& [name, p] : links_) {
    for (event* ev : {p->read_ev, p->write_ev, p->liveness_ev, p->retry_ev}) {
      if (ev != nullptr) event_free(ev);
    }
    p->link.reset();
  }
  for (auto& [uid, s] : sessions_) {
    if (s->doorbell_ev != nullptr) event_free(s->doorbell_ev);
    if (s->timer_ev != nullptr) event_free(s->timer_ev);
    if (s->connection) s->connection->setOnClosed(nullptr);
  }
  for (auto& [id, o] : offers_) {
    if (o->timer != nullptr) event_free(o->timer);
  }
  for (auto& [ip, l] : listeners_) {
    if (l.connection) l.connection->setOnClosed(nullptr);
  }
  if (listen_ev_ != nullptr) event_free(listen_ev_);
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

void FabricModule::registerOps(OpTable& table) {
  table.add("session_listen", [this](const RequestEnvelope& r, RequestFds&,
                                     const ConnectionRef& c) { return sessionListen(r, c); });
  table.add("session_open", [this](const RequestEnvelope& r, RequestFds& fds,
                                   const ConnectionRef& c) { return sessionOpen(r, fds, c); });
  table.add("session_accept", [this](const RequestEnvelope& r, RequestFds& fds,
                                     const ConnectionRef& c) { return sessionAccept(r, fds, c); });
  table.add("session_refuse", [this](const RequestEnvelope& r, RequestFds&, const ConnectionRef&) {
    return sessionRefuse(r);
  });
}

void FabricModule::refreshStats() {
  uint64_t active = 0, fds = 0, registered = 0, pinned = 0;
  for (const auto& [uid, s] : sessions_) {
    if (s->freed) continue;
    active += s->state == SessionState::kActive ? 1 : 0;
    if (s->region) {
      fds += SidecarRegion::kFdCount;
      registered += s->region->layout().region_bytes;
    }
    if (s->registration) pinned += s->registration->pinnedBytes();
  }
  sessions_active_.set(active);
  sessions_fds_.set(fds);
  registered_bytes_.set(registered);
  pinned_bytes_.set(pinned);
  uint64_t up = 0;
  for (const auto& [name, p] : links_) {
    bool is_up = p->link != nullptr;
    up += is_up ? 1 : 0;
    stats_.gauge("node.link." + name, "up").set(is_up ? 1 : 0);
    stats_.gauge("node.link." + name, "sessions").set(p->sessions.size());
    stats_.setText("node.link." + name, "kind",
                   is_up ? transport::toString(p->link->kind()) : "down");
    // Why a link runs tcp although RDMA is on ("" on verbs, or while down).
    stats_.setText("node.link." + name, "fallback_reason",
                   is_up ? p->link->fallbackReason() : std::string());
  }
  links_up_.set(up);
  offers_pending_.set(offers_.size());
  listeners_active_.set(listeners_.size());
  process_fds_.set(openFdsOfProcess());
}

// ---------------------------------------------------------------------------------------------
// Who is calling: the registered pod whose netns the client's process runs in.

Result<const PodRecord*> FabricModule::callerPod(const ConnectionRef& c) {
  if (!options_.verify_caller_netns) return static_cast<const PodRecord*>(nullptr);
  const ucred& cred = c->peerCredentials();
  if (cred.pid <= 0) return invalidArgument("cannot tell the caller's process (no SO_PEERCRED)");
  Result<uint64_t> cookie = resolve_(fmt::format("/proc/{}/ns/net", cred.pid));
  if (!cookie) {
    return invalidArgument(
        fmt::format("cannot read the caller's network namespace: {}", cookie.status().message()));
  }
  const PodRecord* pod = registry_.findByCookie(*cookie);
  if (pod == nullptr) {
    return invalidArgument(fmt::format(
        "the caller (pid {}) does not run in the network namespace of a registered pod", cred.pid));
  }
  return pod;
}

static Status podOwns(const PodRecord* pod, const std::string& ip, const std::string& field) {
  if (pod == nullptr) return {};
  const auto& ips = pod->spec.ips;
  if (std::find(ips.begin(), ips.end(), ip) != ips.end()) return {};
  return invalidArgument(fmt::format("field '{}': {} is not an IP of pod '{}' (the caller's)",
                                     field, ip, pod->spec.container_id));
}

std::string FabricModule::sourceIp(const ConnectionRef& c, const PodRecord* pod,
                                   const std::string& destination_ip) const {
  bool v4 = destination_ip.find(':') == std::string::npos;
  auto sameFamily = [v4](const std::string& ip) {
    return (ip.find(':') == std::string::npos) == v4;
  };
  if (pod != nullptr) {
    for (const std::string& ip : pod->spec.ips) {
      if (sameFamily(ip)) return ip;
    }
  }
  // Unchecked callers: the IP this same process listens for, if it does (a sidecar both listens
  // and opens); else the unspecified address, which says "unknown" in the offer's peer_ip.
  for (const auto& [ip, listener] : listeners_) {
    if (listener.connection->isOpen() && sameFamily(ip) &&
        listener.connection->peerCredentials().pid == c->peerCredentials().pid) {
      return ip;
    }
  }
  return v4 ? "0.0.0.0" : "::";
}

Status FabricModule::adopt(const ConnectionRef& c, const std::string& role) {
  if (c == nullptr) return invalidArgument("this op needs a node.sock connection");
  auto it = adopted_.find(c.get());
  if (it != adopted_.end()) {
    return invalidArgument(fmt::format(
        "this connection already carries a {}; use a connection of its own", it->second));
  }
  adopted_[c.get()] = role;
  return {};
}

// ---------------------------------------------------------------------------------------------
// session_listen

Result<OpResult> FabricModule::sessionListen(const RequestEnvelope& r, const ConnectionRef& c) {
  Result<SessionListenRequest> request = parseSessionListen(r.body);
  if (!request) return request.status();
  if (c == nullptr) return invalidArgument("this op needs a node.sock connection");
  Result<const PodRecord*> pod = callerPod(c);
  if (!pod) return pod.status();
  for (size_t i = 0; i < request->pod_ips.size(); ++i) {
    const std::string& ip = request->pod_ips[i];
    if (Status s = podOwns(*pod, ip, fmt::format("pod_ips[{}]", i)); !s) return s;
    auto it = listeners_.find(ip);
    if (it != listeners_.end() && it->second.connection->isOpen() && it->second.connection != c) {
      return invalidArgument(fmt::format("field 'pod_ips[{}]': {} already has a listener", i, ip));
    }
  }
  auto role = adopted_.find(c.get());
  if (role != adopted_.end() && role->second != "listener") {
    return invalidArgument(fmt::format(
        "this connection already carries a {}; use a connection of its own", role->second));
  }
  if (!request->exclude_outbound_ports.empty()) {
    // Only for the caller's own, verified pod: a sidecar cannot change another pod's capture.
    // Not fatal: without it the ports stay captured and still work, through the mesh.
    if (*pod == nullptr || !options_.exclude_ports) {
      spdlog::warn(
          "session_listen {}: exclude_outbound_ports ignored (needs a caller verified as a "
          "registered pod and eBPF capture on this node)",
          fmt::join(request->pod_ips, ", "));
    } else if (Status s = options_.exclude_ports(**pod, request->exclude_outbound_ports); !s) {
      spdlog::error("session_listen {}: cannot exclude outbound ports: {}",
                    fmt::join(request->pod_ips, ", "), s.message());
    }
  }
  adopted_[c.get()] = "listener";
  const ClientConnection* raw = c.get();
  c->setOnClosed([this, raw] { onListenerGone(raw); });
  for (const std::string& ip : request->pod_ips) listeners_[ip] = Listener{ip, c};
  listeners_active_.set(listeners_.size());
  spdlog::info("session_listen: {} (pid {})", fmt::join(request->pod_ips, ", "),
               c->peerCredentials().pid);
  return OpResult{};
}

void FabricModule::onListenerGone(const ClientConnection* c) {
  adopted_.erase(c);
  std::vector<std::string> gone;
  for (auto it = listeners_.begin(); it != listeners_.end();) {
    if (it->second.connection.get() == c) {
      gone.push_back(it->first);
      it = listeners_.erase(it);
    } else {
      ++it;
    }
  }
  // Offers it never answered are refused now rather than at their deadline.
  std::vector<uint64_t> orphaned;
  for (const auto& [id, o] : offers_) {
    if (std::find(gone.begin(), gone.end(), o->destination_ip) != gone.end()) {
      orphaned.push_back(id);
    }
  }
  for (uint64_t id : orphaned) {
    refuseOffer(
        id, fmt::format("the sidecar listening for {} went away", offers_.at(id)->destination_ip));
  }
  listeners_active_.set(listeners_.size());
  if (!gone.empty()) spdlog::info("listener for {} gone", fmt::join(gone, ", "));
}

// ---------------------------------------------------------------------------------------------
// Offers

bool FabricModule::offer(std::unique_ptr<Offer> o, const std::string& peer_node) {
  auto it = listeners_.find(o->destination_ip);
  if (it == listeners_.end() || !it->second.connection->isOpen()) return false;
  o->id = next_offer_id_++;
  o->owner = this;
  json event = {{"event", "offer"},
                {"offer_id", o->id},
                {"peer_node", peer_node},
                {"peer_ip", o->source_ip},
                {"destination_ip", o->destination_ip},
                {"peer_hello", toHex(o->hello)}};
  if (!it->second.connection->push(event)) return false;  // dropped: onListenerGone ran
  o->timer = evtimer_new(base_, &FabricModule::onOfferTimer, o.get());
  timeval tv = toTimeval(options_.offer_timeout);
  evtimer_add(o->timer, &tv);
  offers_[o->id] = std::move(o);
  offers_pending_.set(offers_.size());
  return true;
}

void FabricModule::onOfferTimer(int, short, void* arg) {
  auto* o = static_cast<Offer*>(arg);
  o->owner->expireOffer(o->id);
}

void FabricModule::expireOffer(uint64_t offer_id) {
  auto it = offers_.find(offer_id);
  if (it == offers_.end()) return;
  std::string why = fmt::format("the sidecar for {} did not answer the offer within {}",
                                it->second->destination_ip, ms(options_.offer_timeout));
  spdlog::warn("offer {}: {}", offer_id, why);
  refuseOffer(offer_id, why);
}

void FabricModule::refuseOffer(uint64_t offer_id, const std::string& why) {
  Offer& o = *offers_.at(offer_id);
  if (o.local_opener) {
    o.local_opener->replyError(why);
  } else if (Link* p = linkTo(o.peer_node); p != nullptr && p->generation == o.link_generation) {
    sendControl(*p, refusedMessage(o.opener_session, why));
  }
  refused_total_.inc();
  dropOffer(offer_id);
}

void FabricModule::dropOffer(uint64_t offer_id) {
  auto it = offers_.find(offer_id);
  if (it == offers_.end()) return;
  if (it->second->timer != nullptr) event_free(it->second->timer);
  offers_.erase(it);
  offers_pending_.set(offers_.size());
}

// ---------------------------------------------------------------------------------------------
// session_open

Result<std::unique_ptr<SidecarRegion>> FabricModule::takeRegion(RequestFds& fds,
                                                                const transport::Hello& hello) {
  if (fds.size() != SidecarRegion::kFdCount) {
    return invalidArgument(fmt::format(
        "expected {} fds (region memfd, doorbell to agent, doorbell to sidecar), got {}",
        SidecarRegion::kFdCount, fds.size()));
  }
  UniqueFd memfd(std::exchange(fds[0], -1));
  UniqueFd to_agent(std::exchange(fds[1], -1));
  UniqueFd to_sidecar(std::exchange(fds[2], -1));
  return SidecarRegion::map(std::move(memfd), std::move(to_agent), std::move(to_sidecar),
                            RegionRequirements::of(hello));
}

Result<OpResult> FabricModule::sessionOpen(const RequestEnvelope& r, RequestFds& fds,
                                           const ConnectionRef& c) {
  Result<SessionOpenRequest> request = parseSessionOpen(r.body);
  if (!request) return request.status();
  if (c == nullptr) return invalidArgument("this op needs a node.sock connection");
  Result<const PodRecord*> pod = callerPod(c);
  if (!pod) return pod.status();
  std::string source_ip = sourceIp(c, *pod, request->destination_ip);
  auto local = listeners_.find(request->destination_ip);
  bool same_node = local != listeners_.end() && local->second.connection->isOpen();
  if (!same_node && request->node == options_.node_name) {
    return invalidArgument(fmt::format("field 'destination_ip': no sidecar listens for {} on {}",
                                       request->destination_ip, options_.node_name));
  }
  if (same_node) {
    // Brokered: the sidecars meet over a socketpair and run the shm backend between them.
    if (Status s = adopt(c, "session"); !s) return s;
    auto o = std::make_unique<Offer>();
    o->destination_ip = request->destination_ip;
    o->source_ip = source_ip;
    o->hello = request->hello;
    o->local_opener = c;
    Offer* raw = o.get();
    if (!offer(std::move(o), options_.node_name)) {
      adopted_.erase(c.get());
      return unavailable(
          fmt::format("the sidecar listening for {} is gone", request->destination_ip));
    }
    uint64_t id = raw->id;
    const ClientConnection* conn = c.get();
    c->setOnClosed([this, id, conn] {
      adopted_.erase(conn);
      dropOffer(id);  // nothing if it was answered already
    });
    OpResult deferred;
    deferred.deferred = true;
    return deferred;
  }
  Link* p = linkTo(request->node);
  if (p == nullptr || p->link == nullptr) {
    return unavailable(fmt::format("field 'node': no link to node '{}' ({})", request->node,
                                   p == nullptr ? "not a known peer" : p->down_reason));
  }
  Result<std::unique_ptr<SidecarRegion>> region = takeRegion(fds, request->parsed_hello);
  if (!region) return region.status();
  if (Status s = adopt(c, "session"); !s) return s;
  Result<Session*> session = newSession(*p, std::move(*region), c, /*opener=*/true);
  if (!session) {
    adopted_.erase(c.get());
    return session.status();
  }
  Session& s = **session;
  s.destination_ip = request->destination_ip;
  SessionMemory memory{p->link->describe(*s.registration), s.region->layout().receive_offset,
                       s.region->layout().receive_bytes};
  if (Status st = sendControl(
          *p, openMessage(s.local_id, request->destination_ip, source_ip, request->hello, memory));
      !st) {
    // The link is gone (linkLost released the session and answered nothing yet).
    return unavailable(fmt::format("link to '{}' lost: {}", request->node, st.message()));
  }
  armTimer(s, options_.open_timeout);
  spdlog::debug("session {} -> {} on {}: open sent", s.local_id, request->destination_ip,
                request->node);
  OpResult deferred;
  deferred.deferred = true;
  return deferred;
}

// ---------------------------------------------------------------------------------------------
// session_accept / session_refuse

Result<OpResult> FabricModule::sessionAccept(const RequestEnvelope& r, RequestFds& fds,
                                             const ConnectionRef& c) {
  Result<SessionAcceptRequest> request = parseSessionAccept(r.body);
  if (!request) return request.status();
  if (c == nullptr) return invalidArgument("this op needs a node.sock connection");
  auto it = offers_.find(request->offer_id);
  if (it == offers_.end()) {
    return invalidArgument(fmt::format(
        "field 'offer_id': offer {} is unknown, expired or withdrawn", request->offer_id));
  }
  Offer& o = *it->second;
  Result<const PodRecord*> pod = callerPod(c);
  if (!pod) return pod.status();
  if (Status s = podOwns(*pod, o.destination_ip, "offer_id"); !s) return s;
  if (o.local_opener) {
    if (Status s = adopt(c, "session"); !s) return s;
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0) {
      adopted_.erase(c.get());
      return internalError(fmt::format("socketpair: {}", strerror(errno)));
    }
    UniqueFd opener_end(pair[0]);
    UniqueFd acceptor_end(pair[1]);
    int opener_fd = opener_end.get();
    if (!o.local_opener->replyOk(json{{"mode", "shm"}}, std::span<const int>(&opener_fd, 1))) {
      adopted_.erase(c.get());
      dropOffer(request->offer_id);
      return unavailable("the opening sidecar is gone");
    }
    const ClientConnection* conn = c.get();
    c->setOnClosed([this, conn] { adopted_.erase(conn); });
    spdlog::info("session to {} brokered on this node (shm)", o.destination_ip);
    shm_brokered_total_.inc();
    dropOffer(request->offer_id);
    OpResult result;
    result.fields = json{{"mode", "shm"}};
    result.fds.push_back(std::move(acceptor_end));
    return result;
  }
  Link* p = linkTo(o.peer_node);
  if (p == nullptr || p->link == nullptr || p->generation != o.link_generation) {
    dropOffer(request->offer_id);
    return unavailable(fmt::format("the link to '{}' went down", o.peer_node));
  }
  Result<std::unique_ptr<SidecarRegion>> region = takeRegion(fds, request->parsed_hello);
  if (!region) {
    sendControl(*p, refusedMessage(o.opener_session, "the accepting sidecar's region is invalid: " +
                                                         region.status().message()));
    refused_total_.inc();
    dropOffer(request->offer_id);
    return region.status();
  }
  if (Status s = adopt(c, "session"); !s) return s;
  Result<Session*> session = newSession(*p, std::move(*region), c, /*opener=*/false);
  if (!session) {
    adopted_.erase(c.get());
    sendControl(*p, refusedMessage(o.opener_session, session.status().message()));
    dropOffer(request->offer_id);
    return session.status();
  }
  Session& s = **session;
  s.remote_id = o.opener_session;
  s.remote = o.memory;
  s.destination_ip = o.destination_ip;
  s.state = SessionState::kActive;
  SessionMemory memory{p->link->describe(*s.registration), s.region->layout().receive_offset,
                       s.region->layout().receive_bytes};
  uint32_t opener_session = o.opener_session;
  std::string peer = o.peer_node;
  dropOffer(request->offer_id);
  if (Status st =
          sendControl(*p, acceptedMessage(opener_session, s.local_id, request->hello, memory));
      !st) {
    return unavailable(fmt::format("link to '{}' lost: {}", peer, st.message()));
  }
  event_add(s.doorbell_ev, nullptr);
  opened_total_.inc();
  spdlog::info("session {}<-{} accepted for {} ({} bytes registered)", s.local_id, peer,
               s.destination_ip, s.region->layout().region_bytes);
  OpResult result;
  result.fields = json{{"mode", "agent"}};
  return result;
}

Result<OpResult> FabricModule::sessionRefuse(const RequestEnvelope& r) {
  Result<SessionRefuseRequest> request = parseSessionRefuse(r.body);
  if (!request) return request.status();
  auto it = offers_.find(request->offer_id);
  if (it == offers_.end()) {
    return invalidArgument(fmt::format(
        "field 'offer_id': offer {} is unknown, expired or withdrawn", request->offer_id));
  }
  refuseOffer(request->offer_id, fmt::format("the sidecar for {} refused: {}",
                                             it->second->destination_ip, request->reason));
  return OpResult{};
}

// ---------------------------------------------------------------------------------------------
// Sessions

Result<FabricModule::Session*> FabricModule::newSession(Link& p,
                                                        std::unique_ptr<SidecarRegion> region,
                                                        ConnectionRef connection, bool opener) {
  if (p.sessions.size() >= wire::agent::kMaxLinkSessions) {
    return unavailable(fmt::format("{} sessions on the link to '{}' already",
                                   wire::agent::kMaxLinkSessions, p.peer));
  }
  Result<std::shared_ptr<transport::RegisteredMemory>> registration =
      domain_->registerMemory(region->bytes());
  if (!registration) {
    return unavailable(
        fmt::format("cannot register the region: {}", registration.status().message()));
  }
  auto s = std::make_unique<Session>();
  s->uid = next_uid_++;
  s->owner = this;
  s->link = &p;
  s->opener = opener;
  s->region = std::move(region);
  s->registration = std::move(*registration);
  s->connection = std::move(connection);
  // Lowest free id after the last one handed out: ids are reused late.
  while (p.sessions.count(p.next_id % wire::agent::kMaxLinkSessions) != 0) ++p.next_id;
  s->local_id = p.next_id++ % wire::agent::kMaxLinkSessions;
  s->doorbell_ev = event_new(base_, s->region->doorbellToAgent(), EV_READ | EV_PERSIST | EV_ET,
                             &FabricModule::onDoorbell, nullptr);
  s->timer_ev = evtimer_new(base_, &FabricModule::onSessionTimer, s.get());
  uint64_t uid = s->uid;
  s->connection->setOnClosed([this, uid] { onSidecarGone(uid); });
  p.sessions[s->local_id] = s.get();
  Session* raw = s.get();
  sessions_[uid] = std::move(s);
  return raw;
}

void FabricModule::armTimer(Session& s, std::chrono::milliseconds after) {
  timeval tv = toTimeval(after);
  evtimer_add(s.timer_ev, &tv);
}

void FabricModule::onSessionTimer(int, short, void* arg) {
  auto* s = static_cast<Session*>(arg);
  FabricModule* self = s->owner;
  if (s->state == SessionState::kOpening) {
    std::string why = fmt::format("node '{}' did not answer within {}", s->link->peer,
                                  ms(self->options_.open_timeout));
    spdlog::warn("session {} to {}: {}", s->local_id, s->destination_ip, why);
    if (s->connection) s->connection->replyError(why);
    self->endSidecarConnection(*s);
    // The peer may still accept: keep the memory until it acknowledges our close.
    s->state = SessionState::kClosing;
    self->armTimer(*s, self->options_.close_timeout);
    self->sendControl(*s->link, closeMessage(kUnknownSession, s->local_id));
  } else if (s->state == SessionState::kClosing) {
    self->linkLost(*s->link, fmt::format("no close_ack for session {} within {}", s->local_id,
                                         ms(self->options_.close_timeout)));
  }
}

void FabricModule::onSidecarGone(uint64_t uid) {
  auto it = sessions_.find(uid);
  if (it == sessions_.end()) return;
  Session& s = *it->second;
  adopted_.erase(s.connection.get());
  s.connection.reset();
  if (s.state == SessionState::kActive) closeSession(s, "the sidecar hung up");
  // kOpening: settled when the peer answers (or the open times out).
}

void FabricModule::endSidecarConnection(Session& s) {
  if (!s.connection) return;
  adopted_.erase(s.connection.get());
  ConnectionRef c = std::move(s.connection);
  c->close();
}

void FabricModule::closeSession(Session& s, const std::string& why) {
  if (s.state != SessionState::kActive && s.state != SessionState::kOpening) return;
  spdlog::info("session {} ({} on {}): closing: {}", s.local_id, s.destination_ip, s.link->peer,
               why);
  s.region->markClosed();
  endSidecarConnection(s);
  event_del(s.doorbell_ev);
  s.state = SessionState::kClosing;
  armTimer(s, options_.close_timeout);
  sendControl(*s.link, closeMessage(s.remote_id, s.local_id));
}

void FabricModule::releaseSession(Session& s) {
  if (s.state == SessionState::kReleasing) return;
  if (s.state == SessionState::kActive || s.state == SessionState::kClosing) closed_total_.inc();
  s.state = SessionState::kReleasing;
  if (s.region) s.region->markClosed();
  endSidecarConnection(s);
  event_del(s.doorbell_ev);
  evtimer_del(s.timer_ev);
  auto it = s.link->sessions.find(s.local_id);
  if (it != s.link->sessions.end() && it->second == &s) s.link->sessions.erase(it);
  maybeFree(s);
}

void FabricModule::maybeFree(Session& s) {
  if (s.state != SessionState::kReleasing || s.inflight != 0 || s.freed) return;
  // The link no longer reads from its staging nor writes into it: unregister, unmap, close.
  s.freed = true;
  event_free(s.doorbell_ev);
  event_free(s.timer_ev);
  s.doorbell_ev = s.timer_ev = nullptr;
  s.registration.reset();
  s.region.reset();
  to_free_.push_back(s.uid);
}

Status FabricModule::sendControl(Link& p, const LinkMessage& m) {
  if (p.link == nullptr) return unavailable("link down");
  Result<std::vector<std::byte>> bytes = encodeLinkMessage(m);
  if (!bytes) {
    spdlog::error("link to {}: cannot encode {}: {}", p.peer, toString(m.type),
                  bytes.status().message());
    return bytes.status();
  }
  Status s = p.link->sendControl(*bytes);
  if (!s) {
    linkLost(p, fmt::format("sending {}: {}", toString(m.type), s.message()));
    return s;
  }
  p.needs_flush = true;
  return {};
}

FabricModule::Link* FabricModule::linkTo(const std::string& peer) {
  auto it = links_.find(peer);
  return it == links_.end() ? nullptr : it->second.get();
}

// ---------------------------------------------------------------------------------------------
// Control messages from the peer agent

void FabricModule::onControl(Link& p, std::span<const std::byte> bytes) {
  Result<LinkMessage> m = parseLinkMessage(bytes);
  if (!m) {
    // A peer agent that speaks garbage cannot be trusted with our sidecars' memory.
    linkLost(p, fmt::format("bad control message: {}", m.status().message()));
    return;
  }
  switch (m->type) {
    case linkwire::MessageType::kOpen:
      return onOpen(p, *m);
    case linkwire::MessageType::kAccepted:
      return onAccepted(p, *m);
    case linkwire::MessageType::kRefused:
      return onRefused(p, *m);
    case linkwire::MessageType::kClose:
      return onClose(p, *m);
    case linkwire::MessageType::kCloseAck:
      return onCloseAck(p, *m);
  }
}

void FabricModule::onOpen(Link& p, const LinkMessage& m) {
  Result<transport::Hello> hello = transport::parseHello(m.hello);
  if (!hello) {
    refused_total_.inc();
    sendControl(p, refusedMessage(m.session, "invalid hello: " + hello.status().message()));
    return;
  }
  auto o = std::make_unique<Offer>();
  o->destination_ip = m.destination_ip;
  // peer_ip is always an IP: the unspecified address when the opener's agent did not know it.
  bool v4 = m.destination_ip.find(':') == std::string::npos;
  o->source_ip = !m.source_ip.empty() ? m.source_ip : (v4 ? "0.0.0.0" : "::");
  o->hello = m.hello;
  o->peer_node = p.peer;
  o->link_generation = p.generation;
  o->opener_session = m.session;
  o->memory = m.memory;
  if (!offer(std::move(o), p.peer)) {
    refused_total_.inc();
    sendControl(p, refusedMessage(m.session, fmt::format("no sidecar listens for {} on node '{}'",
                                                         m.destination_ip, options_.node_name)));
  }
}

void FabricModule::onAccepted(Link& p, const LinkMessage& m) {
  auto it = p.sessions.find(m.session);
  if (it == p.sessions.end()) {
    // We gave up on it already (and sent close, which the peer answers); nothing to do.
    return;
  }
  Session& s = *it->second;
  if (s.state != SessionState::kOpening) return;
  evtimer_del(s.timer_ev);
  s.remote_id = m.peer_session;
  s.remote = m.memory;
  s.state = SessionState::kActive;
  if (!s.connection) {
    closeSession(s, "the sidecar hung up before the peer accepted");
    return;
  }
  if (!s.connection->replyOk(json{{"mode", "agent"}, {"peer_hello", toHex(m.hello)}})) {
    return;  // dropped: onSidecarGone closed the session
  }
  event_add(s.doorbell_ev, nullptr);
  opened_total_.inc();
  spdlog::info("session {}->{} to {} on {} open ({} bytes registered)", s.local_id, s.remote_id,
               s.destination_ip, p.peer, s.region->layout().region_bytes);
}

void FabricModule::onRefused(Link& p, const LinkMessage& m) {
  auto it = p.sessions.find(m.session);
  if (it == p.sessions.end() || it->second->state != SessionState::kOpening) return;
  Session& s = *it->second;
  spdlog::info("session {} to {} on {}: refused: {}", s.local_id, s.destination_ip, p.peer,
               m.reason);
  refused_total_.inc();
  if (s.connection) {
    ConnectionRef c = s.connection;
    adopted_.erase(c.get());
    s.connection.reset();
    c->setOnClosed(nullptr);
    // The connection goes back to plain requests (the v1 rules: usable after an error).
    c->replyError(fmt::format("node '{}' refused the session: {}", p.peer, m.reason));
  }
  releaseSession(s);  // the peer never wrote into it
}

void FabricModule::onClose(Link& p, const LinkMessage& m) {
  Session* target = nullptr;
  if (m.session != kUnknownSession) {
    auto it = p.sessions.find(m.session);
    if (it != p.sessions.end() && it->second->remote_id == m.peer_session) target = it->second;
  } else {
    for (auto& [id, s] : p.sessions) {
      if (s->remote_id == m.peer_session && !s->opener) target = s;
    }
    // Not accepted yet: withdraw the offer (a late session_accept gets "unknown offer").
    for (auto& [id, o] : offers_) {
      if (!o->local_opener && o->peer_node == p.peer && o->link_generation == p.generation &&
          o->opener_session == m.peer_session) {
        dropOffer(id);
        break;
      }
    }
  }
  if (target != nullptr) {
    if (target->state == SessionState::kOpening || target->state == SessionState::kActive) {
      spdlog::info("session {} ({} on {}): closed by the peer", target->local_id,
                   target->destination_ip, p.peer);
      if (target->state == SessionState::kOpening && target->connection) {
        target->connection->replyError(fmt::format("node '{}' closed the session", p.peer));
      }
      // Our writes for it were posted before this ack, so they land before it (link order).
      sendControl(p, closeAckMessage(m.peer_session));
      releaseSession(*target);
      return;
    }
    // kClosing: both sides closed at once; answer, and still wait for our own ack.
  }
  sendControl(p, closeAckMessage(m.peer_session));
}

void FabricModule::onCloseAck(Link& p, const LinkMessage& m) {
  auto it = p.sessions.find(m.session);
  if (it == p.sessions.end() || it->second->state != SessionState::kClosing) return;
  releaseSession(*it->second);
}

}  // namespace rdmesh::node
