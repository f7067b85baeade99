// libFuzzer target for the verbs bootstrap messages (VerbsQpInfo, VerbsReady), which a peer sends
// before any RDMA runs. Beyond "never crash": every rejection is a ProtocolError with a message,
// every accepted message is within the documented limits, and re-encoding it gives the same bytes.
// The first input byte picks the message type.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>

#include "rdmesh/transport/verbs_bootstrap.h"
#include "rdmesh/transport/wire.h"

namespace {

[[noreturn]] void failProperty(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "fuzz_verbs_bootstrap: %s\n%s\n", what, detail.c_str());
  std::abort();
}

void checkRejection(const rdmesh::Status& status) {
  if (status.code() != rdmesh::StatusCode::kProtocolError) {
    failProperty("rejected with a code other than ProtocolError", status.message());
  }
  if (status.message().empty()) failProperty("rejection without a message");
}

bool printable(const std::string& s) {
  for (char c : s) {
    if (c < 0x20 || c >= 0x7f) return false;
  }
  return true;
}

void fuzzQpInfo(std::span<const std::byte> bytes) {
  using namespace rdmesh::transport;
  auto size = verbsQpInfoSize(bytes);
  auto info = parseVerbsQpInfo(bytes);
  if (!info.isOk()) {
    checkRejection(info.status());
    return;
  }
  if (!size.isOk() || *size != bytes.size()) failProperty("size disagrees with the parser");
  const VerbsPeerInfo& i = *info;
  if (!printable(i.reason) || i.reason.size() > rdmesh::wire::kMaxVerbsReasonBytes) {
    failProperty("accepted a bad reason", i.reason);
  }
  if (i.offer) {
    if (!i.reason.empty()) failProperty("offer with a reason");
    if (i.qp_num == 0 || i.qp_num > rdmesh::wire::kQpNumMask) failProperty("bad qp number");
    if (i.psn > rdmesh::wire::kQpNumMask) failProperty("bad psn");
    if (i.path_mtu < rdmesh::wire::kMinPathMtu || i.path_mtu > rdmesh::wire::kMaxPathMtu) {
      failProperty("bad mtu");
    }
    if (i.area_bytes == 0 || i.area_addr + i.area_bytes < i.area_addr) failProperty("bad area");
    if (i.recv_wqes < rdmesh::wire::kMinRecvDepth || i.recv_wqes > rdmesh::wire::kMaxRecvDepth) {
      failProperty("bad receive WQE count");
    }
  } else if (i.reason.empty()) {
    failProperty("decline without a reason");
  }
  auto again = encodeVerbsQpInfo(i);
  // A decline's fields other than the reason carry nothing; compare what the parser kept.
  auto reparsed = parseVerbsQpInfo(again);
  if (!reparsed.isOk() || reparsed->offer != i.offer || reparsed->reason != i.reason) {
    failProperty("re-encoding an accepted message does not parse back the same");
  }
  if (i.offer && (again.size() != bytes.size() ||
                  std::memcmp(again.data(), bytes.data(), bytes.size()) != 0)) {
    failProperty("re-encoding an accepted offer gives different bytes");
  }
}

void fuzzReady(std::span<const std::byte> bytes) {
  using namespace rdmesh::transport;
  auto size = verbsReadySize(bytes);
  auto ready = parseVerbsReady(bytes);
  if (!ready.isOk()) {
    checkRejection(ready.status());
    return;
  }
  if (!size.isOk() || *size != bytes.size()) failProperty("ready size disagrees with the parser");
  if (ready->ok != ready->reason.empty() || !printable(ready->reason)) failProperty("bad ready");
  auto again = encodeVerbsReady(*ready);
  if (again.size() != bytes.size() || std::memcmp(again.data(), bytes.data(), bytes.size()) != 0) {
    failProperty("re-encoding an accepted ready gives different bytes");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data) + 1, size - 1);
  if (data[0] & 1) {
    fuzzReady(bytes);
  } else {
    fuzzQpInfo(bytes);
  }
  return 0;
}
