// The session switch's data path, run once per loop iteration by the adaptive poller: drain
// every sidecar's submission queue onto its link (bounds-checked), flush each link once, turn
// link completions into sidecar completions, and ring only the sidecars that sleep.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <utility>

#include "fabric_module.h"
#include "fabric_module_internal.h"

namespace rdmesh::node {

namespace {

namespace aw = wire::agent;

constexpr uint64_t kMaxSubmissionsPerTurn = 256;  // per session: fairness between sidecars
constexpr size_t kMaxLinkEvents = 256;

// Why a submission cannot be posted, or "" when it is fine. Copies are checked, never the
// shared entry (the sidecar could change it between check and use).
std::string checkSubmission(const aw::Submission& sub, const aw::RegionLayout& layout,
                            uint64_t remote_receive_bytes) {
  if (sub.length > wire::kMaxMessageBytes) {
    return fmt::format("length {} exceeds {}", sub.length, wire::kMaxMessageBytes);
  }
  if (sub.staging_offset > layout.staging_bytes ||
      sub.length > layout.staging_bytes - sub.staging_offset) {
    return fmt::format("staging range [{}, +{}) outside the {}-byte staging", sub.staging_offset,
                       sub.length, layout.staging_bytes);
  }
  if (sub.remote_offset > remote_receive_bytes ||
      sub.length > remote_receive_bytes - sub.remote_offset) {
    return fmt::format("remote range [{}, +{}) outside the peer's {}-byte receive area",
                       sub.remote_offset, sub.length, remote_receive_bytes);
  }
  if (wire::immLength(sub.imm) != sub.length) {
    return fmt::format("immediate length {} differs from length {}", wire::immLength(sub.imm),
                       sub.length);
  }
  return {};
}

}  // namespace

bool FabricModule::poll() {
  for (uint64_t uid : to_free_) sessions_.erase(uid);
  to_free_.clear();
  bool work = false;
  for (auto& [name, p] : links_) {
    if (p->link != nullptr) work |= pollLink(*p);
  }
  for (auto& [uid, s] : sessions_) {
    if (s->state == SessionState::kActive) work |= drainSubmissions(*s);
  }
  for (Session* s : sessions_to_wake_) {
    s->wake_pending = false;
    if (s->region && s->region->wakeSidecarIfSleeping()) doorbells_.inc();
  }
  sessions_to_wake_.clear();
  return work;
}

void FabricModule::flush() {
  for (auto& [name, p] : links_) {
    if (p->link == nullptr || (!p->needs_flush && !p->link->wantsWritable())) continue;
    p->needs_flush = false;
    if (Status s = p->link->flush(); !s) {
      linkLost(*p, fmt::format("flush: {}", s.message()));
      continue;
    }
    if (p->link->wantsWritable()) event_add(p->write_ev, nullptr);
  }
}

bool FabricModule::drainSubmissions(Session& s) {
  aw::RegionHeader& h = s.region->header();
  const aw::RegionLayout& layout = s.region->layout();
  uint64_t tail = h.sq_tail.load(std::memory_order_acquire);
  if (tail - s.sq_head > layout.sq_depth) {
    bad_submissions_.inc();
    closeSession(s, fmt::format("sq_tail {} runs {} entries ahead of the agent (depth {})", tail,
                                tail - s.sq_head, layout.sq_depth));
    return true;
  }
  if (tail == s.sq_head) return false;
  Link& p = *s.link;
  const aw::Submission* queue = s.region->submissions();
  uint64_t posted = 0;
  while (s.sq_head != tail && posted < kMaxSubmissionsPerTurn) {
    aw::Submission sub = queue[s.sq_head & (layout.sq_depth - 1)];
    if (std::string bad = checkSubmission(sub, layout, s.remote.receive_bytes); !bad.empty()) {
      bad_submissions_.inc();
      closeSession(s, "bad submission: " + bad);
      return true;
    }
    uint64_t cookie = p.next_cookie;
    Status st =
        p.link->postWrite(*s.registration, layout.staging_offset + sub.staging_offset, sub.length,
                          s.remote.region, s.remote.receive_offset + sub.remote_offset,
                          aw::encodeLinkImm(sub.imm, s.remote_id), cookie);
    if (st.code() == StatusCode::kUnavailable) break;  // send queue full: after a kWriteDone
    if (!st) {
      linkLost(p, fmt::format("postWrite: {}", st.message()));
      return true;
    }
    p.next_cookie++;
    p.inflight.push_back({cookie, s.uid, s.sq_head});
    s.inflight++;
    s.sq_head++;
    posted++;
  }
  if (posted == 0) return false;
  h.sq_head.store(s.sq_head, std::memory_order_release);
  p.needs_flush = true;
  submissions_.inc(posted);
  return true;
}

bool FabricModule::pollLink(Link& p) {
  events_.clear();
  Result<size_t> n = p.link->poll(events_, kMaxLinkEvents);
  if (!n) {
    linkLost(p, n.status().message());
    return true;
  }
  uint64_t generation = p.generation;
  for (transport::LinkEvent& e : events_) {
    // A control message may have torn the link down (a protocol error): the rest is moot.
    if (p.link == nullptr || p.generation != generation) break;
    switch (e.type) {
      case transport::LinkEvent::Type::kWriteArrived:
        onArrival(p, e.imm, e.byte_len);
        break;
      case transport::LinkEvent::Type::kWriteDone:
        onWriteDone(p, e.cookie);
        break;
      case transport::LinkEvent::Type::kControl:
        onControl(p, e.control);
        break;
    }
  }
  return *n > 0;
}

void FabricModule::onWriteDone(Link& p, uint64_t cookie) {
  while (!p.inflight.empty() && p.inflight.front().cookie <= cookie) {
    Inflight done = p.inflight.front();
    p.inflight.pop_front();
    auto it = sessions_.find(done.session_uid);
    if (it == sessions_.end() || it->second->freed) continue;
    Session& s = *it->second;
    s.inflight--;
    if (s.region) {
      // Staging up to here may be reused by the sidecar; one out of staging sleeps until then.
      s.region->header().sq_completed.store(done.index + 1, std::memory_order_release);
      if (!s.wake_pending) {
        s.wake_pending = true;
        sessions_to_wake_.push_back(&s);
      }
    }
    maybeFree(s);
  }
}

void FabricModule::onArrival(Link& p, uint32_t imm, uint32_t byte_len) {
  auto it = p.sessions.find(aw::linkSession(imm));
  if (it == p.sessions.end() || it->second->state != SessionState::kActive) {
    // Closing: the peer's writes that crossed our close; the sidecar is gone or done.
    return;
  }
  Session& s = *it->second;
  aw::RegionHeader& h = s.region->header();
  const aw::RegionLayout& layout = s.region->layout();
  uint64_t head = h.cq_head.load(std::memory_order_acquire);
  if (s.cq_tail - head >= layout.cq_depth) {
    // The sidecar announced recv_depth <= cq_depth and its peer keeps to its credits: a full
    // queue means one of them broke the protocol.
    closeSession(
        s, fmt::format("completion queue overflow ({} entries unconsumed)", s.cq_tail - head));
    return;
  }
  s.region->arrivals()[s.cq_tail & (layout.cq_depth - 1)] =
      aw::Arrival{aw::v1ImmFromLink(imm, byte_len), byte_len};
  s.cq_tail++;
  h.cq_tail.store(s.cq_tail, std::memory_order_release);
  arrivals_.inc();
  if (!s.wake_pending) {
    s.wake_pending = true;
    sessions_to_wake_.push_back(&s);
  }
}

bool FabricModule::spinWorthwhile() const {
  for (const auto& [uid, s] : sessions_) {
    if (s->state == SessionState::kActive) return true;  // its queue is shared memory
  }
  for (const auto& [name, p] : links_) {
    if (p->link != nullptr && p->link->pollsUsefully()) return true;
  }
  return false;
}

bool FabricModule::prepareToSleep() {
  bool may_sleep = true;
  for (auto& [uid, s] : sessions_) {
    if (s->state != SessionState::kActive) continue;
    aw::RegionHeader& h = s->region->header();
    h.agent_sleeping.store(1, std::memory_order_seq_cst);
    if (h.sq_tail.load(std::memory_order_seq_cst) != s->sq_head) may_sleep = false;
  }
  for (auto& [name, p] : links_) {
    if (p->link == nullptr) continue;
    if (p->needs_flush || p->link->hasBufferedEvents() || !p->link->prepareToSleep()) {
      may_sleep = false;
    }
  }
  return may_sleep;
}

void FabricModule::markAwake() {
  for (auto& [uid, s] : sessions_) {
    if (s->state == SessionState::kActive) {
      s->region->header().agent_sleeping.store(0, std::memory_order_relaxed);
    }
  }
  // Only links whose fd fired: a sidecar's doorbell wake-up costs the links no syscalls.
  for (auto& [name, p] : links_) {
    if (p->link != nullptr && std::exchange(p->readable, false)) p->link->afterWakeup();
  }
}

void FabricModule::onDoorbell(int, short, void*) {
  // Nothing to read back (edge-triggered eventfd): the wake-up itself is the message; the poller
  // drains every submission queue after it.
}

}  // namespace rdmesh::node
