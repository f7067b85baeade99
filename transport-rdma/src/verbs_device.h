// libibverbs pieces shared by the standalone verbs fabric (one context and PD per connection) and
// the node agent's link domain (one context and PD for every link): RAII handles, device and
// RoCEv2 GID selection by the bootstrap socket's address, RC QP creation and its RESET -> INIT ->
// RTR -> RTS moves, receive WQE posting, the completion-channel epoll set, and the bootstrap
// message exchange over the TCP socket.
#pragma once

#include <infiniband/verbs.h>

#include <memory>
#include <string>
#include <vector>

#include "rdmesh/common/status.h"
#include "rdmesh/transport/fabric.h"
#include "rdmesh/transport/qp_state_machine.h"
#include "rdmesh/transport/verbs_bootstrap.h"
#include "unix_fd.h"

namespace rdmesh::transport {

// wr_id of every receive WQE; sends carry their sequence number, which never gets this large.
inline constexpr uint64_t kRecvWrId = ~uint64_t{0};
// Inline sends up to this size when the device allows (no DMA read of the source).
inline constexpr uint32_t kMaxInlineBytes = 220;

struct VerbsDeleter {
  void operator()(ibv_context* p) const { ibv_close_device(p); }
  void operator()(ibv_pd* p) const { ibv_dealloc_pd(p); }
  void operator()(ibv_comp_channel* p) const { ibv_destroy_comp_channel(p); }
  void operator()(ibv_cq* p) const { ibv_destroy_cq(p); }
  void operator()(ibv_mr* p) const { ibv_dereg_mr(p); }
  void operator()(ibv_qp* p) const { ibv_destroy_qp(p); }
};
template <typename T>
using VerbsPtr = std::unique_ptr<T, VerbsDeleter>;

Status verbsError(const std::string& what, int err);
std::string gidText(const ibv_gid& gid);
// The GID a RoCEv2 port derives from the socket's local address (IPv4-mapped for IPv4).
Result<ibv_gid> gidForSocket(int fd);

// Where this end of an RC QP sits on the fabric: what RTR needs besides the peer's offer.
struct QpPath {
  uint8_t port = 1;
  int gid_index = -1;
  ibv_gid gid{};
  ibv_mtu mtu = IBV_MTU_1024;
};

// The RoCEv2 GID of `context`'s port that equals `wanted` (or options.gid_index when set), with
// the port's MTU; the error names the device and what was looked for.
Result<QpPath> findGid(ibv_context* context, const std::string& device_name,
                       const VerbsFabricOptions& options, const ibv_gid& wanted);

struct DeviceChoice {
  VerbsPtr<ibv_context> context;
  std::string name;
  QpPath path;  // gid_index < 0 when no GID was asked for
};
// The first device (options.device if set) whose port is active and, when `wanted` is given, has
// the RoCEv2 GID for it. The error lists every device tried and why it did not fit.
Result<DeviceChoice> chooseDevice(const VerbsFabricOptions& options, const ibv_gid* wanted);

// ENOMEM & co. explained with the memlock limit, which is what usually runs out; `remedy` says
// what else the operator can do ("lower transport.max_streams").
Status explainRegistrationFailure(int err, size_t bytes, const char* what, const char* remedy);

// An RC QP on `pd` using `cq` for both queues (no inline data when the device has none);
// *max_inline is what the device granted.
Result<VerbsPtr<ibv_qp>> createRcQp(ibv_pd* pd, ibv_cq* cq, uint32_t send_depth,
                                    uint32_t recv_depth, uint32_t* max_inline);
Status modifyQp(ibv_qp* qp, QpStateMachine& state, ibv_qp_attr& attr, QpState to);
// RESET -> INIT with local and remote write access.
Status initRcQp(ibv_qp* qp, QpStateMachine& state, uint8_t port);
// INIT -> RTR -> RTS towards the peer's offer (checks that both GIDs are of the same family).
Status connectRcQp(ibv_qp* qp, QpStateMachine& state, const QpPath& local, uint32_t local_psn,
                   const VerbsPeerInfo& peer);
// Posts `count` receive WQEs without scatter entries (a WRITE WITH IMMEDIATE needs no buffer);
// `scratch` is reused between calls.
Status postEmptyReceives(ibv_qp* qp, uint32_t count, std::vector<ibv_recv_wr>& scratch);
uint32_t randomPsn();

// An epoll fd, readable when the completion channel or the device's async event fd is (both set
// non-blocking): what the event loop sleeps on.
Result<UniqueFd> makeCompletionEpoll(ibv_comp_channel* channel, ibv_context* context);
// Takes and acknowledges the channel's event; true if there was one (the CQ is disarmed). One
// read: a CQ raises one event per arming, so a second read would only cost an EAGAIN syscall on
// every wake-up (a stray extra event keeps the level-triggered fd readable and is taken next).
bool takeCqEvent(ibv_comp_channel* channel, ibv_cq* cq);
// What the device lacks for registering memory on demand (ODP) on RC QPs that post RDMA writes
// from it and receive the peer's writes into it, or "" when it has everything.
std::string onDemandPagingGap(const ibv_device_attr_ex& attr);
std::string onDemandPagingGap(ibv_context* context);  // queries the device
// Async events that end every QP they name (or the device).
bool isFatalAsyncEvent(ibv_event_type type);
// A failed completion, saying whether it was a receive or one of our sends.
Status completionError(const ibv_wc& wc, const char* who);

// One VerbsQpInfo each way, then (after moving the QP) one VerbsReady each way.
Result<VerbsPeerInfo> exchangeQpInfo(int fd, const VerbsPeerInfo& ours, Deadline deadline);
Result<VerbsReadyInfo> exchangeReady(int fd, const VerbsReadyInfo& ours, Deadline deadline);

}  // namespace rdmesh::transport
