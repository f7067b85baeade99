// verbs PairLink, control path: the link's QP, CQ and control rings on the domain's protection
// domain, our offer, and the move to RTS towards the peer's.
#include "pair_link_verbs.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

#include "rdmesh/transport/link_wire.h"

namespace rdmesh::transport {

namespace wl = wire::link;

Result<VerbsLinkQp> openLinkQp(std::shared_ptr<LinkDomainCore> core,
                               const LinkDomainOptions& options, int socket_fd) {
  auto wanted = gidForSocket(socket_fd);
  if (!wanted) return wanted.status();
  auto path = findGid(core->context(), core->deviceName(), options.verbs, *wanted);
  if (!path) return path.status();
  VerbsLinkQp q;
  q.core = core;
  q.path = *path;
  ibv_context* ctx = core->context();

  ibv_device_attr attr{};
  if (int rc = ibv_query_device(ctx, &attr); rc != 0) return verbsError("ibv_query_device", rc);
  q.send_depth = std::min(options.send_depth, static_cast<uint32_t>(attr.max_qp_wr));
  q.recv_depth = options.recv_depth;
  if (q.recv_depth > static_cast<uint32_t>(attr.max_qp_wr) ||
      q.recv_depth + q.send_depth > static_cast<uint32_t>(attr.max_cqe)) {
    return unavailable(
        fmt::format("{} allows {} WQEs per queue and {} CQEs; recv_depth {} needs more",
                    core->deviceName(), attr.max_qp_wr, attr.max_cqe, q.recv_depth));
  }

  q.channel.reset(ibv_create_comp_channel(ctx));
  if (!q.channel) return verbsError("ibv_create_comp_channel", errno);
  q.cq.reset(ibv_create_cq(ctx, static_cast<int>(q.recv_depth + q.send_depth), nullptr,
                           q.channel.get(), 0));
  if (!q.cq) return verbsError("ibv_create_cq", errno);

  constexpr const char* kRemedy = "give the node agent more locked memory";
  for (auto* side : {&q.control_in, &q.control_out}) {
    auto region = makeAnonymousRegion(wl::kControlRingBytes);
    if (!region) return region.status();
    *side = std::move(region.value());
  }
  q.control_in_mr.reset(ibv_reg_mr(core->pd(), q.control_in->bytes().data(), wl::kControlRingBytes,
                                   IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE));
  if (!q.control_in_mr) {
    return explainRegistrationFailure(errno, wl::kControlRingBytes, "link control ring", kRemedy);
  }
  q.control_out_mr.reset(ibv_reg_mr(core->pd(), q.control_out->bytes().data(),
                                    wl::kControlRingBytes, IBV_ACCESS_LOCAL_WRITE));
  if (!q.control_out_mr) {
    return explainRegistrationFailure(errno, wl::kControlRingBytes, "link control staging",
                                      kRemedy);
  }

  auto qp = createRcQp(core->pd(), q.cq.get(), q.send_depth, q.recv_depth, &q.max_inline);
  if (!qp) return qp.status();
  q.qp = std::move(qp.value());
  if (Status s = initRcQp(q.qp.get(), q.state, q.path.port); !s) return s;
  std::vector<ibv_recv_wr> wrs;
  if (Status s = postEmptyReceives(q.qp.get(), q.recv_depth, wrs); !s) return s;
  q.psn = randomPsn();
  return q;
}

VerbsPeerInfo linkOffer(const VerbsLinkQp& q) {
  VerbsPeerInfo offer;
  offer.offer = true;
  offer.path_mtu = static_cast<uint8_t>(q.path.mtu);
  offer.qp_num = q.qp->qp_num;
  offer.psn = q.psn;
  std::memcpy(offer.gid.data(), q.path.gid.raw, 16);
  offer.area_addr = reinterpret_cast<uintptr_t>(q.control_in->bytes().data());
  offer.area_bytes = wl::kControlRingBytes;
  offer.area_rkey = q.control_in_mr->rkey;
  offer.recv_wqes = q.recv_depth;
  return offer;
}

Status connectLinkQp(VerbsLinkQp& q, const VerbsPeerInfo& peer) {
  if (peer.area_bytes != wl::kControlRingBytes) {
    return protocolError(fmt::format("peer registered a {}-byte control ring, the protocol says {}",
                                     peer.area_bytes, wl::kControlRingBytes));
  }
  return connectRcQp(q.qp.get(), q.state, q.path, q.psn, peer);
}

Result<std::unique_ptr<PairLink>> VerbsPairLink::create(UniqueFd socket, std::string peer_node,
                                                        VerbsLinkQp qp, VerbsPeerInfo peer) {
  std::unique_ptr<VerbsPairLink> link(
      new VerbsPairLink(std::move(socket), std::move(peer_node), std::move(qp), std::move(peer)));
  if (Status s = link->init(); !s) return s;
  return std::unique_ptr<PairLink>(std::move(link));
}

VerbsPairLink::VerbsPairLink(UniqueFd socket, std::string peer_node, VerbsLinkQp qp,
                             VerbsPeerInfo peer)
    : q_(std::move(qp)),
      socket_(std::move(socket)),
      peer_node_(std::move(peer_node)),
      peer_(std::move(peer)) {}

VerbsPairLink::~VerbsPairLink() {
  // CQ events were acknowledged as they were read (ibv_destroy_cq waits for unacknowledged
  // ones); async errors filed for this QP and CQ go with them.
  q_.core->forgetAsync(q_.qp.get(), q_.cq.get());
}

Status VerbsPairLink::init() {
  auto ep = makeCompletionEpoll(q_.channel.get(), q_.core->context());
  if (!ep) return ep.status();
  event_fd_ = std::move(ep.value());
  slots_.resize(q_.send_depth);
  recv_wrs_.resize(q_.recv_depth);
  ready_.reserve(q_.recv_depth);
  return {};
}

}  // namespace rdmesh::transport
