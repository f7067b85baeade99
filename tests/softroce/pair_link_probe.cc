// pair_link_probe: two node agents' LinkDomains across the Soft-RoCE bed's guests, without the
// agent around them. The dialer registers BYTES of seeded memory and writes all of it into the
// acceptor's registered memory (contiguous pieces of 64 KiB, plus inline-sized, odd and
// zero-length ones), with a control message every 256 writes; the acceptor checks every arrival's
// immediate and byte count in order, every control message's position among the writes, and at
// the end the hash of its memory against the dialer's, and answers on the link.
//
//   pair_link_probe serve LISTEN_ADDR NODE EXPECT       EXPECT: verbs | tcp (the link kind)
//   pair_link_probe dial PEER_ADDR NODE BYTES EXPECT
//
// Exit 0 when every check passed; the dialer's last line is the bed's case detail.
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "rdmesh/transport/pair_link.h"

namespace {

using namespace rdmesh;
using namespace rdmesh::transport;
using Clock = std::chrono::steady_clock;

constexpr size_t kMarkEvery = 256;

struct Piece {
  uint64_t offset;
  uint32_t len;
  uint32_t imm;
};

// Both sides derive the same pieces from BYTES: mostly 64 KiB, with inline-sized, odd and
// zero-length (immediate only) writes mixed in.
std::vector<Piece> schedule(uint64_t total) {
  static constexpr uint32_t kSizes[] = {65536, 65536, 65536, 65536, 65536, 65536, 65536, 65536,
                                        100,   0,     4093,  1,     65536, 65536, 65536, 200};
  std::vector<Piece> pieces;
  uint64_t at = 0;
  for (size_t i = 0; at < total; ++i) {
    uint32_t len =
        static_cast<uint32_t>(std::min<uint64_t>(kSizes[i % std::size(kSizes)], total - at));
    // Any immediate whose type is not the link's reserved one: type 1 and the piece number.
    pieces.push_back({at, len, (1u << 28) | static_cast<uint32_t>(i & 0x0fffffff)});
    at += len;
  }
  return pieces;
}

void fillSeeded(std::span<std::byte> bytes) {
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (size_t i = 0; i + 8 <= bytes.size(); i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(bytes.data() + i, &x, 8);
  }
}

uint64_t hashOf(std::span<const std::byte> bytes) {
  uint64_t h = 1469598103934665603ULL;
  size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, bytes.data() + i, 8);
    h = (h ^ w) * 1099511628211ULL;
  }
  for (; i < bytes.size(); ++i) h = (h ^ static_cast<uint8_t>(bytes[i])) * 1099511628211ULL;
  return h;
}

std::vector<std::byte> text(const std::string& s) {
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}
std::string text(const std::vector<std::byte>& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

int fail(const std::string& why) {
  std::printf("FAIL %s\n", why.c_str());
  std::fflush(stdout);
  return 1;
}

// Flushes and polls `link` until it has events, sleeping on its fds the way an agent's loop
// would (prepareToSleep / afterWakeup: the verbs completion channel is exercised too).
Status waitEvents(PairLink& link, std::vector<LinkEvent>& events, Deadline deadline) {
  for (;;) {
    if (Status s = link.flush(); !s) return s;
    auto n = link.poll(events, 256);
    if (!n) return n.status();
    if (*n > 0) return {};
    if (Clock::now() > deadline) return {StatusCode::kTimeout, "no events before the deadline"};
    if (!link.prepareToSleep()) continue;
    pollfd fds[2] = {{link.eventFd(), POLLIN, 0}, {link.livenessFd(), POLLIN, 0}};
    if (link.wantsWritable()) fds[0].events |= POLLOUT;
    int nfds = link.livenessFd() >= 0 && link.livenessFd() != link.eventFd() ? 2 : 1;
    ::poll(fds, nfds, 100);
    link.afterWakeup();
    if (nfds == 2 && (fds[1].revents & (POLLIN | POLLHUP))) {
      // The bootstrap socket carries nothing after bring-up: readable means the peer is gone.
      // Whatever it wrote before reached our CQ first; look once more.
      events.clear();
      auto last = link.poll(events, 256);
      if (last && *last > 0) return {};
      return unavailable("the peer's bootstrap socket hung up");
    }
  }
}

bool kindIs(const PairLink& link, const std::string& expect) {
  return (expect == "verbs") == (link.kind() == wire::FabricKind::kVerbs);
}

LinkDomainOptions domainOptions(const std::string& node) {
  LinkDomainOptions o;
  o.node_name = node;
  return o;
}

int serve(const std::string& address, const std::string& node, const std::string& expect) {
  auto domain = makeLinkDomain(domainOptions(node));
  std::printf("domain %s%s\n", domain->kind() == wire::FabricKind::kVerbs ? "verbs" : "tcp",
              domain->rdmaUnavailableReason().empty()
                  ? ""
                  : (" (" + domain->rdmaUnavailableReason() + ")").c_str());
  auto listener = domain->listen(address);
  if (!listener) return fail(listener.status().message());
  std::printf("listening on %s\n", address.c_str());
  std::fflush(stdout);
  pollfd p{*listener, POLLIN, 0};
  if (::poll(&p, 1, 300000) != 1) return fail("nobody dialed");
  auto deadline = Clock::now() + std::chrono::seconds(300);
  auto link = domain->accept(::accept(*listener, nullptr, nullptr),
                             Clock::now() + std::chrono::seconds(20));
  if (!link) return fail("accept: " + link.status().message());
  PairLink& l = **link;
  std::printf("link from %s: %s%s\n", l.peerNode().c_str(),
              l.kind() == wire::FabricKind::kVerbs ? "verbs" : "tcp",
              l.fallbackReason().empty() ? "" : (" (" + l.fallbackReason() + ")").c_str());
  if (!kindIs(l, expect)) return fail("link kind is not " + expect);

  // Our memory, described to the dialer over the link.
  std::vector<std::byte> memory;
  std::shared_ptr<RegisteredMemory> reg;
  std::vector<LinkEvent> events;
  if (Status s = waitEvents(l, events, deadline); !s) return fail(s.message());
  uint64_t total = 0;
  if (events[0].type != LinkEvent::Type::kControl ||
      std::sscanf(text(events[0].control).c_str(), "size %lu", &total) != 1) {
    return fail("expected the dialer's size first");
  }
  memory.resize(total);
  auto r = domain->registerMemory(memory);
  if (!r) return fail("registerMemory: " + r.status().message());
  reg = std::move(r.value());
  RemoteMemory d = l.describe(*reg);
  char line[128];
  std::snprintf(line, sizeof(line), "dst %lu %u %lu", d.addr, d.key, d.bytes);
  if (Status s = l.sendControl(text(line)); !s) return fail(s.message());

  const std::vector<Piece> pieces = schedule(total);
  size_t arrived = 0;
  size_t marks = 0;
  events.erase(events.begin());
  for (;;) {
    for (LinkEvent& e : events) {
      if (e.type == LinkEvent::Type::kWriteArrived) {
        if (arrived >= pieces.size()) return fail("more writes than sent");
        const Piece& want = pieces[arrived];
        if (e.imm != want.imm || e.byte_len != want.len) {
          return fail("write " + std::to_string(arrived) + ": imm " + std::to_string(e.imm) +
                      " len " + std::to_string(e.byte_len) + ", expected " +
                      std::to_string(want.imm) + " / " + std::to_string(want.len));
        }
        ++arrived;
        continue;
      }
      if (e.type != LinkEvent::Type::kControl) continue;
      std::string msg = text(e.control);
      size_t at = 0;
      uint64_t hash = 0;
      if (std::sscanf(msg.c_str(), "mark %zu", &at) == 1) {
        if (at != arrived) {
          return fail("control 'mark " + std::to_string(at) + "' after " + std::to_string(arrived) +
                      " writes: out of order");
        }
        ++marks;
        continue;
      }
      if (std::sscanf(msg.c_str(), "done %lu", &hash) != 1) return fail("unexpected: " + msg);
      uint64_t ours = hashOf(memory);
      bool ok = arrived == pieces.size() && ours == hash;
      std::snprintf(line, sizeof(line), "%s %lu writes=%zu marks=%zu", ok ? "ok" : "bad", ours,
                    arrived, marks);
      std::printf("%s\n", line);
      std::fflush(stdout);
      if (Status s = l.sendControl(text(line)); !s) return fail(s.message());
      // Linger until the dialer hangs up, so our answer reaches it.
      for (;;) {
        events.clear();
        Status s = waitEvents(l, events, Clock::now() + std::chrono::seconds(30));
        if (!s) return ok ? 0 : 1;
      }
    }
    events.clear();
    if (Status s = waitEvents(l, events, deadline); !s) {
      return fail("after " + std::to_string(arrived) + " writes: " + s.message());
    }
  }
}

int dial(const std::string& address, const std::string& node, uint64_t total,
         const std::string& expect) {
  auto domain = makeLinkDomain(domainOptions(node));
  std::vector<std::byte> memory(total);
  fillSeeded(memory);
  const uint64_t hash = hashOf(memory);
  auto r = domain->registerMemory(memory);
  if (!r) return fail("registerMemory: " + r.status().message());
  std::shared_ptr<RegisteredMemory> src = std::move(r.value());

  auto deadline = Clock::now() + std::chrono::seconds(300);
  auto link = domain->connect(address, Clock::now() + std::chrono::seconds(20));
  if (!link) return fail("connect: " + link.status().message());
  PairLink& l = **link;
  std::string kind = l.kind() == wire::FabricKind::kVerbs ? "verbs" : "tcp";
  std::printf("link to %s: %s%s\n", l.peerNode().c_str(), kind.c_str(),
              l.fallbackReason().empty() ? "" : (" (" + l.fallbackReason() + ")").c_str());
  if (!kindIs(l, expect)) return fail("link kind is " + kind + ", expected " + expect);
  if (expect == "tcp" && domain->kind() == wire::FabricKind::kVerbs && l.fallbackReason().empty()) {
    return fail("fell back to tcp without a reason");
  }

  std::vector<LinkEvent> events;
  if (Status s = l.sendControl(text("size " + std::to_string(total))); !s) return fail(s.message());
  if (Status s = waitEvents(l, events, deadline); !s) return fail(s.message());
  RemoteMemory dst;
  if (events[0].type != LinkEvent::Type::kControl ||
      std::sscanf(text(events[0].control).c_str(), "dst %lu %u %lu", &dst.addr, &dst.key,
                  &dst.bytes) != 3) {
    return fail("expected the acceptor's memory description");
  }

  const std::vector<Piece> pieces = schedule(total);
  auto t0 = Clock::now();
  size_t next = 0;
  uint64_t done = 0;  // highest cookie reported by kWriteDone
  size_t dones = 0;
  size_t marked = 0;  // the mark for this piece number was sent
  std::string answer;
  while (answer.empty()) {
    // Post as much as the link takes, then flush once (one doorbell for the whole chain).
    while (next < pieces.size()) {
      // A mark goes right before the piece it names: the acceptor must have seen exactly that
      // many writes when it arrives. Cookies are piece numbers + 1.
      if (next % kMarkEvery == 0 && next > 0 && marked != next) {
        if (Status s = l.sendControl(text("mark " + std::to_string(next))); !s) {
          return fail(s.message());
        }
        marked = next;
      }
      const Piece& p = pieces[next];
      Status s = l.postWrite(*src, p.offset, p.len, dst, p.offset, p.imm, next + 1);
      if (s.code() == StatusCode::kUnavailable) break;  // queue full: after the next poll
      if (!s) return fail("postWrite: " + s.message());
      if (++next == pieces.size()) {
        char line[64];
        std::snprintf(line, sizeof(line), "done %lu", hash);
        if (Status c = l.sendControl(text(line)); !c) return fail(c.message());
      }
    }
    events.clear();
    if (Status s = waitEvents(l, events, deadline); !s) {
      return fail("after " + std::to_string(next) + " writes: " + s.message());
    }
    for (const LinkEvent& e : events) {
      if (e.type == LinkEvent::Type::kWriteDone) {
        if (e.cookie <= done && dones > 0) return fail("kWriteDone cookies went backwards");
        done = e.cookie;
        ++dones;
      } else if (e.type == LinkEvent::Type::kControl) {
        answer = text(e.control);
      } else {
        return fail("unexpected write from the acceptor");
      }
    }
  }
  double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  // Every write completed before the acceptor could hash: the last cookie must be reported
  // (possibly in the poll that brought the answer, or shortly after).
  auto until = Clock::now() + std::chrono::seconds(10);
  while (done != pieces.size() && Clock::now() < until) {
    events.clear();
    if (Status s = waitEvents(l, events, until); !s) break;
    for (const LinkEvent& e : events) {
      if (e.type == LinkEvent::Type::kWriteDone) done = e.cookie;
    }
  }
  if (done != pieces.size()) {
    return fail("last kWriteDone " + std::to_string(done) + " of " + std::to_string(pieces.size()));
  }
  char expected[64];
  std::snprintf(expected, sizeof(expected), "ok %lu ", hash);
  if (answer.rfind(expected, 0) != 0) return fail("acceptor says: " + answer);
  std::printf("link=%s bytes=%lu writes=%zu write_done_events=%zu MB/s=%.1f%s\n", kind.c_str(),
              total, pieces.size(), dones, total / seconds / 1e6,
              l.fallbackReason().empty() ? "" : (" reason=" + l.fallbackReason()).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "serve" && argc == 5) return serve(argv[2], argv[3], argv[4]);
  if (mode == "dial" && argc == 6)
    return dial(argv[2], argv[3], std::strtoull(argv[4], nullptr, 10), argv[5]);
  std::fprintf(stderr,
               "usage: pair_link_probe serve LISTEN_ADDR NODE verbs|tcp\n"
               "       pair_link_probe dial PEER_ADDR NODE BYTES verbs|tcp\n");
  return 2;
}
