#include "fake_session_agent.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <list>
#include <stdexcept>

#include "rdmesh/transport/agent_messages.h"
#include "rdmesh/transport/agent_region.h"
#include "rdmesh/transport/agent_wire.h"

namespace rdmesh::testing {

using Json = nlohmann::json;
namespace agentwire = wire::agent;

namespace {

void sendMessage(int fd, const std::string& body, std::vector<int> fds = {}) {
  iovec iov{const_cast<char*>(body.data()), body.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * std::max<size_t>(fds.size(), 1)));
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  (void)::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
}

// One datagram and its fds; false when the peer hung up.
bool recvMessage(int fd, std::string* body, std::vector<UniqueFd>* fds) {
  body->resize(65536);
  char control[CMSG_SPACE(sizeof(int) * 8)];
  iovec iov{body->data(), body->size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n = ::recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n <= 0) return n < 0 && errno == EAGAIN;
  body->resize(static_cast<size_t>(n));
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int received;
      std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds->emplace_back(received);
    }
  }
  return true;
}

Json error(const std::string& why) {
  return Json{{"ok", false}, {"error", why}};
}

// Rings `fd` if its owner sleeps; `count` runs before the ring, so a woken test sees it.
template <typename Count>
void wake(std::atomic<uint32_t>& sleeping, int fd, Count&& count) {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (sleeping.load(std::memory_order_relaxed) != 0 &&
      sleeping.exchange(0, std::memory_order_seq_cst) != 0) {
    count();
    uint64_t one = 1;
    (void)!::write(fd, &one, sizeof(one));
  }
}

// One sidecar's end of a session: its connection, region and doorbells.
struct Side {
  UniqueFd conn;
  UniqueFd memfd;
  std::byte* base = nullptr;
  size_t size = 0;
  UniqueFd to_agent;
  UniqueFd to_sidecar;
  std::string hello_hex;
  uint64_t sq_head = 0;
  uint64_t cq_tail = 0;

  Side() = default;
  Side(Side&& o) noexcept { *this = std::move(o); }
  Side& operator=(Side&& o) noexcept {
    std::swap(conn, o.conn);
    std::swap(memfd, o.memfd);
    std::swap(base, o.base);
    std::swap(size, o.size);
    std::swap(to_agent, o.to_agent);
    std::swap(to_sidecar, o.to_sidecar);
    std::swap(hello_hex, o.hello_hex);
    std::swap(sq_head, o.sq_head);
    std::swap(cq_tail, o.cq_tail);
    return *this;
  }
  ~Side() {
    if (base) ::munmap(base, size);
  }
  agentwire::RegionHeader& h() const { return *reinterpret_cast<agentwire::RegionHeader*>(base); }
  const agentwire::RegionLayout& l() const { return h().layout; }
};

// Maps and checks a region handed over with a session_open/accept; an error text or "".
std::string mapSide(Side& side, std::vector<UniqueFd>& fds, const std::string& hello_hex) {
  if (fds.size() != 3) return "expected 3 descriptors, got " + std::to_string(fds.size());
  auto hello_bytes = transport::fromHex(hello_hex);
  if (!hello_bytes) return "field 'hello': " + hello_bytes.status().message();
  auto hello = transport::parseHello(*hello_bytes);
  if (!hello) return "field 'hello': " + hello.status().message();
  struct stat st {};
  if (::fstat(fds[0].get(), &st) != 0 ||
      st.st_size < static_cast<off_t>(agentwire::kRegionHeaderBytes)) {
    return "region memfd too small";
  }
  // As rdmesh-node requires: the sidecar sealed the size of what it hands over.
  int seals = ::fcntl(fds[0].get(), F_GET_SEALS);
  if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW)) {
    return "region memfd is not sealed against shrinking and growing";
  }
  agentwire::RegionLayout layout{};
  if (::pread(fds[0].get(), &layout, sizeof(layout), 0) != sizeof(layout))
    return "cannot read region";
  if (Status s = transport::validateAgentRegionLayout(layout, static_cast<uint64_t>(st.st_size));
      !s) {
    return s.message();
  }
  if (Status s = transport::checkAgentRegionForHello(layout, *hello); !s) return s.message();
  void* p =
      ::mmap(nullptr, layout.region_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0].get(), 0);
  if (p == MAP_FAILED) return "mmap failed";
  side.base = static_cast<std::byte*>(p);
  side.size = layout.region_bytes;
  side.memfd = std::move(fds[0]);
  side.to_agent = std::move(fds[1]);
  side.to_sidecar = std::move(fds[2]);
  side.hello_hex = hello_hex;
  return "";
}

}  // namespace

struct FakeSessionAgent::Impl {
  struct Pending {
    uint64_t offer_id;
    Side opener;
  };
  struct Pair {
    Side a, b;
  };

  std::string node;
  UniqueFd listen;
  UniqueFd wake_fd;
  std::atomic<bool> stop{false};
  std::atomic<bool> close_all{false};
  mutable std::mutex mu;
  std::map<std::string, std::string> pod_ips;  // hello name -> IP
  std::map<pid_t, std::string> pid_ips;        // process (SO_PEERCRED) -> its first listened IP
  bool shm = false;
  size_t hold_offers_until_opens = 0;
  Misbehaviour misbehaviour = Misbehaviour::kNone;
  Counters counters;
  std::vector<std::string> ops;

  // Loop thread only.
  std::list<UniqueFd> clients;             // not yet a session connection
  std::map<std::string, int> listeners;    // pod IP -> client fd
  std::map<uint64_t, Pending> pending;     // offers in flight
  std::list<std::unique_ptr<Pair>> pairs;  // agent-mode sessions
  std::list<UniqueFd> held;                // silent / shm-brokered connections
  uint64_t next_offer = 1;
  size_t opens_seen = 0;
  std::vector<std::pair<int, std::string>> held_offers;  // listener fd, offer
  std::atomic<size_t> active_pairs{0};
  std::atomic<size_t> active_listeners{0};

  void countRing() {
    std::lock_guard lock(mu);
    ++counters.doorbells_to_sidecar;
  }
  void run();
  void onClient(std::list<UniqueFd>::iterator it, bool* erase);
  bool moveAll();
  bool move(Side& src, Side& dst, bool* broken);
  void closePair(std::list<std::unique_ptr<Pair>>::iterator it);
};

FakeSessionAgent::FakeSessionAgent(std::string socket_path, std::string node_name)
    : path_(std::move(socket_path)), impl_(std::make_unique<Impl>()) {
  impl_->node = std::move(node_name);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path_.size() >= sizeof(addr.sun_path)) throw std::runtime_error("socket path too long");
  std::memcpy(addr.sun_path, path_.data(), path_.size());
  ::unlink(path_.c_str());
  impl_->listen.reset(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!impl_->listen ||
      ::bind(impl_->listen.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(impl_->listen.get(), 64) != 0) {
    throw std::runtime_error("fake session agent: cannot listen on " + path_);
  }
  impl_->wake_fd.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  thread_ = std::thread([this] { impl_->run(); });
}

FakeSessionAgent::~FakeSessionAgent() {
  impl_->stop = true;
  uint64_t one = 1;
  (void)!::write(impl_->wake_fd.get(), &one, sizeof(one));
  thread_.join();
  ::unlink(path_.c_str());
}

void FakeSessionAgent::pod(const std::string& hello_name, const std::string& ip) {
  std::lock_guard lock(impl_->mu);
  impl_->pod_ips[hello_name] = ip;
}
void FakeSessionAgent::setShmMode(bool shm) {
  std::lock_guard lock(impl_->mu);
  impl_->shm = shm;
}
void FakeSessionAgent::holdOffersUntilOpens(size_t opens) {
  std::lock_guard lock(impl_->mu);
  impl_->hold_offers_until_opens = opens;
}
void FakeSessionAgent::misbehave(Misbehaviour how) {
  std::lock_guard lock(impl_->mu);
  impl_->misbehaviour = how;
}
void FakeSessionAgent::closeAllSessions() {
  impl_->close_all = true;
  uint64_t one = 1;
  (void)!::write(impl_->wake_fd.get(), &one, sizeof(one));
}
FakeSessionAgent::Counters FakeSessionAgent::counters() const {
  std::lock_guard lock(impl_->mu);
  return impl_->counters;
}
std::vector<std::string> FakeSessionAgent::ops() const {
  std::lock_guard lock(impl_->mu);
  return impl_->ops;
}
size_t FakeSessionAgent::activeSessions() const {
  return impl_->active_pairs.load();
}
size_t FakeSessionAgent::listeners() const {
  return impl_->active_listeners.load();
}

// Moves src's submissions into dst's receive area; true when anything moved.
bool FakeSessionAgent::Impl::move(Side& src, Side& dst, bool* broken) {
  agentwire::RegionHeader& sh = src.h();
  agentwire::RegionHeader& dh = dst.h();
  const agentwire::RegionLayout& sl = src.l();
  const agentwire::RegionLayout& dl = dst.l();
  uint64_t tail = sh.sq_tail.load(std::memory_order_acquire);
  if (tail - src.sq_head > sl.sq_depth) {
    *broken = true;
    return false;
  }
  auto* sq = reinterpret_cast<agentwire::Submission*>(src.base + sl.sq_offset);
  auto* cq = reinterpret_cast<agentwire::Arrival*>(dst.base + dl.cq_offset);
  uint64_t moved = 0;
  uint64_t bytes = 0;
  while (src.sq_head != tail) {
    if (dst.cq_tail - dh.cq_head.load(std::memory_order_acquire) >= dl.cq_depth) break;
    agentwire::Submission s = sq[src.sq_head & (sl.sq_depth - 1)];
    if (s.length == 0 || s.length > wire::kMaxMessageBytes ||
        s.staging_offset > sl.staging_bytes - s.length ||
        s.remote_offset > dl.receive_bytes - s.length || wire::immLength(s.imm) != s.length) {
      *broken = true;
      return false;
    }
    std::memcpy(dst.base + dl.receive_offset + s.remote_offset,
                src.base + sl.staging_offset + s.staging_offset, s.length);
    cq[dst.cq_tail & (dl.cq_depth - 1)] = {s.imm, s.length};
    ++dst.cq_tail;
    ++src.sq_head;
    ++moved;
    bytes += s.length;
  }
  if (moved == 0) return false;
  sh.sq_head.store(src.sq_head, std::memory_order_release);
  dh.cq_tail.store(dst.cq_tail, std::memory_order_release);
  sh.sq_completed.store(src.sq_head, std::memory_order_release);
  {
    std::lock_guard lock(mu);  // after publishing: a test that sees the count sees the data
    counters.submissions_moved += moved;
    counters.bytes_moved += bytes;
  }
  wake(dh.sidecar_sleeping, dst.to_sidecar.get(), [&] { countRing(); });
  wake(sh.sidecar_sleeping, src.to_sidecar.get(), [&] { countRing(); });  // staging was freed
  return true;
}

bool FakeSessionAgent::Impl::moveAll() {
  bool work = false;
  for (auto it = pairs.begin(); it != pairs.end();) {
    bool broken = false;
    work |= move((*it)->a, (*it)->b, &broken);
    work |= move((*it)->b, (*it)->a, &broken);
    if (broken) {
      closePair(it++);
      continue;
    }
    ++it;
  }
  return work;
}

void FakeSessionAgent::Impl::closePair(std::list<std::unique_ptr<Pair>>::iterator it) {
  for (Side* s : {&(*it)->a, &(*it)->b}) {
    s->h().closed.store(1, std::memory_order_seq_cst);
    wake(s->h().sidecar_sleeping, s->to_sidecar.get(), [&] { countRing(); });
  }
  pairs.erase(it);  // closes both connections
  active_pairs = pairs.size();
  std::lock_guard lock(mu);
  ++counters.sessions_closed;
}

void FakeSessionAgent::Impl::onClient(std::list<UniqueFd>::iterator it, bool* erase) {
  std::string body;
  std::vector<UniqueFd> fds;
  if (!recvMessage(it->get(), &body, &fds)) {
    for (auto l = listeners.begin(); l != listeners.end();) {
      l = l->second == it->get() ? listeners.erase(l) : std::next(l);
    }
    *erase = true;
    return;
  }
  if (body.empty() && fds.empty()) return;
  Json req = Json::parse(body, nullptr, false);
  std::string op = req.is_object() && req.contains("op") && req["op"].is_string()
                       ? req["op"].get<std::string>()
                       : "<bad>";
  Misbehaviour how;
  bool shm_mode;
  size_t hold_until;
  {
    std::lock_guard lock(mu);
    ops.push_back(op);
    how = misbehaviour;
    shm_mode = shm;
    hold_until = hold_offers_until_opens;
  }
  auto reply = [&](const Json& j, std::vector<int> out = {}) {
    sendMessage(it->get(), j.dump(), out);
  };
  if (op == "session_listen") {
    for (const auto& ip : req["pod_ips"]) listeners[ip.get<std::string>()] = it->get();
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (!req["pod_ips"].empty() &&
        ::getsockopt(it->get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
      std::lock_guard lock(mu);
      pid_ips[cred.pid] = req["pod_ips"][0].get<std::string>();
    }
    active_listeners = listeners.size();
    reply({{"ok", true}});
    return;
  }
  if (op == "session_refuse") {
    auto p = pending.find(req.value("offer_id", uint64_t{0}));
    if (p != pending.end()) {
      sendMessage(p->second.opener.conn.get(),
                  error("refused: " + req.value("reason", std::string())).dump());
      held.push_back(std::move(p->second.opener.conn));
      pending.erase(p);
    }
    std::lock_guard lock(mu);
    ++counters.refusals;
    reply({{"ok", true}});
    return;
  }
  if (op == "session_open") {
    switch (how) {
      case Misbehaviour::kNone:
        break;
      case Misbehaviour::kRefuse:
        return reply(error("no listener for the destination (test)"));
      case Misbehaviour::kSilent:
        held.push_back(std::move(*it));
        *erase = true;
        return;
      case Misbehaviour::kGarbage:
        sendMessage(it->get(), "{not json");
        return;
      case Misbehaviour::kNoMode:
        return reply({{"ok", true}});
      case Misbehaviour::kBadHello:
        return reply({{"ok", true}, {"mode", "agent"}, {"peer_hello", "zz"}});
      case Misbehaviour::kShmWithoutFd:
        return reply({{"ok", true}, {"mode", "shm"}});
      case Misbehaviour::kCloseConnection:
        *erase = true;
        return;
    }
    std::string dest = req.value("destination_ip", std::string());
    auto l = listeners.find(dest);
    if (l == listeners.end()) return reply(error("no sidecar listens for " + dest));
    Side opener;
    std::string hello_hex = req.value("hello", std::string());
    if (std::string e = mapSide(opener, fds, hello_hex); !e.empty()) return reply(error(e));
    auto hello = transport::parseHello(*transport::fromHex(hello_hex));
    std::string peer_ip;
    {
      // Who opened it: by the name in its Hello (tests with several sidecars in one process),
      // else by its process, as the real agent finds the pod by the caller's credentials.
      ucred cred{};
      socklen_t len = sizeof(cred);
      ::getsockopt(it->get(), SOL_SOCKET, SO_PEERCRED, &cred, &len);
      std::lock_guard lock(mu);
      auto by_name = pod_ips.find(hello->node_name);
      peer_ip = by_name != pod_ips.end() ? by_name->second : pid_ips[cred.pid];
    }
    uint64_t id = next_offer++;
    Json offer{{"event", "offer"},   {"offer_id", id},         {"peer_node", node},
               {"peer_ip", peer_ip}, {"destination_ip", dest}, {"peer_hello", hello_hex}};
    held_offers.emplace_back(l->second, offer.dump());
    if (++opens_seen >= hold_until) {
      for (const auto& [fd, message] : held_offers) sendMessage(fd, message);
      held_offers.clear();
    }
    opener.conn = std::move(*it);
    *erase = true;
    pending.emplace(id, Pending{id, std::move(opener)});
    return;
  }
  if (op == "session_accept") {
    auto p = pending.find(req.value("offer_id", uint64_t{0}));
    if (p == pending.end()) return reply(error("field 'offer_id': no such offer"));
    auto pair = std::make_unique<Pair>();
    pair->a = std::move(p->second.opener);
    pending.erase(p);
    if (std::string e = mapSide(pair->b, fds, req.value("hello", std::string())); !e.empty()) {
      sendMessage(pair->a.conn.get(), error("the peer's accept failed: " + e).dump());
      return reply(error(e));
    }
    {
      std::lock_guard lock(mu);
      ++counters.sessions_paired;
    }
    if (shm_mode) {
      int sp[2];
      ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp);
      sendMessage(pair->a.conn.get(), Json{{"ok", true}, {"mode", "shm"}}.dump(), {sp[0]});
      reply({{"ok", true}, {"mode", "shm"}}, {sp[1]});
      ::close(sp[0]);
      ::close(sp[1]);
      held.push_back(std::move(pair->a.conn));
      held.push_back(std::move(*it));
      *erase = true;
      return;
    }
    active_pairs = pairs.size() + 1;  // counted before either side hears it is paired
    sendMessage(pair->a.conn.get(),
                Json{{"ok", true}, {"mode", "agent"}, {"peer_hello", pair->b.hello_hex}}.dump());
    reply({{"ok", true}, {"mode", "agent"}});  // the acceptor has the peer's Hello from the offer
    pair->b.conn = std::move(*it);
    *erase = true;
    pairs.push_back(std::move(pair));
    active_pairs = pairs.size();
    return;
  }
  reply(error("field 'op': unknown op '" + op + "'"));
}

void FakeSessionAgent::Impl::run() {
  while (!stop) {
    if (close_all.exchange(false)) {
      while (!pairs.empty()) closePair(pairs.begin());
      held.clear();
    }
    active_pairs = pairs.size();
    active_listeners = listeners.size();
    if (moveAll()) continue;
    // Going to sleep: say so in every region, then look once more (agent_wire.h protocol).
    bool pending_work = false;
    for (auto& p : pairs) {
      for (Side* s : {&p->a, &p->b}) {
        s->h().agent_sleeping.store(1, std::memory_order_seq_cst);
        pending_work |= s->h().sq_tail.load(std::memory_order_seq_cst) != s->sq_head;
      }
    }
    if (pending_work) {
      for (auto& p : pairs) p->a.h().agent_sleeping = 0, p->b.h().agent_sleeping = 0;
      continue;
    }
    std::vector<pollfd> fds{{wake_fd.get(), POLLIN, 0}, {listen.get(), POLLIN, 0}};
    for (auto& c : clients) fds.push_back({c.get(), POLLIN, 0});
    size_t pair_base = fds.size();
    for (auto& p : pairs) {
      for (Side* s : {&p->a, &p->b}) {
        fds.push_back({s->conn.get(), POLLIN, 0});
        fds.push_back({s->to_agent.get(), POLLIN, 0});
      }
    }
    ::poll(fds.data(), fds.size(), 200);
    for (auto& p : pairs) p->a.h().agent_sleeping = 0, p->b.h().agent_sleeping = 0;
    uint64_t counter;
    (void)!::read(wake_fd.get(), &counter, sizeof(counter));
    if (fds[1].revents & POLLIN) {
      int c;
      while ((c = ::accept4(listen.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
        clients.emplace_back(c);
      }
    }
    size_t i = 2;
    for (auto it = clients.begin(); it != clients.end() && i < pair_base; ++i) {
      bool erase = false;
      if (fds[i].revents) onClient(it, &erase);
      it = erase ? clients.erase(it) : std::next(it);
    }
    // Session connections: a hang-up ends the pair; doorbells are counted and cleared. Only the
    // pairs that were polled: onClient() above may have appended new ones (no fds for them yet).
    i = pair_base;
    size_t polled = (fds.size() - pair_base) / 4;
    for (auto it = pairs.begin(); it != pairs.end() && polled > 0; --polled) {
      bool gone = false;
      for (int side = 0; side < 2; ++side, i += 2) {
        Side& s = side == 0 ? (*it)->a : (*it)->b;
        if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
          char b;
          if (::recv(s.conn.get(), &b, 1, MSG_DONTWAIT) == 0) gone = true;
        }
        // The eventfd's value is the number of rings since the last read: exact however late
        // this pass runs (a ring may land after poll() returned, before the flags were cleared).
        if (::read(s.to_agent.get(), &counter, sizeof(counter)) == sizeof(counter)) {
          std::lock_guard lock(mu);
          counters.doorbells_to_agent += counter;
        }
      }
      if (gone) {
        closePair(it++);
      } else {
        ++it;
      }
    }
  }
}

}  // namespace rdmesh::testing
