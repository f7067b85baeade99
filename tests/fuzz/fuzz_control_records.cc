// libFuzzer target for control-record batches (the payload of kControl writes). Beyond "never
// crash": a rejected batch hands out no records and leaves earlier output alone; an accepted one
// re-encodes (through ControlEncoder) to a batch that parses to the same records.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "rdmesh/transport/control_codec.h"
#include "rdmesh/transport/wire.h"

namespace {

using rdmesh::transport::ControlEncoder;
using rdmesh::transport::ControlRecord;
using rdmesh::wire::ControlType;

[[noreturn]] void failProperty(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "fuzz_control_records: %s\n%s\n", what, detail.c_str());
  std::abort();
}

void encode(ControlEncoder& enc, const ControlRecord& r) {
  switch (r.type) {
    case ControlType::kOpen:
      enc.open(r.stream, r.destination, r.identity);
      break;
    case ControlType::kOpenAck:
      enc.openAck(r.stream, r.acceptor_stream);
      break;
    case ControlType::kFin:
      enc.fin(r.stream);
      break;
    case ControlType::kReset:
      enc.reset(r.stream, r.reason);
      break;
    case ControlType::kCredit:
      enc.credit(r.stream, r.value);
      break;
    case ControlType::kSessionCredit:
      enc.sessionCredit(r.value, r.value2);
      break;
    case ControlType::kPing:
      enc.ping(r.value);
      break;
    case ControlType::kPong:
      enc.pong(r.value);
      break;
    case ControlType::kGoAway:
      enc.goAway();
      break;
    case ControlType::kIdleClose:
      if (r.value == 0 || r.value > rdmesh::wire::kMaxIdleCloseStep) {
        failProperty("accepted an IDLE_CLOSE step out of range");
      }
      enc.idleClose(static_cast<rdmesh::wire::IdleCloseStep>(r.value));
      break;
  }
}

// Whether the record type addresses a stream (the others always encode stream 0).
bool hasStream(ControlType t) {
  return t == ControlType::kOpen || t == ControlType::kOpenAck || t == ControlType::kFin ||
         t == ControlType::kReset || t == ControlType::kCredit;
}

bool same(const ControlRecord& a, const ControlRecord& b) {
  if (a.type != b.type) return false;
  if (hasStream(a.type) && a.stream != b.stream) return false;
  switch (a.type) {
    case ControlType::kOpen:
      return a.destination == b.destination && a.identity == b.identity;
    case ControlType::kOpenAck:
      return a.acceptor_stream == b.acceptor_stream;
    case ControlType::kReset:
      return a.reason == b.reason;
    case ControlType::kCredit:
    case ControlType::kPing:
    case ControlType::kPong:
    case ControlType::kIdleClose:
      return a.value == b.value;
    case ControlType::kSessionCredit:
      return a.value == b.value && a.value2 == b.value2;
    case ControlType::kFin:
    case ControlType::kGoAway:
      return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using rdmesh::StatusCode;
  using rdmesh::transport::parseControlBatch;
  std::span<const std::byte> batch(reinterpret_cast<const std::byte*>(data), size);

  std::vector<ControlRecord> out(1);  // parse appends: an earlier record must survive
  out[0].type = ControlType::kPong;
  out[0].value = 0x5EED;
  rdmesh::Status st = parseControlBatch(batch, out);
  if (out.empty() || out[0].type != ControlType::kPong || out[0].value != 0x5EED) {
    failProperty("earlier output was disturbed");
  }
  if (!st.isOk()) {
    if (st.code() != StatusCode::kProtocolError)
      failProperty("rejected with another code", st.message());
    if (out.size() != 1) failProperty("a rejected batch handed out records", st.message());
    return 0;
  }
  if ((out.size() - 1) * sizeof(rdmesh::wire::ControlRecordHeader) > size) {
    failProperty("more records than the batch can hold");
  }
  ControlEncoder enc;
  for (size_t i = 1; i < out.size(); ++i) {
    const ControlRecord& r = out[i];
    if (static_cast<uint8_t>(r.type) == 0 ||
        static_cast<uint8_t>(r.type) > rdmesh::wire::kMaxControlType) {
      failProperty("accepted an unknown record type");
    }
    if (r.type == ControlType::kOpen) {
      // The identity points into the input batch.
      auto* begin = reinterpret_cast<const char*>(data);
      if (r.identity.size() > rdmesh::wire::kMaxIdentityBytes ||
          (!r.identity.empty() &&
           (r.identity.data() < begin || r.identity.data() + r.identity.size() > begin + size))) {
        failProperty("identity outside the batch");
      }
    }
    encode(enc, r);
  }
  if (enc.size() != size) failProperty("re-encoded batch has another size");
  std::vector<ControlRecord> again;
  rdmesh::Status st2 = parseControlBatch(enc.bytes(), again);
  if (!st2.isOk()) failProperty("re-encoded batch does not parse", st2.message());
  if (again.size() != out.size() - 1) failProperty("re-encoded batch has another record count");
  for (size_t i = 0; i < again.size(); ++i) {
    if (!same(again[i], out[i + 1])) failProperty("record changed through re-encoding");
  }
  return 0;
}
