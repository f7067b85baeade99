#include "fake_sidecar.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "rdmesh/common/fd_passing.h"
#include "rdmesh/transport/agent_region.h"

namespace rdmesh::testing {

namespace aw = wire::agent;
using Clock = std::chrono::steady_clock;

namespace {

int remainingMs(Clock::time_point until) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
  return std::max<int>(0, static_cast<int>(left.count()));
}

}  // namespace

transport::Hello smallHello(const std::string& node) {
  transport::Hello hello;
  hello.fabric = wire::FabricKind::kTcp;
  hello.node_name = node;
  hello.geometry.max_streams = 4;
  hello.geometry.ring_bytes = 64 * 1024;
  hello.geometry.control_ring_bytes = 64 * 1024;
  hello.geometry.recv_depth = 256;
  return hello;
}

// ---- NodeSocketClient

Result<NodeSocketClient> NodeSocketClient::connect(const std::string& path) {
  NodeSocketClient c;
  c.fd_.reset(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(c.fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return unavailable("connect " + path + ": " + strerror(errno));
  }
  return c;
}

Status NodeSocketClient::send(const nlohmann::json& body, std::span<const int> fds) {
  std::string text = body.dump();
  if (sendDatagramWithFds(fd_.get(), text, fds, MSG_NOSIGNAL) !=
      static_cast<ssize_t>(text.size())) {
    return unavailable(std::string("sendmsg: ") + strerror(errno));
  }
  return {};
}

Result<nlohmann::json> NodeSocketClient::receive(std::vector<UniqueFd>* fds,
                                                 std::chrono::milliseconds timeout) {
  pollfd pfd{fd_.get(), POLLIN, 0};
  if (::poll(&pfd, 1, static_cast<int>(timeout.count())) != 1) {
    return Status{StatusCode::kTimeout, "no datagram from the agent in time"};
  }
  std::vector<char> buf(64 * 1024);
  iovec iov{buf.data(), buf.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 16)];
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n = ::recvmsg(fd_.get(), &msg, MSG_CMSG_CLOEXEC);
  if (n <= 0) return unavailable("the agent closed the connection");
  for (int f : passedFds(msg)) {
    if (fds != nullptr) {
      fds->emplace_back(f);
    } else {
      ::close(f);
    }
  }
  auto j = nlohmann::json::parse(std::string(buf.data(), static_cast<size_t>(n)), nullptr, false);
  if (j.is_discarded()) return protocolError("the agent sent invalid JSON");
  return j;
}

Result<nlohmann::json> NodeSocketClient::request(const nlohmann::json& body,
                                                 std::span<const int> fds,
                                                 std::vector<UniqueFd>* reply_fds,
                                                 std::chrono::milliseconds timeout) {
  nlohmann::json full = body;
  full["v"] = 1;
  if (Status s = send(full, fds); !s) return s;
  return receive(reply_fds, timeout);
}

bool NodeSocketClient::hungUp(std::chrono::milliseconds timeout) {
  if (!fd_) return true;
  pollfd pfd{fd_.get(), POLLIN | POLLRDHUP, 0};
  if (::poll(&pfd, 1, static_cast<int>(timeout.count())) != 1) return false;
  if ((pfd.revents & (POLLHUP | POLLRDHUP)) != 0) return true;
  char c;
  return ::recv(fd_.get(), &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

// ---- FakeRegion

Result<std::unique_ptr<FakeRegion>> FakeRegion::create(
    const transport::Hello& hello, RegionShape shape,
    const std::function<void(aw::RegionLayout&)>& corrupt) {
  auto r = std::make_unique<FakeRegion>();
  // Laid out as rdmesh-proxy lays out its regions; `corrupt` then spoils a copy.
  Result<aw::RegionLayout> built = transport::buildAgentRegionLayout(
      {shape.sq_depth, shape.cq_depth, hello.geometry.receiveAreaBytes(), shape.staging_bytes});
  if (!built) return built.status();
  r->layout_ = *built;
  aw::RegionLayout& l = r->layout_;
  uint64_t size = l.region_bytes;
  if (corrupt) corrupt(l);
  r->memfd_.reset(
      ::memfd_create("rdmesh-test-region", MFD_CLOEXEC | (shape.sealed ? MFD_ALLOW_SEALING : 0)));
  if (!r->memfd_ || ::ftruncate(r->memfd_.get(), static_cast<off_t>(size)) != 0) {
    return internalError(std::string("memfd: ") + strerror(errno));
  }
  if (shape.sealed && ::fcntl(r->memfd_.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) {
    return internalError(std::string("memfd seals: ") + strerror(errno));
  }
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, r->memfd_.get(), 0);
  if (p == MAP_FAILED) return internalError(std::string("mmap: ") + strerror(errno));
  r->base_ = static_cast<std::byte*>(p);
  std::memcpy(r->base_, &l, sizeof(l));
  r->layout_.region_bytes = size;  // what is mapped (the corrupted copy is in the memfd)
  r->to_agent_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  r->to_sidecar_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  return r;
}

FakeRegion::~FakeRegion() {
  if (base_ != nullptr) ::munmap(base_, layout_.region_bytes);
}

std::vector<int> FakeRegion::fds() const {
  return {memfd_.get(), to_agent_.get(), to_sidecar_.get()};
}

std::span<std::byte> FakeRegion::staging() {
  return {base_ + layout_.staging_offset, layout_.staging_bytes};
}

std::span<std::byte> FakeRegion::receiveArea() {
  return {base_ + layout_.receive_offset, layout_.receive_bytes};
}

void FakeRegion::submitRaw(const aw::Submission& s) {
  aw::RegionHeader& h = header();
  uint64_t tail = h.sq_tail.load(std::memory_order_relaxed);
  auto* queue = reinterpret_cast<aw::Submission*>(base_ + layout_.sq_offset);
  queue[tail & (layout_.sq_depth - 1)] = s;
  h.sq_tail.store(tail + 1, std::memory_order_seq_cst);
  if (h.agent_sleeping.load(std::memory_order_seq_cst) != 0 &&
      h.agent_sleeping.exchange(0, std::memory_order_seq_cst) != 0) {
    ::eventfd_write(to_agent_.get(), 1);
  }
}

Status FakeRegion::submit(uint64_t staging_offset, uint64_t remote_offset,
                          std::span<const std::byte> bytes, uint32_t slot) {
  if (staging_offset + bytes.size() > layout_.staging_bytes) {
    return invalidArgument("does not fit the staging");
  }
  std::memcpy(base_ + layout_.staging_offset + staging_offset, bytes.data(), bytes.size());
  auto len = static_cast<uint32_t>(bytes.size());
  submitRaw({staging_offset, remote_offset, len, wire::encodeImm(wire::ImmType::kData, slot, len)});
  return {};
}

std::optional<aw::Arrival> FakeRegion::nextArrival(std::chrono::milliseconds timeout) {
  aw::RegionHeader& h = header();
  auto until = Clock::now() + timeout;
  auto* queue = reinterpret_cast<aw::Arrival*>(base_ + layout_.cq_offset);
  for (;;) {
    uint64_t head = h.cq_head.load(std::memory_order_relaxed);
    if (h.cq_tail.load(std::memory_order_acquire) != head) {
      aw::Arrival a = queue[head & (layout_.cq_depth - 1)];
      h.cq_head.store(head + 1, std::memory_order_release);
      return a;
    }
    if (Clock::now() >= until) return std::nullopt;
    h.sidecar_sleeping.store(1, std::memory_order_seq_cst);
    if (h.cq_tail.load(std::memory_order_seq_cst) == head) {
      pollfd pfd{to_sidecar_.get(), POLLIN, 0};
      ::poll(&pfd, 1, remainingMs(until));
      eventfd_t v;
      ::eventfd_read(to_sidecar_.get(), &v);
    }
    h.sidecar_sleeping.store(0, std::memory_order_relaxed);
  }
}

bool FakeRegion::waitCompleted(std::chrono::milliseconds timeout) {
  auto until = Clock::now() + timeout;
  aw::RegionHeader& h = header();
  while (h.sq_completed.load(std::memory_order_acquire) != h.sq_tail.load()) {
    if (Clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace rdmesh::testing
