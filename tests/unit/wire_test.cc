// Wire format: immediates, stream references, the bootstrap Hello and control-record batches.
#include "rdmesh/transport/wire.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "rdmesh/common/address.h"
#include "rdmesh/transport/control_codec.h"
#include "rdmesh/transport/hello.h"

namespace rdmesh::transport {
namespace {

using ::testing::HasSubstr;
using wire::ControlType;
using wire::ImmType;
using wire::ResetReason;

// ---------------------------------------------------------------- immediates

TEST(Immediate, EncodesTypeSlotAndLengthAtTheirBoundaries) {
  for (ImmType type : {ImmType::kData, ImmType::kControl}) {
    for (uint32_t slot : {0u, 1u, 2047u, 4094u, 4095u}) {
      for (uint32_t length : {0u, 1u, 4096u, 65534u, 65535u}) {
        uint32_t imm = wire::encodeImm(type, slot, length);
        EXPECT_EQ(wire::immType(imm), type);
        EXPECT_EQ(wire::immSlot(imm), slot);
        EXPECT_EQ(wire::immLength(imm), length);
      }
    }
  }
}

TEST(Immediate, BitLayoutIsTypeSlotLength) {
  EXPECT_EQ(wire::encodeImm(ImmType::kData, 0, 0), 0x10000000u);
  EXPECT_EQ(wire::encodeImm(ImmType::kControl, 0, 0), 0x20000000u);
  EXPECT_EQ(wire::encodeImm(ImmType::kData, 4095, 65535), 0x1FFFFFFFu);
  EXPECT_EQ(wire::encodeImm(ImmType::kData, 1, 0), 0x10010000u);
  EXPECT_EQ(wire::encodeImm(ImmType::kData, 0, 1), 0x10000001u);
  EXPECT_EQ(wire::kMaxSlots, 4096u);
  EXPECT_EQ(wire::kMaxMessageBytes, 65535u);
}

TEST(Immediate, OutOfRangeFieldsAreMaskedNotSpilledIntoNeighbours) {
  // A slot of 4096 or a length of 65536 must not corrupt the type or the slot.
  uint32_t imm = wire::encodeImm(ImmType::kData, 4096 + 5, 65536 + 7);
  EXPECT_EQ(wire::immType(imm), ImmType::kData);
  EXPECT_EQ(wire::immSlot(imm), 5u);
  EXPECT_EQ(wire::immLength(imm), 7u);
}

TEST(StreamRef, EncodesSlotAndGenerationAtTheirBoundaries) {
  const uint32_t max_gen = (1u << wire::kGenerationBits) - 1;
  for (uint32_t slot : {0u, 1u, 4095u}) {
    for (uint32_t gen : {0u, 1u, 12345u, max_gen}) {
      uint32_t ref = wire::makeStreamRef(slot, gen);
      EXPECT_EQ(wire::refSlot(ref), slot);
      EXPECT_EQ(wire::refGeneration(ref), gen);
    }
  }
  EXPECT_EQ(wire::makeStreamRef(4095, max_gen), 0xFFFFFFFFu);
  EXPECT_EQ(wire::makeStreamRef(0, 0), 0u);
  // Slot bits are masked; the generation owns the upper 20 bits.
  EXPECT_EQ(wire::refSlot(wire::makeStreamRef(4096 + 3, 1)), 3u);
  EXPECT_EQ(wire::refGeneration(wire::makeStreamRef(4096 + 3, 1)), 1u);
}

TEST(Geometry, ReceiveAreaLayout) {
  EXPECT_EQ(wire::receiveAreaBytes(16384, 8, 4096), 16384u + 8 * 4096u);
  EXPECT_EQ(wire::streamRingOffset(16384, 0, 4096), 16384u);
  EXPECT_EQ(wire::streamRingOffset(16384, 7, 4096), 16384u + 7 * 4096u);
  // The largest geometry a Hello may announce does not overflow.
  EXPECT_EQ(
      wire::receiveAreaBytes(wire::kMaxControlRingBytes, wire::kMaxSlots, wire::kMaxRingBytes),
      uint64_t{wire::kMaxControlRingBytes} + uint64_t{4096} * (16u << 20));
  SessionGeometry g;
  g.max_streams = 8;
  g.ring_bytes = 4096;
  g.control_ring_bytes = 16384;
  EXPECT_EQ(g.receiveAreaBytes(), 16384u + 8 * 4096u);
}

// ---------------------------------------------------------------- hello

Hello validHello() {
  Hello h;
  h.version_min = 1;
  h.version_max = 1;
  h.fabric = wire::FabricKind::kShm;
  h.node_name = "node-a.example";
  h.geometry.max_streams = 64;
  h.geometry.ring_bytes = 8192;
  h.geometry.control_ring_bytes = 32768;
  h.geometry.recv_depth = 256;
  h.geometry.keepalive_timeout_ms = 1500;
  return h;
}

wire::HelloHeader headerOf(const std::vector<std::byte>& bytes) {
  wire::HelloHeader h;
  std::memcpy(&h, bytes.data(), sizeof(h));
  return h;
}

void setHeader(std::vector<std::byte>& bytes, const wire::HelloHeader& h) {
  std::memcpy(bytes.data(), &h, sizeof(h));
}

// Encodes validHello() with `mutate` applied to the header, and parses it.
template <typename F>
Result<Hello> parseMutated(F mutate) {
  auto bytes = encodeHello(validHello());
  auto h = headerOf(bytes);
  mutate(h);
  setHeader(bytes, h);
  return parseHello(bytes);
}

void expectRejected(const Result<Hello>& result, const std::string& substring) {
  ASSERT_FALSE(result.isOk()) << "expected a rejection mentioning '" << substring << "'";
  EXPECT_EQ(result.status().code(), StatusCode::kProtocolError);
  EXPECT_THAT(result.status().message(), HasSubstr(substring));
}

TEST(Hello, EncodeParseRoundTrip) {
  Hello in = validHello();
  auto bytes = encodeHello(in);
  ASSERT_EQ(bytes.size(), sizeof(wire::HelloHeader) + in.node_name.size());
  auto h = headerOf(bytes);
  EXPECT_EQ(h.magic, wire::kMagic);
  EXPECT_EQ(h.node_name_bytes, in.node_name.size());
  auto size = helloSize(bytes);
  ASSERT_TRUE(size.isOk());
  EXPECT_EQ(*size, bytes.size());

  auto out = parseHello(bytes);
  ASSERT_TRUE(out.isOk()) << out.status().message();
  EXPECT_EQ(out->version_min, in.version_min);
  EXPECT_EQ(out->version_max, in.version_max);
  EXPECT_EQ(out->fabric, in.fabric);
  EXPECT_EQ(out->node_name, in.node_name);
  EXPECT_EQ(out->geometry.max_streams, in.geometry.max_streams);
  EXPECT_EQ(out->geometry.ring_bytes, in.geometry.ring_bytes);
  EXPECT_EQ(out->geometry.control_ring_bytes, in.geometry.control_ring_bytes);
  EXPECT_EQ(out->geometry.recv_depth, in.geometry.recv_depth);
  EXPECT_EQ(out->geometry.keepalive_timeout_ms, in.geometry.keepalive_timeout_ms);
  EXPECT_EQ(encodeHello(*out), bytes);
}

TEST(Hello, DefaultsAreValid) {
  Hello h;
  h.node_name = "n";
  auto out = parseHello(encodeHello(h));
  ASSERT_TRUE(out.isOk()) << out.status().message();
  EXPECT_EQ(out->fabric, wire::FabricKind::kTcp);
}

TEST(Hello, AcceptsEveryFabricKind) {
  for (auto kind : {wire::FabricKind::kTcp, wire::FabricKind::kShm, wire::FabricKind::kVerbs}) {
    Hello h = validHello();
    h.fabric = kind;
    auto out = parseHello(encodeHello(h));
    ASSERT_TRUE(out.isOk()) << out.status().message();
    EXPECT_EQ(out->fabric, kind);
  }
}

TEST(Hello, RejectsTruncatedHeader) {
  auto bytes = encodeHello(validHello());
  for (size_t n : {size_t{0}, size_t{1}, sizeof(wire::HelloHeader) - 1}) {
    std::vector<std::byte> cut(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n));
    expectRejected(parseHello(cut), "truncated");
    EXPECT_FALSE(helloSize(cut).isOk());
  }
}

TEST(Hello, RejectsWrongTotalSize) {
  auto bytes = encodeHello(validHello());
  auto shorter = bytes;
  shorter.pop_back();
  expectRejected(parseHello(shorter), "expected");
  auto longer = bytes;
  longer.push_back(std::byte{'x'});
  expectRejected(parseHello(longer), "expected");
}

TEST(Hello, RejectsBadMagic) {
  auto r = parseMutated([](wire::HelloHeader& h) { h.magic = 0x50545448; });  // "HTTP"
  expectRejected(r, "bad magic");
  auto bytes = encodeHello(validHello());
  auto h = headerOf(bytes);
  h.magic = 0;
  setHeader(bytes, h);
  auto size = helloSize(bytes);
  ASSERT_FALSE(size.isOk());
  EXPECT_THAT(size.status().message(), HasSubstr("bad magic 0x00000000"));
}

TEST(Hello, RejectsBadVersions) {
  expectRejected(parseMutated([](wire::HelloHeader& h) { h.version_min = 0; }), "version");
  expectRejected(parseMutated([](wire::HelloHeader& h) {
                   h.version_min = 3;
                   h.version_max = 2;
                 }),
                 "version range 3..2");
  // A range we do not speak still parses: rejecting it is negotiateVersion's job.
  auto future = parseMutated([](wire::HelloHeader& h) {
    h.version_min = 7;
    h.version_max = 9;
  });
  ASSERT_TRUE(future.isOk());
  EXPECT_EQ(future->version_min, 7);
  EXPECT_EQ(future->version_max, 9);
}

TEST(Hello, RejectsUnknownFabricKind) {
  expectRejected(parseMutated([](wire::HelloHeader& h) { h.fabric_kind = 0; }), "fabric kind 0");
  expectRejected(parseMutated([](wire::HelloHeader& h) { h.fabric_kind = 5; }), "fabric kind 5");
}

TEST(Hello, NodeNameCharactersAndLength) {
  for (std::string bad : std::vector<std::string>{"Node-a", "node_a", "node a", "node/a", "nöde",
                                                  std::string("a\0b", 3)}) {
    Hello h = validHello();
    h.node_name = bad;
    expectRejected(parseHello(encodeHello(h)), "node name");
    EXPECT_FALSE(isValidNodeName(bad)) << bad;
  }
  for (std::string good :
       std::vector<std::string>{"a", "0", "a.b-c.9", std::string(wire::kMaxNodeNameBytes, 'z')}) {
    Hello h = validHello();
    h.node_name = good;
    auto r = parseHello(encodeHello(h));
    ASSERT_TRUE(r.isOk()) << r.status().message();
    EXPECT_EQ(r->node_name, good);
    EXPECT_TRUE(isValidNodeName(good));
  }
  EXPECT_FALSE(isValidNodeName(""));
  EXPECT_FALSE(isValidNodeName(std::string(wire::kMaxNodeNameBytes + 1, 'z')));

  Hello too_long = validHello();
  too_long.node_name = std::string(wire::kMaxNodeNameBytes + 1, 'z');
  expectRejected(parseHello(encodeHello(too_long)), "node name of 254 bytes");

  // A header that announces no name at all.
  auto bytes = encodeHello(validHello());
  auto h = headerOf(bytes);
  h.node_name_bytes = 0;
  setHeader(bytes, h);
  bytes.resize(sizeof(h));
  expectRejected(parseHello(bytes), "node name of 0 bytes");
}

TEST(Hello, MaxStreamsLimits) {
  expectRejected(parseMutated([](wire::HelloHeader& h) { h.max_streams = 0; }), "max_streams");
  expectRejected(parseMutated([](wire::HelloHeader& h) { h.max_streams = wire::kMaxSlots + 1; }),
                 "max_streams");
  EXPECT_TRUE(parseMutated([](wire::HelloHeader& h) { h.max_streams = 1; }).isOk());
  EXPECT_TRUE(parseMutated([](wire::HelloHeader& h) { h.max_streams = wire::kMaxSlots; }).isOk());
}

TEST(Hello, RingBytesMustBeAPowerOfTwoWithinLimits) {
  for (uint32_t bad : {0u, 4095u, 6144u, 4097u, wire::kMinRingBytes / 2, wire::kMaxRingBytes * 2,
                       wire::kMaxRingBytes + 1, 0x80000000u, 0xFFFFFFFFu}) {
    expectRejected(parseMutated([bad](wire::HelloHeader& h) { h.ring_bytes = bad; }), "ring_bytes");
  }
  for (uint32_t good : {wire::kMinRingBytes, 65536u, wire::kMaxRingBytes}) {
    auto r = parseMutated([good](wire::HelloHeader& h) { h.ring_bytes = good; });
    ASSERT_TRUE(r.isOk()) << r.status().message();
    EXPECT_EQ(r->geometry.ring_bytes, good);
  }
}

TEST(Hello, ControlRingLimits) {
  expectRejected(parseMutated([](wire::HelloHeader& h) {
                   h.control_ring_bytes = wire::kMinControlRingBytes - 1;
                 }),
                 "control_ring_bytes");
  expectRejected(parseMutated([](wire::HelloHeader& h) {
                   h.control_ring_bytes = wire::kMaxControlRingBytes + 1;
                 }),
                 "control_ring_bytes");
  EXPECT_TRUE(parseMutated([](wire::HelloHeader& h) {
                h.control_ring_bytes = wire::kMinControlRingBytes;
              }).isOk());
  EXPECT_TRUE(parseMutated([](wire::HelloHeader& h) {
                h.control_ring_bytes = wire::kMaxControlRingBytes;
              }).isOk());
}

TEST(Hello, RecvDepthLimits) {
  expectRejected(parseMutated([](wire::HelloHeader& h) { h.recv_depth = wire::kMinRecvDepth - 1; }),
                 "recv_depth");
  expectRejected(parseMutated([](wire::HelloHeader& h) { h.recv_depth = wire::kMaxRecvDepth + 1; }),
                 "recv_depth");
  EXPECT_TRUE(
      parseMutated([](wire::HelloHeader& h) { h.recv_depth = wire::kMinRecvDepth; }).isOk());
  EXPECT_TRUE(
      parseMutated([](wire::HelloHeader& h) { h.recv_depth = wire::kMaxRecvDepth; }).isOk());
}

TEST(Hello, KeepaliveMustBePositive) {
  expectRejected(parseMutated([](wire::HelloHeader& h) { h.keepalive_timeout_ms = 0; }),
                 "keepalive");
  EXPECT_TRUE(parseMutated([](wire::HelloHeader& h) { h.keepalive_timeout_ms = 1; }).isOk());
}

TEST(NegotiateVersion, PicksHighestCommonVersion) {
  Hello a, b;
  a.version_min = 1;
  a.version_max = 3;
  b.version_min = 2;
  b.version_max = 5;
  auto v = negotiateVersion(a, b);
  ASSERT_TRUE(v.isOk());
  EXPECT_EQ(*v, 3);
  EXPECT_EQ(negotiateVersion(b, a).value(), 3);

  b.version_min = 3;
  EXPECT_EQ(negotiateVersion(a, b).value(), 3);  // touching ranges

  Hello c, d;  // the defaults: what this build speaks
  auto same = negotiateVersion(c, d);
  ASSERT_TRUE(same.isOk());
  EXPECT_EQ(*same, wire::kVersionMax);
}

TEST(NegotiateVersion, DisjointRangesNameBothSides) {
  Hello a, b;
  a.version_min = 1;
  a.version_max = 2;
  b.version_min = 3;
  b.version_max = 4;
  auto v = negotiateVersion(a, b);
  ASSERT_FALSE(v.isOk());
  EXPECT_EQ(v.status().code(), StatusCode::kProtocolError);
  EXPECT_THAT(v.status().message(), HasSubstr("we speak 1..2, peer 3..4"));
  auto w = negotiateVersion(b, a);
  ASSERT_FALSE(w.isOk());
  EXPECT_THAT(w.status().message(), HasSubstr("we speak 3..4, peer 1..2"));
}

// ---------------------------------------------------------------- control records

InetAddress addr(const char* text) {
  auto a = InetAddress::parse(text);
  EXPECT_TRUE(a.isOk()) << text;
  return a.isOk() ? *a : InetAddress{};
}

std::vector<ControlRecord> parseOk(std::span<const std::byte> batch) {
  std::vector<ControlRecord> out;
  Status s = parseControlBatch(batch, out);
  EXPECT_TRUE(s.isOk()) << s.message();
  return out;
}

TEST(ControlCodec, EmptyBatchIsValid) {
  std::vector<ControlRecord> out;
  EXPECT_TRUE(parseControlBatch({}, out).isOk());
  EXPECT_TRUE(out.empty());
}

TEST(ControlCodec, RoundTripOfEveryRecordType) {
  const uint32_t ref = wire::makeStreamRef(4095, (1u << 20) - 1);
  const std::string identity = "spiffe://cluster.local/ns/default/sa/frontend";
  ControlEncoder enc;
  enc.open(ref, addr("10.1.2.3:8080"), identity);
  enc.open(7, addr("[2001:db8::1]:443"), "");
  enc.openAck(ref, wire::makeStreamRef(3, 9));
  enc.fin(12);
  enc.reset(13, ResetReason::kUpstreamRefused);
  enc.credit(14, 0xFFFFFFFFFFFFFFFFull);
  enc.sessionCredit(123456789012ull, 987654321ull);
  enc.ping(0x0102030405060708ull);
  enc.pong(42);
  enc.goAway();
  enc.idleClose(wire::IdleCloseStep::kRefuse);

  auto recs = parseOk(enc.bytes());
  ASSERT_EQ(recs.size(), 11u);

  EXPECT_EQ(recs[0].type, ControlType::kOpen);
  EXPECT_EQ(recs[0].stream, ref);
  EXPECT_EQ(recs[0].destination, addr("10.1.2.3:8080"));
  EXPECT_TRUE(recs[0].destination.isV4());
  EXPECT_EQ(recs[0].identity, identity);

  EXPECT_EQ(recs[1].type, ControlType::kOpen);
  EXPECT_EQ(recs[1].stream, 7u);
  EXPECT_EQ(recs[1].destination, addr("[2001:db8::1]:443"));
  EXPECT_FALSE(recs[1].destination.isV4());
  EXPECT_EQ(recs[1].identity, "");

  EXPECT_EQ(recs[2].type, ControlType::kOpenAck);
  EXPECT_EQ(recs[2].stream, ref);
  EXPECT_EQ(recs[2].acceptor_stream, wire::makeStreamRef(3, 9));

  EXPECT_EQ(recs[3].type, ControlType::kFin);
  EXPECT_EQ(recs[3].stream, 12u);

  EXPECT_EQ(recs[4].type, ControlType::kReset);
  EXPECT_EQ(recs[4].stream, 13u);
  EXPECT_EQ(recs[4].reason, ResetReason::kUpstreamRefused);

  EXPECT_EQ(recs[5].type, ControlType::kCredit);
  EXPECT_EQ(recs[5].stream, 14u);
  EXPECT_EQ(recs[5].value, 0xFFFFFFFFFFFFFFFFull);

  EXPECT_EQ(recs[6].type, ControlType::kSessionCredit);
  EXPECT_EQ(recs[6].value, 123456789012ull);
  EXPECT_EQ(recs[6].value2, 987654321ull);

  EXPECT_EQ(recs[7].type, ControlType::kPing);
  EXPECT_EQ(recs[7].value, 0x0102030405060708ull);

  EXPECT_EQ(recs[8].type, ControlType::kPong);
  EXPECT_EQ(recs[8].value, 42u);

  EXPECT_EQ(recs[9].type, ControlType::kGoAway);
  EXPECT_EQ(recs[9].stream, 0u);

  EXPECT_EQ(recs[10].type, ControlType::kIdleClose);
  EXPECT_EQ(recs[10].stream, 0u);
  EXPECT_EQ(recs[10].value, static_cast<uint64_t>(wire::IdleCloseStep::kRefuse));
}

TEST(ControlCodec, RecordSizesMatchTheWireStructs) {
  const size_t hdr = sizeof(wire::ControlRecordHeader);
  auto sizeOf = [](auto encode) {
    ControlEncoder enc;
    encode(enc);
    return enc.size();
  };
  EXPECT_EQ(sizeOf([](ControlEncoder& e) { e.open(1, addr("1.2.3.4:5"), "abc"); }),
            hdr + sizeof(wire::OpenBody) + 3);
  EXPECT_EQ(sizeOf([](ControlEncoder& e) { e.openAck(1, 2); }), hdr + sizeof(wire::OpenAckBody));
  EXPECT_EQ(sizeOf([](ControlEncoder& e) { e.fin(1); }), hdr);
  EXPECT_EQ(sizeOf([](ControlEncoder& e) { e.reset(1, ResetReason::kNoRoute); }),
            hdr + sizeof(wire::ResetBody));
  EXPECT_EQ(sizeOf([](ControlEncoder& e) { e.credit(1, 2); }), hdr + sizeof(wire::CreditBody));
  EXPECT_EQ(sizeOf([](ControlEncoder& e) { e.sessionCredit(1, 2); }),
            hdr + sizeof(wire::SessionCreditBody));
  EXPECT_EQ(sizeOf([](ControlEncoder& e) { e.ping(1); }), hdr + sizeof(wire::PingBody));
  EXPECT_EQ(sizeOf([](ControlEncoder& e) { e.pong(1); }), hdr + sizeof(wire::PingBody));
  EXPECT_EQ(sizeOf([](ControlEncoder& e) { e.goAway(); }), hdr);
  EXPECT_EQ(sizeOf([](ControlEncoder& e) { e.idleClose(wire::IdleCloseStep::kRequest); }),
            hdr + sizeof(wire::IdleCloseBody));
}

TEST(ControlCodec, OpenIdentityIsCappedAtItsLengthField) {
  ControlEncoder enc;
  std::string long_identity(400, 'x');
  enc.open(1, addr("1.2.3.4:5"), long_identity);
  EXPECT_EQ(enc.size(), wire::kMaxControlRecordBytes);
  auto recs = parseOk(enc.bytes());
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].identity, std::string(wire::kMaxIdentityBytes, 'x'));
}

TEST(ControlCodec, EveryResetReasonRoundTrips) {
  for (uint32_t r = 0; r <= static_cast<uint32_t>(ResetReason::kDraining); ++r) {
    ControlEncoder enc;
    enc.reset(5, static_cast<ResetReason>(r));
    auto recs = parseOk(enc.bytes());
    ASSERT_EQ(recs.size(), 1u);
    EXPECT_EQ(recs[0].reason, static_cast<ResetReason>(r));
    EXPECT_STRNE(toString(static_cast<ResetReason>(r)), "");
  }
}

TEST(ControlCodec, ParseAppendsToOutput) {
  ControlEncoder enc;
  enc.fin(1);
  std::vector<ControlRecord> out(2);
  ASSERT_TRUE(parseControlBatch(enc.bytes(), out).isOk());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[2].type, ControlType::kFin);
}

// A raw record: header with the given type and body_bytes, followed by `body`.
std::vector<std::byte> rawRecord(uint8_t type, uint16_t body_bytes, std::vector<std::byte> body,
                                 uint32_t stream = 1) {
  wire::ControlRecordHeader h{type, 0, body_bytes, stream};
  std::vector<std::byte> out(sizeof(h));
  std::memcpy(out.data(), &h, sizeof(h));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

void expectBatchRejected(std::span<const std::byte> batch, const std::string& substring) {
  std::vector<ControlRecord> out(1);  // a record from before must survive untouched
  out[0].type = ControlType::kPong;
  out[0].value = 77;
  Status s = parseControlBatch(batch, out);
  ASSERT_FALSE(s.isOk()) << "expected rejection mentioning '" << substring << "'";
  EXPECT_EQ(s.code(), StatusCode::kProtocolError);
  EXPECT_THAT(s.message(), HasSubstr(substring));
  ASSERT_EQ(out.size(), 1u) << "a rejected batch hands out no records";
  EXPECT_EQ(out[0].value, 77u);
}

TEST(ControlCodec, RejectsTruncatedHeader) {
  ControlEncoder enc;
  enc.fin(1);
  for (size_t n = 1; n < sizeof(wire::ControlRecordHeader); ++n) {
    expectBatchRejected(enc.bytes().first(n), "trailing bytes");
  }
  // A good record followed by a partial header.
  ControlEncoder two;
  two.ping(1);
  two.fin(2);
  expectBatchRejected(two.bytes().first(two.size() - 3), "trailing bytes");
}

TEST(ControlCodec, RejectsUnknownType) {
  for (uint8_t type :
       {uint8_t{0}, uint8_t{wire::kMaxControlType + 1}, uint8_t{0x80}, uint8_t{255}}) {
    expectBatchRejected(rawRecord(type, 0, {}), "unknown record type");
  }
}

TEST(ControlCodec, RejectsBodyOverrunningTheBatch) {
  auto rec = rawRecord(static_cast<uint8_t>(ControlType::kPing), 8, std::vector<std::byte>(7));
  expectBatchRejected(rec, "overruns");
  auto big =
      rawRecord(static_cast<uint8_t>(ControlType::kOpen), 0xFFFF, std::vector<std::byte>(20));
  expectBatchRejected(big, "overruns");
}

TEST(ControlCodec, RejectsBodyLengthMismatchForEveryType) {
  struct Case {
    ControlType type;
    size_t fixed;
  };
  const Case cases[] = {
      {ControlType::kOpenAck, sizeof(wire::OpenAckBody)},
      {ControlType::kFin, 0},
      {ControlType::kReset, sizeof(wire::ResetBody)},
      {ControlType::kCredit, sizeof(wire::CreditBody)},
      {ControlType::kSessionCredit, sizeof(wire::SessionCreditBody)},
      {ControlType::kPing, sizeof(wire::PingBody)},
      {ControlType::kPong, sizeof(wire::PingBody)},
      {ControlType::kGoAway, 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(toString(c.type));
    auto type = static_cast<uint8_t>(c.type);
    // The exact size parses.
    parseOk(rawRecord(type, static_cast<uint16_t>(c.fixed), std::vector<std::byte>(c.fixed)));
    // One more or one less does not.
    expectBatchRejected(
        rawRecord(type, static_cast<uint16_t>(c.fixed + 1), std::vector<std::byte>(c.fixed + 1)),
        "with body of");
    if (c.fixed > 0) {
      expectBatchRejected(
          rawRecord(type, static_cast<uint16_t>(c.fixed - 1), std::vector<std::byte>(c.fixed - 1)),
          "with body of");
    }
  }
  // OPEN: anything shorter than its fixed body.
  for (size_t n : {size_t{0}, size_t{1}, sizeof(wire::OpenBody) - 1}) {
    expectBatchRejected(rawRecord(static_cast<uint8_t>(ControlType::kOpen),
                                  static_cast<uint16_t>(n), std::vector<std::byte>(n)),
                        "OPEN record with body of");
  }
}

std::vector<std::byte> openRecord(uint8_t family, uint8_t identity_bytes, size_t tail_bytes) {
  wire::OpenBody body{};
  body.family = family;
  body.identity_bytes = identity_bytes;
  body.port = 80;
  body.address[0] = 10;
  std::vector<std::byte> bytes(sizeof(body) + tail_bytes, std::byte{'i'});
  std::memcpy(bytes.data(), &body, sizeof(body));
  return rawRecord(static_cast<uint8_t>(ControlType::kOpen), static_cast<uint16_t>(bytes.size()),
                   bytes);
}

TEST(ControlCodec, OpenIdentityLengthMustMatchTheBody) {
  parseOk(openRecord(4, 5, 5));
  expectBatchRejected(openRecord(4, 5, 4), "does not match identity");
  expectBatchRejected(openRecord(4, 5, 6), "does not match identity");
  expectBatchRejected(openRecord(6, 0, 1), "does not match identity");
  expectBatchRejected(openRecord(6, 255, 0), "does not match identity");
}

TEST(ControlCodec, OpenRejectsUnknownAddressFamily) {
  for (uint8_t family : {uint8_t{0}, uint8_t{2}, uint8_t{5}, uint8_t{10}, uint8_t{255}}) {
    expectBatchRejected(openRecord(family, 0, 0), "unknown address family");
  }
  auto v4_batch = openRecord(4, 0, 0);  // parsed records point into their batch
  auto v4 = parseOk(v4_batch);
  ASSERT_EQ(v4.size(), 1u);
  EXPECT_TRUE(v4[0].destination.isV4());
  EXPECT_EQ(v4[0].destination.port(), 80);
  auto v6_batch = openRecord(6, 3, 3);
  auto v6 = parseOk(v6_batch);
  ASSERT_EQ(v6.size(), 1u);
  EXPECT_FALSE(v6[0].destination.isV4());
  EXPECT_EQ(v6[0].identity, "iii");
}

TEST(ControlCodec, ABatchWithOneBadRecordIsRejectedWhole) {
  ControlEncoder good;
  good.open(1, addr("1.2.3.4:5"), "id");
  good.credit(2, 100);
  good.ping(3);
  auto bad = rawRecord(static_cast<uint8_t>(ControlType::kReset), 3, std::vector<std::byte>(3));

  // Bad record at the start, in the middle, at the end.
  std::vector<std::byte> front = bad;
  front.insert(front.end(), good.bytes().begin(), good.bytes().end());
  expectBatchRejected(front, "RESET record with body of 3 bytes");

  ControlEncoder tail;
  tail.fin(9);
  std::vector<std::byte> middle(good.bytes().begin(), good.bytes().end());
  middle.insert(middle.end(), bad.begin(), bad.end());
  middle.insert(middle.end(), tail.bytes().begin(), tail.bytes().end());
  expectBatchRejected(middle, "RESET");

  std::vector<std::byte> end(good.bytes().begin(), good.bytes().end());
  end.insert(end.end(), bad.begin(), bad.end());
  expectBatchRejected(end, "RESET");

  // Good records followed by a bad OPEN (family) are rejected whole too.
  std::vector<std::byte> bad_open(good.bytes().begin(), good.bytes().end());
  auto open = openRecord(9, 0, 0);
  bad_open.insert(bad_open.end(), open.begin(), open.end());
  expectBatchRejected(bad_open, "address family");

  // And the good records alone parse.
  EXPECT_EQ(parseOk(good.bytes()).size(), 3u);
}

TEST(ControlCodec, IdleCloseStepsOutsideTheEnumAreRejected) {
  auto idle = [](uint32_t step) {
    std::vector<std::byte> body(sizeof(wire::IdleCloseBody));
    std::memcpy(body.data(), &step, sizeof(step));
    return rawRecord(static_cast<uint8_t>(ControlType::kIdleClose), sizeof(step), body);
  };
  for (uint32_t step = 1; step <= wire::kMaxIdleCloseStep; ++step) {
    auto recs = parseOk(idle(step));
    ASSERT_EQ(recs.size(), 1u);
    EXPECT_EQ(recs[0].value, step);
  }
  for (uint32_t step : {0u, wire::kMaxIdleCloseStep + 1, 0xFFFFFFFFu}) {
    expectBatchRejected(idle(step), "IDLE_CLOSE with step " + std::to_string(step));
  }
  expectBatchRejected(rawRecord(static_cast<uint8_t>(ControlType::kIdleClose), 0, {}),
                      "IDLE_CLOSE record with body of 0 bytes");
}

TEST(ControlCodec, NamesOfTypes) {
  EXPECT_STREQ(toString(ControlType::kOpen), "OPEN");
  EXPECT_STREQ(toString(ControlType::kGoAway), "GOAWAY");
  EXPECT_STREQ(toString(ControlType::kIdleClose), "IDLE_CLOSE");
  EXPECT_STREQ(toString(static_cast<ControlType>(200)), "UNKNOWN");
}

}  // namespace
}  // namespace rdmesh::transport
