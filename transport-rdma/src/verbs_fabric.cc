// verbs backend, control path: device and GID selection, QP bring-up (RESET -> INIT -> RTR ->
// RTS), and the bootstrap over TCP: Hellos, then one VerbsQpInfo and one VerbsReady each way.
// When either side cannot run RDMA the same bootstrap connection carries the tcp backend.
#include "verbs_fabric.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <random>

#include "memory_region.h"
#include "rdmesh/common/address.h"
#include "tcp_bootstrapped_fabric.h"
#include "tcp_fabric.h"

namespace rdmesh::transport {

namespace {

// Scanning the whole GID table is slow on some devices (rxe under emulation: ~24 s for 1024
// sysfs entries); the address-derived RoCEv2 GIDs sit at the first few indexes.
constexpr int kGidScanLimit = 8;
constexpr uint32_t kSendQueueDepth = 1024;
constexpr size_t kStagingBytes = size_t{4} << 20;
constexpr uint32_t kMaxInlineBytes = 220;
// RC retransmission: 4.096 us * 2^16 = 268 ms per try, 7 tries; RNR retries forever (the session's
// receive-WQE credits keep the peer from running out, so an RNR NAK is transient). 67 ms (14) was
// too short for a loaded, emulated peer: spurious retransmissions of multi-packet writes then ended
// once in a "remote invalid request" NAK from rxe's responder (Soft-RoCE bed, sanitizer build).
// A dead peer is noticed sooner anyway, through the bootstrap socket and the keepalive.
constexpr uint8_t kAckTimeout = 16;
constexpr uint8_t kRetryCount = 7;
constexpr uint8_t kRnrRetryInfinite = 7;
constexpr uint8_t kMinRnrTimer = 12;

Status verbsError(const std::string& what, int err) {
  return unavailable(fmt::format("{}: {}", what, strerror(err)));
}

std::string gidText(const ibv_gid& gid) {
  char text[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET6, gid.raw, text, sizeof(text));
  return text;
}

// The GID a RoCEv2 port derives from a local IP address: IPv4-mapped for IPv4, the address
// itself for IPv6.
Result<ibv_gid> gidForSocket(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return internalError(errnoText("getsockname"));
  }
  ibv_gid gid{};
  if (ss.ss_family == AF_INET) {
    gid.raw[10] = gid.raw[11] = 0xff;
    std::memcpy(gid.raw + 12, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, 4);
  } else {
    std::memcpy(gid.raw, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, 16);
  }
  return gid;
}

// The device, port and GID index this connection will use.
struct DeviceChoice {
  VerbsPtr<ibv_context> context;
  std::string name;
  int gid_index = -1;
  ibv_gid gid{};
  ibv_mtu mtu = IBV_MTU_1024;
};

Result<DeviceChoice> chooseDevice(const VerbsFabricOptions& options, const ibv_gid& wanted) {
  int count = 0;
  std::unique_ptr<ibv_device*, void (*)(ibv_device**)> list(ibv_get_device_list(&count),
                                                            ibv_free_device_list);
  if (!list || count == 0) return unavailable("no RDMA device");
  std::vector<std::string> tried;
  for (int i = 0; i < count; ++i) {
    std::string name = ibv_get_device_name(list.get()[i]);
    if (!options.device.empty() && name != options.device) continue;
    VerbsPtr<ibv_context> ctx(ibv_open_device(list.get()[i]));
    if (!ctx) {
      tried.push_back(fmt::format("{} (cannot open: {})", name, strerror(errno)));
      continue;
    }
    ibv_port_attr port{};
    if (ibv_query_port(ctx.get(), options.port, &port) != 0 || port.state != IBV_PORT_ACTIVE) {
      tried.push_back(fmt::format("{} (port {} not active)", name, options.port));
      continue;
    }
    auto matches = [&](int index, ibv_gid* out) {
      ibv_gid_entry entry{};
      if (ibv_query_gid_ex(ctx.get(), options.port, index, &entry, 0) != 0) return false;
      if (entry.gid_type != IBV_GID_TYPE_ROCE_V2 && port.link_layer == IBV_LINK_LAYER_ETHERNET) {
        return false;
      }
      std::memcpy(out->raw, entry.gid.raw, sizeof(out->raw));
      return options.gid_index >= 0 || std::memcmp(out->raw, wanted.raw, sizeof(wanted.raw)) == 0;
    };
    DeviceChoice choice;
    if (options.gid_index >= 0) {
      if (matches(options.gid_index, &choice.gid)) choice.gid_index = options.gid_index;
    } else {
      for (int g = 0; g < kGidScanLimit && g < port.gid_tbl_len; ++g) {
        if (matches(g, &choice.gid)) {
          choice.gid_index = g;
          break;
        }
      }
    }
    if (choice.gid_index < 0) {
      tried.push_back(options.gid_index >= 0
                          ? fmt::format("{} (GID index {} is not RoCEv2)", name, options.gid_index)
                          : fmt::format("{} (no RoCEv2 GID {} in indexes 0-{})", name,
                                        gidText(wanted), kGidScanLimit - 1));
      continue;
    }
    choice.context = std::move(ctx);
    choice.name = name;
    choice.mtu = port.active_mtu;
    return choice;
  }
  if (tried.empty()) return unavailable(fmt::format("RDMA device '{}' not found", options.device));
  return unavailable(fmt::format("no usable RDMA device: {}", fmt::join(tried, ", ")));
}

Status modifyQp(VerbsQp& q, ibv_qp_attr& attr, QpState to) {
  auto mask = q.state.prepare(to);
  if (!mask) return mask.status();
  attr.qp_state = toIbv(to);
  int rc = ibv_modify_qp(q.qp.get(), &attr, *mask);
  if (rc != 0) {
    return verbsError(
        fmt::format("ibv_modify_qp {} -> {}", toString(q.state.state()), toString(to)), rc);
  }
  q.state.commit(to);
  return {};
}

Status explainRegistrationFailure(int err, size_t bytes) {
  if (err == ENOMEM || err == EPERM || err == EAGAIN) {
    rlimit limit{};
    ::getrlimit(RLIMIT_MEMLOCK, &limit);
    return unavailable(fmt::format(
        "cannot register {} MiB of receive area ({}); RLIMIT_MEMLOCK is {}: raise it or lower "
        "transport.max_streams / ring_bytes",
        bytes >> 20, strerror(err),
        limit.rlim_cur == RLIM_INFINITY ? std::string("unlimited")
                                        : fmt::format("{} KiB", limit.rlim_cur >> 10)));
  }
  return verbsError("ibv_reg_mr", err);
}

// Creates the QP and everything it needs, posts the receive WQEs and moves it to INIT.
Result<VerbsQp> openQp(const VerbsFabricOptions& options, int socket_fd, std::span<std::byte> area,
                       uint32_t recv_wqes) {
  auto wanted = gidForSocket(socket_fd);
  if (!wanted) return wanted.status();
  auto device = chooseDevice(options, *wanted);
  if (!device) return device.status();
  VerbsQp q;
  q.device_name = device->name;
  q.port = options.port;
  q.gid_index = device->gid_index;
  q.gid = device->gid;
  q.path_mtu = device->mtu;
  q.context = std::move(device->context);

  ibv_device_attr attr{};
  if (int rc = ibv_query_device(q.context.get(), &attr); rc != 0) {
    return verbsError("ibv_query_device", rc);
  }
  q.send_depth = std::min<uint32_t>(kSendQueueDepth, static_cast<uint32_t>(attr.max_qp_wr));
  if (recv_wqes > static_cast<uint32_t>(attr.max_qp_wr) ||
      recv_wqes + q.send_depth > static_cast<uint32_t>(attr.max_cqe)) {
    return unavailable(
        fmt::format("{} allows {} WQEs per queue and {} CQEs; recv_depth {} needs more",
                    q.device_name, attr.max_qp_wr, attr.max_cqe, recv_wqes));
  }
  q.recv_wqes = recv_wqes;

  q.pd.reset(ibv_alloc_pd(q.context.get()));
  if (!q.pd) return verbsError("ibv_alloc_pd", errno);
  q.channel.reset(ibv_create_comp_channel(q.context.get()));
  if (!q.channel) return verbsError("ibv_create_comp_channel", errno);
  q.cq.reset(ibv_create_cq(q.context.get(), static_cast<int>(recv_wqes + q.send_depth), nullptr,
                           q.channel.get(), 0));
  if (!q.cq) return verbsError("ibv_create_cq", errno);

  q.area_mr.reset(ibv_reg_mr(q.pd.get(), area.data(), area.size(),
                             IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE));
  if (!q.area_mr) return explainRegistrationFailure(errno, area.size());
  auto staging = makeAnonymousRegion(kStagingBytes);
  if (!staging) return staging.status();
  q.staging = std::move(staging.value());
  q.staging_mr.reset(
      ibv_reg_mr(q.pd.get(), q.staging->bytes().data(), kStagingBytes, IBV_ACCESS_LOCAL_WRITE));
  if (!q.staging_mr) return explainRegistrationFailure(errno, kStagingBytes);

  ibv_qp_init_attr init{};
  init.send_cq = init.recv_cq = q.cq.get();
  init.qp_type = IBV_QPT_RC;
  init.sq_sig_all = 0;
  init.cap.max_send_wr = q.send_depth;
  init.cap.max_recv_wr = recv_wqes;
  init.cap.max_send_sge = 1;
  init.cap.max_recv_sge = 1;
  init.cap.max_inline_data = kMaxInlineBytes;
  q.qp.reset(ibv_create_qp(q.pd.get(), &init));
  if (!q.qp) {
    init.cap.max_inline_data = 0;  // some devices have no inline sends
    q.qp.reset(ibv_create_qp(q.pd.get(), &init));
  }
  if (!q.qp) return verbsError("ibv_create_qp", errno);
  q.max_inline = init.cap.max_inline_data;

  ibv_qp_attr a{};
  a.pkey_index = 0;
  a.port_num = q.port;
  a.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;
  if (Status s = modifyQp(q, a, QpState::kInit); !s) return s;

  std::vector<ibv_recv_wr> wrs(recv_wqes);
  for (uint32_t i = 0; i < recv_wqes; ++i) {
    wrs[i].wr_id = kRecvWrId;
    wrs[i].next = i + 1 < recv_wqes ? &wrs[i + 1] : nullptr;
  }
  ibv_recv_wr* bad = nullptr;
  if (int rc = ibv_post_recv(q.qp.get(), wrs.data(), &bad); rc != 0) {
    return verbsError("ibv_post_recv", rc);
  }
  std::random_device rd;
  q.psn = rd() & wire::kQpNumMask;
  return q;
}

Status connectQp(VerbsQp& q, const VerbsPeerInfo& peer) {
  if (isIpv4MappedGid(std::span<const uint8_t, 16>(q.gid.raw, 16)) !=
      isIpv4MappedGid(std::span<const uint8_t, 16>(peer.gid))) {
    ibv_gid pg{};
    std::memcpy(pg.raw, peer.gid.data(), 16);
    return unavailable(
        fmt::format("GID mismatch: ours {} and the peer's {} are not both IPv4 or "
                    "both IPv6 RoCEv2 GIDs",
                    gidText(q.gid), gidText(pg)));
  }
  ibv_qp_attr a{};
  a.path_mtu = std::min(q.path_mtu, static_cast<ibv_mtu>(peer.path_mtu));
  a.dest_qp_num = peer.qp_num;
  a.rq_psn = peer.psn;
  a.max_dest_rd_atomic = 1;
  a.min_rnr_timer = kMinRnrTimer;
  a.ah_attr.is_global = 1;
  std::memcpy(a.ah_attr.grh.dgid.raw, peer.gid.data(), 16);
  a.ah_attr.grh.sgid_index = static_cast<uint8_t>(q.gid_index);
  a.ah_attr.grh.hop_limit = 64;
  a.ah_attr.port_num = q.port;
  if (Status s = modifyQp(q, a, QpState::kRtr); !s) return s;
  a = {};
  a.timeout = kAckTimeout;
  a.retry_cnt = kRetryCount;
  a.rnr_retry = kRnrRetryInfinite;
  a.sq_psn = q.psn;
  a.max_rd_atomic = 1;
  return modifyQp(q, a, QpState::kRts);
}

template <typename SizeFn, typename ParseFn>
auto recvMessage(int fd, size_t header_bytes, SizeFn size_of, ParseFn parse, Deadline deadline)
    -> decltype(parse(std::span<const std::byte>())) {
  std::vector<std::byte> buf(header_bytes);
  if (Status s = recvAll(fd, buf, deadline); !s) return s;
  auto size = size_of(buf);
  if (!size) return size.status();
  buf.resize(*size);
  if (Status s = recvAll(fd, std::span(buf).subspan(header_bytes), deadline); !s) return s;
  return parse(buf);
}

class VerbsFabric : public TcpBootstrappedFabric {
 public:
  explicit VerbsFabric(VerbsFabricOptions options) : options_(std::move(options)) {
    int count = 0;
    ibv_device** list = ibv_get_device_list(&count);
    bool found = false;
    for (int i = 0; list != nullptr && i < count; ++i) {
      found |= options_.device.empty() || options_.device == ibv_get_device_name(list[i]);
    }
    if (list != nullptr) ibv_free_device_list(list);
    if (!found) {
      unavailable_ = options_.device.empty()
                         ? std::string("no RDMA device on this node")
                         : fmt::format("RDMA device '{}' not found", options_.device);
      spdlog::warn("verbs fabric: {}; sessions will run over tcp", unavailable_);
    }
  }

  wire::FabricKind kind() const override { return wire::FabricKind::kVerbs; }

 protected:
  // RDMA if both ends can, else tcp on the same socket.
  Result<std::unique_ptr<FabricConnection>> bringUp(UniqueFd fd, const Hello& local,
                                                    std::unique_ptr<MemoryRegion> area, bool dialer,
                                                    Deadline deadline) override {
    Hello ours = local;
    ours.fabric = unavailable_.empty() ? wire::FabricKind::kVerbs : wire::FabricKind::kTcp;
    auto hello = exchangeHello(fd.get(), ours, dialer, deadline);
    if (!hello) return hello.status();
    const std::string peer = hello->peer.node_name;
    if (!unavailable_.empty()) {
      return fallBack(std::move(fd), *hello, std::move(area), unavailable_);
    }
    if (hello->peer.fabric != wire::FabricKind::kVerbs) {
      return fallBack(std::move(fd), *hello, std::move(area), "the peer offers no RDMA");
    }

    // Offer our QP (or say why we cannot), learn the peer's.
    VerbsPeerInfo offer;
    auto qp = openQp(options_, fd.get(), area->bytes(), local.geometry.recv_depth);
    if (qp) {
      offer.offer = true;
      offer.path_mtu = static_cast<uint8_t>(qp->path_mtu);
      offer.qp_num = qp->qp->qp_num;
      offer.psn = qp->psn;
      std::memcpy(offer.gid.data(), qp->gid.raw, 16);
      offer.area_addr = reinterpret_cast<uintptr_t>(area->bytes().data());
      offer.area_bytes = area->bytes().size();
      offer.area_rkey = qp->area_mr->rkey;
      offer.recv_wqes = qp->recv_wqes;
    } else {
      offer.reason = qp.status().message();
    }
    if (Status s = sendAll(fd.get(), encodeVerbsQpInfo(offer), deadline); !s) return s;
    auto theirs = recvMessage(fd.get(), sizeof(wire::VerbsQpInfo), verbsQpInfoSize,
                              parseVerbsQpInfo, deadline);
    if (!theirs) return theirs.status();
    if (!qp) return fallBack(std::move(fd), *hello, std::move(area), qp.status().message());
    if (!theirs->offer) {
      return fallBack(std::move(fd), *hello, std::move(area), "peer: " + theirs->reason);
    }

    // Both offered: connect our QP to theirs, then tell each other how it went.
    Status up = checkPeerOffer(*theirs, hello->peer);
    if (up) up = connectQp(*qp, *theirs);
    VerbsReadyInfo ready{up.isOk(), up.message()};
    if (Status s = sendAll(fd.get(), encodeVerbsReady(ready), deadline); !s) return s;
    auto their_ready =
        recvMessage(fd.get(), sizeof(wire::VerbsReady), verbsReadySize, parseVerbsReady, deadline);
    if (!their_ready) return their_ready.status();
    if (!up) return fallBack(std::move(fd), *hello, std::move(area), up.message());
    if (!their_ready->ok) {
      return fallBack(std::move(fd), *hello, std::move(area), "peer: " + their_ready->reason);
    }
    spdlog::info(
        "verbs fabric: session to {} over {} GID[{}] {} (QP {} -> {}, mtu {})", peer,
        qp->device_name, qp->gid_index, gidText(qp->gid), qp->qp->qp_num, theirs->qp_num,
        128 << static_cast<int>(std::min(qp->path_mtu, static_cast<ibv_mtu>(theirs->path_mtu))));
    forgetFallback(peer);
    VerbsConnection::Parts parts{std::move(fd), std::move(hello.value()), std::move(area),
                                 std::move(qp.value()), std::move(theirs.value())};
    return VerbsConnection::create(std::move(parts));
  }

 private:
  static Status checkPeerOffer(const VerbsPeerInfo& offer, const Hello& peer_hello) {
    if (offer.area_bytes != peer_hello.geometry.receiveAreaBytes()) {
      return protocolError(fmt::format("peer registered a {}-byte area, its Hello implies {}",
                                       offer.area_bytes, peer_hello.geometry.receiveAreaBytes()));
    }
    if (offer.recv_wqes < peer_hello.geometry.recv_depth) {
      return protocolError(fmt::format("peer posted {} receive WQEs for a recv_depth of {}",
                                       offer.recv_wqes, peer_hello.geometry.recv_depth));
    }
    return {};
  }

  // The session runs over tcp on this very connection; the reason is logged once per peer.
  Result<std::unique_ptr<FabricConnection>> fallBack(UniqueFd fd, HelloExchange hello,
                                                     std::unique_ptr<MemoryRegion> area,
                                                     const std::string& reason) {
    {
      std::lock_guard lock(mu_);
      std::string& last = fallback_reasons_[hello.peer.node_name];
      if (last != reason) {
        spdlog::warn("verbs fabric: session to {} falls back to tcp: {}", hello.peer.node_name,
                     reason);
        last = reason;
      }
    }
    tuneTcpSocket(fd.get());
    return std::unique_ptr<FabricConnection>(
        new TcpConnection(std::move(fd), std::move(hello), std::move(area)));
  }

  void forgetFallback(const std::string& peer) {
    std::lock_guard lock(mu_);
    fallback_reasons_.erase(peer);
  }

  VerbsFabricOptions options_;
  std::string unavailable_;  // why this node cannot run RDMA at all, if it cannot
  std::mutex mu_;            // bootstrap threads run in parallel
  std::map<std::string, std::string> fallback_reasons_;
};

}  // namespace

std::unique_ptr<Fabric> makeVerbsFabric(VerbsFabricOptions options) {
  return std::make_unique<VerbsFabric>(std::move(options));
}

}  // namespace rdmesh::transport
