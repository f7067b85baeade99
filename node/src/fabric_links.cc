// The node-pair links: listen, dial (the node with the lower name dials), bootstrap off the loop
// with a deadline, reconnect with backoff, and tear down every session of a lost link.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>

#include "fabric_module.h"
#include "fabric_module_internal.h"
#include "rdmesh/common/timeval.h"

namespace rdmesh::node {

namespace {
using LinkResult = Result<std::unique_ptr<transport::PairLink>>;
}  // namespace

Status FabricModule::start() {
  if (domain_ != nullptr && !options_.listen_address.empty()) {
    Result<int> fd = domain_->listen(options_.listen_address);
    if (!fd) return fd.status();
    listen_fd_ = *fd;
    listen_ev_ = event_new(base_, listen_fd_, EV_READ | EV_PERSIST, &FabricModule::onListen, this);
    event_add(listen_ev_, nullptr);
    spdlog::info("fabric: node '{}' accepting links on {} ({})", options_.node_name,
                 options_.listen_address, transport::toString(domain_->kind()));
  }
  setPeers(std::move(options_.peers));
  return {};
}

void FabricModule::setPeers(std::vector<transport::PeerSpec> peers) {
  for (const transport::PeerSpec& spec : peers) {
    if (spec.name == options_.node_name) continue;  // never a peer of itself
    Link& p = peerFor(spec.name);
    if (p.address != spec.address) {
      p.address = spec.address;
      p.backoff = kFirstBackoff;
    }
    p.dials = options_.node_name < spec.name;  // one link per node pair
    dial(p);
  }
  for (auto& [peer_name, p] : links_) {
    const std::string& name = peer_name;  // clang before 16 cannot capture a structured binding
    bool listed = std::any_of(peers.begin(), peers.end(),
                              [&](const transport::PeerSpec& s) { return s.name == name; });
    if (listed || !p->dials) continue;
    p->dials = false;
    if (p->retry_ev != nullptr) event_del(p->retry_ev);
  }
  options_.peers = std::move(peers);
}

FabricModule::Link& FabricModule::peerFor(const std::string& name) {
  auto it = links_.find(name);
  if (it != links_.end()) return *it->second;
  auto p = std::make_unique<Link>();
  p->owner = this;
  p->peer = name;
  return *links_.emplace(name, std::move(p)).first->second;
}

void FabricModule::dial(Link& p) {
  if (domain_ == nullptr || !p.dials || p.dialing || p.link != nullptr || p.address.empty()) {
    return;
  }
  p.dialing = true;
  transport::LinkDomain* domain = domain_.get();
  std::string address = p.address;
  transport::Deadline until = std::chrono::steady_clock::now() + options_.connect_timeout;
  std::string name = p.peer;
  jobs_.run<LinkResult>([=]() -> LinkResult { return domain->connect(address, until); },
                        [this, name](LinkResult result) {
                          Link& peer = peerFor(name);
                          peer.dialing = false;
                          if (!result) {
                            if (result.status().message() != peer.last_error) {
                              spdlog::warn("link to {}: cannot connect to {}: {} (retrying)", name,
                                           peer.address, result.status().message());
                              peer.last_error = result.status().message();
                            }
                            peer.down_reason = result.status().message();
                            scheduleRetry(peer);
                            return;
                          }
                          if ((*result)->peerNode() != name) {
                            spdlog::error("link to {}: {} answered as '{}'", name, peer.address,
                                          (*result)->peerNode());
                            peer.down_reason = "the peer answered with another node name";
                            scheduleRetry(peer);
                            return;
                          }
                          if (peer.link != nullptr) return;  // it dialed us meanwhile
                          onLinkUp(name, std::move(*result), /*dialed=*/true);
                        });
}

void FabricModule::scheduleRetry(Link& p) {
  if (!p.dials) return;
  if (p.retry_ev == nullptr) p.retry_ev = evtimer_new(base_, &FabricModule::onRetry, &p);
  timeval tv = toTimeval(p.backoff);
  evtimer_add(p.retry_ev, &tv);
  p.backoff = std::min(p.backoff * 2, options_.max_backoff);
}

void FabricModule::onRetry(int, short, void* arg) {
  auto* p = static_cast<Link*>(arg);
  p->owner->dial(*p);
}

void FabricModule::onListen(int fd, short, void* arg) {
  auto* self = static_cast<FabricModule*>(arg);
  for (;;) {
    int conn = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) return;
    transport::LinkDomain* domain = self->domain_.get();
    transport::Deadline until = std::chrono::steady_clock::now() + self->options_.connect_timeout;
    self->jobs_.run<LinkResult>([=]() -> LinkResult { return domain->accept(conn, until); },
                                [self](LinkResult result) {
                                  if (!result) {
                                    spdlog::warn("fabric: bootstrap of an incoming link failed: {}",
                                                 result.status().message());
                                    return;
                                  }
                                  std::string name = (*result)->peerNode();
                                  if (name == self->options_.node_name) {
                                    spdlog::error(
                                        "fabric: a peer claims our own name '{}'; refused", name);
                                    return;
                                  }
                                  self->onLinkUp(name, std::move(*result), /*dialed=*/false);
                                });
  }
}

void FabricModule::onLinkUp(const std::string& name, std::unique_ptr<transport::PairLink> link,
                            bool dialed) {
  Link& p = peerFor(name);
  if (p.link != nullptr) {
    // The peer dialed again: it restarted, and the old link is dead even if we have not noticed.
    linkLost(p, "the peer dialed in again (restarted)");
  }
  p.link = std::move(link);
  p.generation++;
  p.backoff = kFirstBackoff;
  p.last_error.clear();
  p.down_reason.clear();
  watchLink(p);
  if (!p.link->fallbackReason().empty() && p.link->fallbackReason() != p.logged_fallback) {
    spdlog::warn("link to {}: tcp instead of RDMA: {}", name, p.link->fallbackReason());
    p.logged_fallback = p.link->fallbackReason();
  }
  spdlog::info("link to {} up ({}, {})", name, transport::toString(p.link->kind()),
               dialed ? "dialed" : "accepted");
  stats_.setText("node.link." + name, "kind", transport::toString(p.link->kind()));
  stats_.setText("node.link." + name, "fallback_reason", p.link->fallbackReason());
  stats_.gauge("node.link." + name, "up").set(1);
}

void FabricModule::watchLink(Link& p) {
  int fd = p.link->eventFd();
  // The callbacks only wake the loop: the adaptive poller polls every link after a wake-up.
  p.read_ev = event_new(base_, fd, EV_READ | EV_PERSIST, &FabricModule::onLinkEvent, &p);
  p.write_ev = event_new(base_, fd, EV_WRITE, &FabricModule::onLinkEvent, &p);
  event_add(p.read_ev, nullptr);
  int liveness = p.link->livenessFd();
  if (liveness >= 0 && liveness != fd) {
    p.liveness_ev = event_new(base_, liveness, EV_READ, &FabricModule::onLivenessEvent, &p);
    event_add(p.liveness_ev, nullptr);
  }
}

void FabricModule::onLinkEvent(int, short what, void* arg) {
  auto* p = static_cast<Link*>(arg);
  if ((what & EV_WRITE) != 0 && p->link != nullptr) p->needs_flush = true;
  if ((what & EV_READ) != 0) p->readable = true;
}

void FabricModule::onLivenessEvent(int, short, void* arg) {
  auto* p = static_cast<Link*>(arg);
  p->owner->linkLost(*p, "the peer agent hung up");
}

void FabricModule::linkLost(Link& p, const std::string& why) {
  if (p.link == nullptr) return;
  spdlog::warn("link to {} lost: {}", p.peer, why);
  link_lost_total_.inc();
  for (event** ev : {&p.read_ev, &p.write_ev, &p.liveness_ev}) {
    if (*ev != nullptr) event_free(*ev);
    *ev = nullptr;
  }
  // The link goes first: once it is destroyed nothing reads from or writes into sidecar memory,
  // so every registration on it may be released at once.
  p.link.reset();
  p.inflight.clear();
  p.needs_flush = false;
  p.down_reason = why;
  stats_.setText("node.link." + p.peer, "kind", "down");
  stats_.gauge("node.link." + p.peer, "up").set(0);
  std::vector<Session*> sessions;
  for (auto& [id, s] : p.sessions) sessions.push_back(s);
  for (Session* s : sessions) {
    s->inflight = 0;
    if (s->state == SessionState::kOpening && s->connection) {
      ConnectionRef c = s->connection;
      adopted_.erase(c.get());
      s->connection.reset();
      c->setOnClosed(nullptr);
      c->replyError(fmt::format("link to node '{}' lost: {}", p.peer, why));
    }
    releaseSession(*s);
  }
  // Sessions already released but waiting for their writes: those writes are gone with the link.
  for (auto& [uid, s] : sessions_) {
    if (s->link == &p && s->state == SessionState::kReleasing) {
      s->inflight = 0;
      maybeFree(*s);
    }
  }
  std::vector<uint64_t> offers;
  for (auto& [id, o] : offers_) {
    if (!o->local_opener && o->peer_node == p.peer) offers.push_back(id);
  }
  for (uint64_t id : offers) dropOffer(id);
  p.backoff = kFirstBackoff;
  scheduleRetry(p);
}

}  // namespace rdmesh::node
