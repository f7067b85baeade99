#include "verbs_device.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <random>

namespace rdmesh::transport {

namespace {

// Scanning the whole GID table is slow on some devices (rxe under emulation: ~24 s for 1024
// sysfs entries); the address-derived RoCEv2 GIDs sit at the first few indexes.
constexpr int kGidScanLimit = 8;
// RC retransmission: 4.096 us * 2^16 = 268 ms per try, 7 tries; RNR retries forever (receive-WQE
// credits keep the peer from running out, so an RNR NAK is transient). 67 ms (14) was too short
// for a loaded, emulated peer: spurious retransmissions of multi-packet writes then ended once in
// a "remote invalid request" NAK from rxe's responder (Soft-RoCE bed, sanitizer build). A dead
// peer is noticed sooner anyway, through the bootstrap socket and the keepalive.
constexpr uint8_t kAckTimeout = 16;
constexpr uint8_t kRetryCount = 7;
constexpr uint8_t kRnrRetryInfinite = 7;
constexpr uint8_t kMinRnrTimer = 12;

}  // namespace

Status verbsError(const std::string& what, int err) {
  return unavailable(fmt::format("{}: {}", what, strerror(err)));
}

std::string gidText(const ibv_gid& gid) {
  char text[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET6, gid.raw, text, sizeof(text));
  return text;
}

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

Result<QpPath> findGid(ibv_context* context, const std::string& device_name,
                       const VerbsFabricOptions& options, const ibv_gid& wanted) {
  ibv_port_attr port{};
  if (ibv_query_port(context, options.port, &port) != 0 || port.state != IBV_PORT_ACTIVE) {
    return unavailable(fmt::format("{} (port {} not active)", device_name, options.port));
  }
  auto matches = [&](int index, ibv_gid* out) {
    ibv_gid_entry entry{};
    if (ibv_query_gid_ex(context, options.port, index, &entry, 0) != 0) return false;
    if (entry.gid_type != IBV_GID_TYPE_ROCE_V2 && port.link_layer == IBV_LINK_LAYER_ETHERNET) {
      return false;
    }
    std::memcpy(out->raw, entry.gid.raw, sizeof(out->raw));
    return options.gid_index >= 0 || std::memcmp(out->raw, wanted.raw, sizeof(wanted.raw)) == 0;
  };
  QpPath path;
  path.port = options.port;
  path.mtu = port.active_mtu;
  if (options.gid_index >= 0) {
    if (matches(options.gid_index, &path.gid)) path.gid_index = options.gid_index;
  } else {
    for (int g = 0; g < kGidScanLimit && g < port.gid_tbl_len; ++g) {
      if (matches(g, &path.gid)) {
        path.gid_index = g;
        break;
      }
    }
  }
  if (path.gid_index < 0) {
    return unavailable(
        options.gid_index >= 0
            ? fmt::format("{} (GID index {} is not RoCEv2)", device_name, options.gid_index)
            : fmt::format("{} (no RoCEv2 GID {} in indexes 0-{})", device_name, gidText(wanted),
                          kGidScanLimit - 1));
  }
  return path;
}

Result<DeviceChoice> chooseDevice(const VerbsFabricOptions& options, const ibv_gid* wanted) {
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
    DeviceChoice choice;
    if (wanted != nullptr) {
      auto path = findGid(ctx.get(), name, options, *wanted);
      if (!path) {
        tried.push_back(path.status().message());
        continue;
      }
      choice.path = *path;
    } else {
      ibv_port_attr port{};
      if (ibv_query_port(ctx.get(), options.port, &port) != 0 || port.state != IBV_PORT_ACTIVE) {
        tried.push_back(fmt::format("{} (port {} not active)", name, options.port));
        continue;
      }
      choice.path.port = options.port;
      choice.path.mtu = port.active_mtu;
    }
    choice.context = std::move(ctx);
    choice.name = name;
    return choice;
  }
  if (tried.empty()) return unavailable(fmt::format("RDMA device '{}' not found", options.device));
  return unavailable(fmt::format("no usable RDMA device: {}", fmt::join(tried, ", ")));
}

Status explainRegistrationFailure(int err, size_t bytes, const char* what, const char* remedy) {
  if (err == ENOMEM || err == EPERM || err == EAGAIN) {
    rlimit limit{};
    ::getrlimit(RLIMIT_MEMLOCK, &limit);
    return unavailable(
        fmt::format("cannot register {} KiB of {} ({}); RLIMIT_MEMLOCK is {}: raise it or {}",
                    bytes >> 10, what, strerror(err),
                    limit.rlim_cur == RLIM_INFINITY ? std::string("unlimited")
                                                    : fmt::format("{} KiB", limit.rlim_cur >> 10),
                    remedy));
  }
  return verbsError("ibv_reg_mr", err);
}

Result<VerbsPtr<ibv_qp>> createRcQp(ibv_pd* pd, ibv_cq* cq, uint32_t send_depth,
                                    uint32_t recv_depth, uint32_t* max_inline) {
  ibv_qp_init_attr init{};
  init.send_cq = init.recv_cq = cq;
  init.qp_type = IBV_QPT_RC;
  init.sq_sig_all = 0;
  init.cap.max_send_wr = send_depth;
  init.cap.max_recv_wr = recv_depth;
  init.cap.max_send_sge = 1;
  init.cap.max_recv_sge = 1;
  init.cap.max_inline_data = kMaxInlineBytes;
  VerbsPtr<ibv_qp> qp(ibv_create_qp(pd, &init));
  if (!qp) {
    init.cap.max_inline_data = 0;  // some devices have no inline sends
    qp.reset(ibv_create_qp(pd, &init));
  }
  if (!qp) return verbsError("ibv_create_qp", errno);
  *max_inline = init.cap.max_inline_data;
  return qp;
}

Status modifyQp(ibv_qp* qp, QpStateMachine& state, ibv_qp_attr& attr, QpState to) {
  auto mask = state.prepare(to);
  if (!mask) return mask.status();
  attr.qp_state = toIbv(to);
  int rc = ibv_modify_qp(qp, &attr, *mask);
  if (rc != 0) {
    return verbsError(fmt::format("ibv_modify_qp {} -> {}", toString(state.state()), toString(to)),
                      rc);
  }
  state.commit(to);
  return {};
}

Status initRcQp(ibv_qp* qp, QpStateMachine& state, uint8_t port) {
  ibv_qp_attr a{};
  a.pkey_index = 0;
  a.port_num = port;
  a.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;
  return modifyQp(qp, state, a, QpState::kInit);
}

Status connectRcQp(ibv_qp* qp, QpStateMachine& state, const QpPath& local, uint32_t local_psn,
                   const VerbsPeerInfo& peer) {
  if (isIpv4MappedGid(std::span<const uint8_t, 16>(local.gid.raw, 16)) !=
      isIpv4MappedGid(std::span<const uint8_t, 16>(peer.gid))) {
    ibv_gid pg{};
    std::memcpy(pg.raw, peer.gid.data(), 16);
    return unavailable(
        fmt::format("GID mismatch: ours {} and the peer's {} are not both IPv4 or "
                    "both IPv6 RoCEv2 GIDs",
                    gidText(local.gid), gidText(pg)));
  }
  ibv_qp_attr a{};
  a.path_mtu = std::min(local.mtu, static_cast<ibv_mtu>(peer.path_mtu));
  a.dest_qp_num = peer.qp_num;
  a.rq_psn = peer.psn;
  a.max_dest_rd_atomic = 1;
  a.min_rnr_timer = kMinRnrTimer;
  a.ah_attr.is_global = 1;
  std::memcpy(a.ah_attr.grh.dgid.raw, peer.gid.data(), 16);
  a.ah_attr.grh.sgid_index = static_cast<uint8_t>(local.gid_index);
  a.ah_attr.grh.hop_limit = 64;
  a.ah_attr.port_num = local.port;
  if (Status s = modifyQp(qp, state, a, QpState::kRtr); !s) return s;
  a = {};
  a.timeout = kAckTimeout;
  a.retry_cnt = kRetryCount;
  a.rnr_retry = kRnrRetryInfinite;
  a.sq_psn = local_psn;
  a.max_rd_atomic = 1;
  return modifyQp(qp, state, a, QpState::kRts);
}

Status postEmptyReceives(ibv_qp* qp, uint32_t count, std::vector<ibv_recv_wr>& scratch) {
  if (count == 0) return {};
  if (scratch.size() < count) scratch.resize(count);
  for (uint32_t i = 0; i < count; ++i) {
    scratch[i] = {};
    scratch[i].wr_id = kRecvWrId;
    scratch[i].next = i + 1 < count ? &scratch[i + 1] : nullptr;
  }
  ibv_recv_wr* bad = nullptr;
  if (int rc = ibv_post_recv(qp, scratch.data(), &bad); rc != 0) {
    return verbsError("ibv_post_recv", rc);
  }
  return {};
}

uint32_t randomPsn() {
  std::random_device rd;
  return rd() & wire::kQpNumMask;
}

Result<UniqueFd> makeCompletionEpoll(ibv_comp_channel* channel, ibv_context* context) {
  UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
  if (!ep) return internalError(errnoText("epoll_create1"));
  for (int fd : {channel->fd, context->async_fd}) {
    if (Status s = setNonBlocking(fd); !s) return s;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      return internalError(errnoText("epoll_ctl(verbs channel)"));
    }
  }
  return ep;
}

bool takeCqEvent(ibv_comp_channel* channel, ibv_cq* cq) {
  ibv_cq* got = nullptr;
  void* context = nullptr;
  if (ibv_get_cq_event(channel, &got, &context) != 0) return false;
  ibv_ack_cq_events(cq, 1);
  return true;
}

std::string onDemandPagingGap(const ibv_device_attr_ex& attr) {
  if ((attr.odp_caps.general_caps & IBV_ODP_SUPPORT) == 0) return "no on-demand paging";
  uint32_t rc = attr.odp_caps.per_transport_caps.rc_odp_caps;
  // SEND covers the requester gathering local data (our writes); WRITE the responder side.
  if ((rc & IBV_ODP_SUPPORT_SEND) == 0) return "no on-demand paging for RC requests";
  if ((rc & IBV_ODP_SUPPORT_WRITE) == 0) return "no on-demand paging for RC RDMA writes";
  return {};
}

std::string onDemandPagingGap(ibv_context* context) {
  ibv_device_attr_ex attr{};
  if (int rc = ibv_query_device_ex(context, nullptr, &attr); rc != 0) {
    return fmt::format("ibv_query_device_ex: {}", strerror(rc));
  }
  return onDemandPagingGap(attr);
}

bool isFatalAsyncEvent(ibv_event_type type) {
  switch (type) {
    case IBV_EVENT_CQ_ERR:
    case IBV_EVENT_QP_FATAL:
    case IBV_EVENT_QP_REQ_ERR:
    case IBV_EVENT_QP_ACCESS_ERR:
    case IBV_EVENT_DEVICE_FATAL:
    case IBV_EVENT_PORT_ERR:
      return true;
    default:
      return false;
  }
}

Status completionError(const ibv_wc& wc, const char* who) {
  // The opcode of a failed completion is undefined: the wr_id says whether it was a receive.
  return unavailable(fmt::format("{}: {} failed: {} (vendor error {:#x})", who,
                                 wc.wr_id == kRecvWrId ? "receive" : "RDMA write",
                                 ibv_wc_status_str(wc.status), wc.vendor_err));
}

Result<VerbsPeerInfo> exchangeQpInfo(int fd, const VerbsPeerInfo& ours, Deadline deadline) {
  if (Status s = sendAll(fd, encodeVerbsQpInfo(ours), deadline); !s) return s;
  return recvMessage(fd, sizeof(wire::VerbsQpInfo), verbsQpInfoSize, parseVerbsQpInfo, deadline);
}

Result<VerbsReadyInfo> exchangeReady(int fd, const VerbsReadyInfo& ours, Deadline deadline) {
  if (Status s = sendAll(fd, encodeVerbsReady(ours), deadline); !s) return s;
  return recvMessage(fd, sizeof(wire::VerbsReady), verbsReadySize, parseVerbsReady, deadline);
}

}  // namespace rdmesh::transport
