// verbs backend, control path: device and GID selection, QP bring-up (RESET -> INIT -> RTR ->
// RTS), and the bootstrap over TCP: Hellos, then one VerbsQpInfo and one VerbsReady each way.
// When either side cannot run RDMA the same bootstrap connection carries the tcp backend.
#include "verbs_fabric.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "memory_region.h"
#include "rdmesh/common/address.h"
#include "tcp_bootstrapped_fabric.h"
#include "tcp_fabric.h"

namespace rdmesh::transport {

namespace {

constexpr uint32_t kSendQueueDepth = 1024;
constexpr size_t kStagingBytes = size_t{4} << 20;
constexpr const char* kAreaRemedy = "lower transport.max_streams / ring_bytes";

// Creates the QP and everything it needs, posts the receive WQEs and moves it to INIT.
Result<VerbsQp> openQp(const VerbsFabricOptions& options, int socket_fd, std::span<std::byte> area,
                       uint32_t recv_wqes) {
  auto wanted = gidForSocket(socket_fd);
  if (!wanted) return wanted.status();
  auto device = chooseDevice(options, &wanted.value());
  if (!device) return device.status();
  VerbsQp q;
  q.device_name = device->name;
  q.path = device->path;
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
  if (!q.area_mr)
    return explainRegistrationFailure(errno, area.size(), "receive area", kAreaRemedy);
  auto staging = makeAnonymousRegion(kStagingBytes);
  if (!staging) return staging.status();
  q.staging = std::move(staging.value());
  q.staging_mr.reset(
      ibv_reg_mr(q.pd.get(), q.staging->bytes().data(), kStagingBytes, IBV_ACCESS_LOCAL_WRITE));
  if (!q.staging_mr) {
    return explainRegistrationFailure(errno, kStagingBytes, "send staging", kAreaRemedy);
  }

  auto qp = createRcQp(q.pd.get(), q.cq.get(), q.send_depth, recv_wqes, &q.max_inline);
  if (!qp) return qp.status();
  q.qp = std::move(qp.value());
  if (Status s = initRcQp(q.qp.get(), q.state, q.path.port); !s) return s;
  std::vector<ibv_recv_wr> wrs;
  if (Status s = postEmptyReceives(q.qp.get(), recv_wqes, wrs); !s) return s;
  q.psn = randomPsn();
  return q;
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
      offer.path_mtu = static_cast<uint8_t>(qp->path.mtu);
      offer.qp_num = qp->qp->qp_num;
      offer.psn = qp->psn;
      std::memcpy(offer.gid.data(), qp->path.gid.raw, 16);
      offer.area_addr = reinterpret_cast<uintptr_t>(area->bytes().data());
      offer.area_bytes = area->bytes().size();
      offer.area_rkey = qp->area_mr->rkey;
      offer.recv_wqes = qp->recv_wqes;
    } else {
      offer.reason = qp.status().message();
    }
    auto theirs = exchangeQpInfo(fd.get(), offer, deadline);
    if (!theirs) return theirs.status();
    if (!qp) return fallBack(std::move(fd), *hello, std::move(area), qp.status().message());
    if (!theirs->offer) {
      return fallBack(std::move(fd), *hello, std::move(area), "peer: " + theirs->reason);
    }

    // Both offered: connect our QP to theirs, then tell each other how it went.
    Status up = checkPeerOffer(*theirs, hello->peer);
    if (up) up = connectRcQp(qp->qp.get(), qp->state, qp->path, qp->psn, *theirs);
    auto their_ready = exchangeReady(fd.get(), {up.isOk(), up.message()}, deadline);
    if (!their_ready) return their_ready.status();
    if (!up) return fallBack(std::move(fd), *hello, std::move(area), up.message());
    if (!their_ready->ok) {
      return fallBack(std::move(fd), *hello, std::move(area), "peer: " + their_ready->reason);
    }
    spdlog::info(
        "verbs fabric: session to {} over {} GID[{}] {} (QP {} -> {}, mtu {})", peer,
        qp->device_name, qp->path.gid_index, gidText(qp->path.gid), qp->qp->qp_num, theirs->qp_num,
        128 << static_cast<int>(std::min(qp->path.mtu, static_cast<ibv_mtu>(theirs->path_mtu))));
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
