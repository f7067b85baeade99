// The device capabilities the node agent needs before it registers sidecar memory on demand
// (ODP): the checks run on the attributes a device reports, so they need no RDMA device here.
#include <gtest/gtest.h>
#include <infiniband/verbs.h>

#include "verbs_device.h"

namespace rdmesh::transport {
namespace {

ibv_device_attr_ex withOdp(uint64_t general, uint32_t rc) {
  ibv_device_attr_ex attr{};
  attr.odp_caps.general_caps = general;
  attr.odp_caps.per_transport_caps.rc_odp_caps = rc;
  return attr;
}

TEST(OnDemandPaging, ARnicWithRcSendAndWriteQualifies) {
  // What ConnectX-class devices report (plus bits the agent does not need).
  EXPECT_EQ(onDemandPagingGap(withOdp(IBV_ODP_SUPPORT | IBV_ODP_SUPPORT_IMPLICIT,
                                      IBV_ODP_SUPPORT_SEND | IBV_ODP_SUPPORT_RECV |
                                          IBV_ODP_SUPPORT_WRITE | IBV_ODP_SUPPORT_READ)),
            "");
}

TEST(OnDemandPaging, EachMissingCapabilityIsNamed) {
  // Soft-RoCE in Debian's 6.1 kernel reports no ODP at all.
  EXPECT_EQ(onDemandPagingGap(withOdp(0, 0)), "no on-demand paging");
  // Per-transport bits without the general one do not count.
  EXPECT_EQ(onDemandPagingGap(withOdp(0, IBV_ODP_SUPPORT_SEND | IBV_ODP_SUPPORT_WRITE)),
            "no on-demand paging");
  // Our writes gather from sidecar memory: the requester side.
  EXPECT_EQ(onDemandPagingGap(withOdp(IBV_ODP_SUPPORT, IBV_ODP_SUPPORT_WRITE)),
            "no on-demand paging for RC requests");
  // The peer's writes land in sidecar memory: the responder side of RDMA WRITE.
  EXPECT_EQ(
      onDemandPagingGap(withOdp(IBV_ODP_SUPPORT, IBV_ODP_SUPPORT_SEND | IBV_ODP_SUPPORT_RECV)),
      "no on-demand paging for RC RDMA writes");
  // UC or UD support is no substitute for RC.
  ibv_device_attr_ex uc = withOdp(IBV_ODP_SUPPORT, 0);
  uc.odp_caps.per_transport_caps.uc_odp_caps = IBV_ODP_SUPPORT_SEND | IBV_ODP_SUPPORT_WRITE;
  EXPECT_EQ(onDemandPagingGap(uc), "no on-demand paging for RC requests");
}

}  // namespace
}  // namespace rdmesh::transport
