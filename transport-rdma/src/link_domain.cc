// LinkDomain, control path: the device and protection domain opened once, memory registration,
// and the link bootstrap on the node-agent port: LinkHellos, then (both sides with RDMA) one
// VerbsQpInfo and one VerbsReady each way and an RC QP, or tcp frames on the same connection.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "link_domain_core.h"
#include "pair_link_tcp.h"
#include "pair_link_verbs.h"
#include "rdmesh/common/address.h"
#include "rdmesh/transport/link_codec.h"

namespace rdmesh::transport {

namespace {

// The dialer speaks first; the acceptor answers only a valid LinkHello.
Result<LinkHello> exchangeLinkHello(int fd, const LinkHello& ours, bool dialer, Deadline deadline) {
  auto encoded = encodeLinkHello(ours);
  if (dialer) {
    if (Status s = sendAll(fd, encoded, deadline); !s) return s;
  }
  auto peer =
      recvMessage(fd, sizeof(wire::link::LinkHelloHeader), linkHelloSize, parseLinkHello, deadline);
  if (!peer) return peer.status();
  if (auto version = negotiateLinkVersion(ours, *peer); !version) return version.status();
  if (!dialer) {
    if (Status s = sendAll(fd, encoded, deadline); !s) return s;
  }
  return peer;
}

class LinkDomainImpl : public LinkDomain {
 public:
  explicit LinkDomainImpl(LinkDomainOptions options) : options_(std::move(options)) {
    if (!options_.rdma) {
      unavailable_ = "RDMA is off in the configuration";
      core_ = std::make_shared<LinkDomainCore>();
      return;
    }
    auto device = chooseDevice(options_.verbs, nullptr);
    if (!device) {
      unavailable_ = device.status().message();
      core_ = std::make_shared<LinkDomainCore>();
      return;
    }
    VerbsPtr<ibv_pd> pd(ibv_alloc_pd(device->context.get()));
    if (!pd) {
      unavailable_ = verbsError("ibv_alloc_pd on " + device->name, errno).message();
      core_ = std::make_shared<LinkDomainCore>();
      return;
    }
    std::string gap = options_.on_demand_paging ? onDemandPagingGap(device->context.get())
                                                : "not enabled (fabric.on_demand_paging)";
    on_demand_ = gap.empty();
    on_demand_paging_ = on_demand_ ? "on" : fmt::format("off: {} on {}", gap, device->name);
    core_ =
        std::make_shared<LinkDomainCore>(std::move(device->context), device->name, std::move(pd));
  }

  wire::FabricKind kind() const override {
    return core_->hasRdma() ? wire::FabricKind::kVerbs : wire::FabricKind::kTcp;
  }
  const std::string& rdmaUnavailableReason() const override { return unavailable_; }
  const std::string& onDemandPaging() const override { return on_demand_paging_; }

  Result<std::shared_ptr<RegisteredMemory>> registerMemory(std::span<std::byte> bytes) override {
    if (bytes.empty()) return invalidArgument("link domain: cannot register 0 bytes");
    VerbsPtr<ibv_mr> mr;
    bool on_demand = false;
    if (core_->hasRdma()) {
      constexpr int kAccess = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;
      if (on_demand_) {
        mr.reset(
            ibv_reg_mr(core_->pd(), bytes.data(), bytes.size(), kAccess | IBV_ACCESS_ON_DEMAND));
        on_demand = mr != nullptr;
        if (!on_demand) {
          // The device said yes but this registration says no: pin this one.
          spdlog::warn("fabric: ibv_reg_mr(ON_DEMAND) of {} bytes on {}: {}; pinning it instead",
                       bytes.size(), core_->deviceName(), strerror(errno));
        }
      }
      if (!mr) mr.reset(ibv_reg_mr(core_->pd(), bytes.data(), bytes.size(), kAccess));
      if (!mr) {
        return explainRegistrationFailure(errno, bytes.size(), "sidecar memory",
                                          "attach fewer sidecar sessions");
      }
    }
    return std::shared_ptr<RegisteredMemory>(
        std::make_shared<LinkRegistration>(core_, bytes, std::move(mr), on_demand));
  }

  Result<int> listen(const std::string& address) override {
    auto addr = InetAddress::parse(address);
    if (!addr) return addr.status();
    return listenOn(addr->sockaddrPtr(), addr->sockaddrLen(), address);
  }

  Result<std::unique_ptr<PairLink>> connect(const std::string& address,
                                            Deadline deadline) override {
    auto fd = dialTcp(address, deadline);
    if (!fd) return fd.status();
    return bringUp(std::move(fd.value()), /*dialer=*/true, deadline);
  }

  Result<std::unique_ptr<PairLink>> accept(int fd, Deadline deadline) override {
    UniqueFd owned(fd);
    if (Status s = setNonBlocking(fd); !s) return s;
    tuneTcpSocket(fd);
    return bringUp(std::move(owned), /*dialer=*/false, deadline);
  }

 private:
  Result<std::unique_ptr<PairLink>> bringUp(UniqueFd fd, bool dialer, Deadline deadline) {
    LinkHello ours;
    ours.fabric = core_->hasRdma() ? wire::FabricKind::kVerbs : wire::FabricKind::kTcp;
    ours.node_name = options_.node_name;
    auto peer = exchangeLinkHello(fd.get(), ours, dialer, deadline);
    if (!peer) return peer.status();
    const std::string& name = peer->node_name;
    if (!core_->hasRdma()) return tcpLink(std::move(fd), name, {});
    if (peer->fabric != wire::FabricKind::kVerbs) {
      return tcpLink(std::move(fd), name, "the peer offers no RDMA");
    }

    // Offer our QP (or say why we cannot), learn the peer's.
    auto qp = openLinkQp(core_, options_, fd.get());
    VerbsPeerInfo offer;
    if (qp) {
      offer = linkOffer(*qp);
    } else {
      offer.reason = qp.status().message();
    }
    auto theirs = exchangeQpInfo(fd.get(), offer, deadline);
    if (!theirs) return theirs.status();
    if (!qp) return tcpLink(std::move(fd), name, qp.status().message());
    if (!theirs->offer) return tcpLink(std::move(fd), name, "peer: " + theirs->reason);

    // Both offered: connect our QP to theirs, then tell each other how it went.
    Status up = connectLinkQp(*qp, *theirs);
    auto their_ready = exchangeReady(fd.get(), {up.isOk(), up.message()}, deadline);
    if (!their_ready) return their_ready.status();
    if (!up) return tcpLink(std::move(fd), name, up.message());
    if (!their_ready->ok) return tcpLink(std::move(fd), name, "peer: " + their_ready->reason);
    spdlog::info(
        "pair link: to {} over {} GID[{}] {} (QP {} -> {}, mtu {})", name, core_->deviceName(),
        qp->path.gid_index, gidText(qp->path.gid), qp->qp->qp_num, theirs->qp_num,
        128 << static_cast<int>(std::min(qp->path.mtu, static_cast<ibv_mtu>(theirs->path_mtu))));
    return VerbsPairLink::create(std::move(fd), name, std::move(qp.value()),
                                 std::move(theirs.value()));
  }

  Result<std::unique_ptr<PairLink>> tcpLink(UniqueFd fd, const std::string& peer,
                                            std::string reason) {
    tuneTcpSocket(fd.get());
    return std::unique_ptr<PairLink>(
        new TcpPairLink(core_, std::move(fd), peer, std::move(reason), options_.send_depth));
  }

  LinkDomainOptions options_;
  std::string unavailable_;
  bool on_demand_ = false;
  std::string on_demand_paging_ = "off: no RDMA device";
  std::shared_ptr<LinkDomainCore> core_;
};

}  // namespace

std::unique_ptr<LinkDomain> makeLinkDomain(LinkDomainOptions options) {
  // Depths the QP and the peer's parser accept (wire.h limits for the receive side).
  uint32_t send = std::clamp<uint32_t>(options.send_depth, 16, 1u << 15);
  uint32_t recv = std::clamp(options.recv_depth, wire::kMinRecvDepth, wire::kMaxRecvDepth);
  if (send != options.send_depth || recv != options.recv_depth) {
    spdlog::warn("link domain: send_depth {} / recv_depth {} adjusted to {} / {}",
                 options.send_depth, options.recv_depth, send, recv);
    options.send_depth = send;
    options.recv_depth = recv;
  }
  return std::make_unique<LinkDomainImpl>(std::move(options));
}

}  // namespace rdmesh::transport
