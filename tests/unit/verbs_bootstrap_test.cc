#include "rdmesh/transport/verbs_bootstrap.h"

#include <gtest/gtest.h>

#include <cstring>

namespace rdmesh::transport {
namespace {

VerbsPeerInfo sampleOffer() {
  VerbsPeerInfo info;
  info.offer = true;
  info.path_mtu = 3;  // 1024
  info.qp_num = 0x11;
  info.psn = 0xabcdef;
  info.gid = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 77, 1};
  info.area_addr = 0x7f0000000000;
  info.area_bytes = (256u << 10) * 256 + (256u << 10);
  info.area_rkey = 0x1234;
  info.recv_wqes = 4096;
  return info;
}

template <typename Field>
std::vector<std::byte> withField(std::vector<std::byte> bytes, size_t offset, Field value) {
  std::memcpy(bytes.data() + offset, &value, sizeof(value));
  return bytes;
}

TEST(VerbsBootstrap, OfferRoundTrips) {
  auto bytes = encodeVerbsQpInfo(sampleOffer());
  ASSERT_EQ(bytes.size(), sizeof(wire::VerbsQpInfo));
  ASSERT_EQ(*verbsQpInfoSize(bytes), bytes.size());
  auto parsed = parseVerbsQpInfo(bytes);
  ASSERT_TRUE(parsed.isOk()) << parsed.status().message();
  VerbsPeerInfo want = sampleOffer();
  EXPECT_TRUE(parsed->offer);
  EXPECT_EQ(parsed->path_mtu, want.path_mtu);
  EXPECT_EQ(parsed->qp_num, want.qp_num);
  EXPECT_EQ(parsed->psn, want.psn);
  EXPECT_EQ(parsed->gid, want.gid);
  EXPECT_EQ(parsed->area_addr, want.area_addr);
  EXPECT_EQ(parsed->area_bytes, want.area_bytes);
  EXPECT_EQ(parsed->area_rkey, want.area_rkey);
  EXPECT_EQ(parsed->recv_wqes, want.recv_wqes);
  EXPECT_TRUE(isIpv4MappedGid(std::span<const uint8_t, 16>(parsed->gid)));
}

TEST(VerbsBootstrap, DeclineCarriesItsReason) {
  VerbsPeerInfo decline;
  decline.reason = "no RDMA device";
  auto bytes = encodeVerbsQpInfo(decline);
  EXPECT_EQ(bytes.size(), sizeof(wire::VerbsQpInfo) + decline.reason.size());
  auto parsed = parseVerbsQpInfo(bytes);
  ASSERT_TRUE(parsed.isOk()) << parsed.status().message();
  EXPECT_FALSE(parsed->offer);
  EXPECT_EQ(parsed->reason, "no RDMA device");
}

TEST(VerbsBootstrap, EncoderClampsAndSanitisesReasons) {
  VerbsPeerInfo decline;
  decline.reason = std::string(1000, 'x') + "\n";
  auto parsed = parseVerbsQpInfo(encodeVerbsQpInfo(decline));
  ASSERT_TRUE(parsed.isOk());
  EXPECT_EQ(parsed->reason.size(), wire::kMaxVerbsReasonBytes);
  decline.reason = "line\nforged";
  parsed = parseVerbsQpInfo(encodeVerbsQpInfo(decline));
  ASSERT_TRUE(parsed.isOk());
  EXPECT_EQ(parsed->reason, "line?forged");
}

TEST(VerbsBootstrap, RejectsEveryBadField) {
  const auto good = encodeVerbsQpInfo(sampleOffer());
  struct Case {
    const char* name;
    std::vector<std::byte> bytes;
    const char* expect;
  };
  using W = wire::VerbsQpInfo;
  std::vector<std::byte> truncated(good.begin(), good.end() - 1);
  std::vector<std::byte> longer = good;
  longer.push_back(std::byte{0});
  const std::vector<Case> cases = {
      {"truncated", truncated, "truncated"},
      {"trailing bytes", longer, "expected"},
      {"magic", withField(good, offsetof(W, magic), uint32_t{0x12345678}), "magic"},
      {"version", withField(good, offsetof(W, version), uint16_t{2}), "version"},
      {"offer", withField(good, offsetof(W, offer), uint8_t{9}), "offer"},
      {"mtu low", withField(good, offsetof(W, path_mtu), uint8_t{0}), "mtu"},
      {"mtu high", withField(good, offsetof(W, path_mtu), uint8_t{6}), "mtu"},
      {"qpn zero", withField(good, offsetof(W, qp_num), uint32_t{0}), "qp number"},
      {"qpn wide", withField(good, offsetof(W, qp_num), uint32_t{1u << 24}), "qp number"},
      {"psn wide", withField(good, offsetof(W, psn), uint32_t{1u << 24}), "psn"},
      {"area wraps", withField(good, offsetof(W, area_addr), ~uint64_t{0}), "wraps"},
      {"area empty", withField(good, offsetof(W, area_bytes), uint64_t{0}), "empty"},
      {"few wqes", withField(good, offsetof(W, recv_wqes), uint32_t{1}), "receive WQEs"},
      {"reserved", withField(good, offsetof(W, reserved1), uint32_t{1}), "reserved"},
      {"reason too long", withField(good, offsetof(W, reason_bytes), uint16_t{1000}), "reason"},
  };
  for (const Case& c : cases) {
    auto parsed = parseVerbsQpInfo(c.bytes);
    ASSERT_FALSE(parsed.isOk()) << c.name;
    EXPECT_EQ(parsed.status().code(), StatusCode::kProtocolError) << c.name;
    EXPECT_NE(parsed.status().message().find(c.expect), std::string::npos)
        << c.name << ": " << parsed.status().message();
  }
  // An all-zero GID cannot route.
  auto zero_gid = good;
  std::memset(zero_gid.data() + offsetof(W, gid), 0, 16);
  EXPECT_FALSE(parseVerbsQpInfo(zero_gid).isOk());
  // An offer must not carry a reason; a decline must.
  auto offer_reason = withField(good, offsetof(W, reason_bytes), uint16_t{2});
  offer_reason.push_back(std::byte{'h'});
  offer_reason.push_back(std::byte{'i'});
  EXPECT_FALSE(parseVerbsQpInfo(offer_reason).isOk());
  auto empty_decline = withField(good, offsetof(W, offer), uint8_t{2});
  EXPECT_FALSE(parseVerbsQpInfo(empty_decline).isOk());
  // Reasons are printable text only.
  VerbsPeerInfo decline;
  decline.reason = "ok";
  auto bytes = encodeVerbsQpInfo(decline);
  bytes.back() = std::byte{0x1b};
  EXPECT_FALSE(parseVerbsQpInfo(bytes).isOk());
}

TEST(VerbsBootstrap, ReadyRoundTripsAndValidates) {
  auto ok = parseVerbsReady(encodeVerbsReady({true, ""}));
  ASSERT_TRUE(ok.isOk()) << ok.status().message();
  EXPECT_TRUE(ok->ok);
  auto failed = parseVerbsReady(encodeVerbsReady({false, "ibv_modify_qp INIT -> RTR: EINVAL"}));
  ASSERT_TRUE(failed.isOk());
  EXPECT_FALSE(failed->ok);
  EXPECT_EQ(failed->reason, "ibv_modify_qp INIT -> RTR: EINVAL");

  auto bytes = encodeVerbsReady({true, ""});
  EXPECT_FALSE(parseVerbsReady(withField(bytes, 0, uint32_t{1})).isOk());  // magic
  EXPECT_FALSE(parseVerbsReady(withField(bytes, offsetof(wire::VerbsReady, ok), uint8_t{2}))
                   .isOk());                                        // flag
  EXPECT_FALSE(parseVerbsReady(std::span(bytes).first(7)).isOk());  // short
  EXPECT_FALSE(parseVerbsReady(withField(bytes, offsetof(wire::VerbsReady, ok), uint8_t{0}))
                   .isOk());  // a failure without a reason
}

}  // namespace
}  // namespace rdmesh::transport
