// libFuzzer target for what rdmesh-xds reads from etcd's gRPC gateway: watch stream lines and
// the unary responses (range, txn, lease), and the registry entries stored in etcd values.
// Never a crash, never an exception; every rejection carries a message.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "etcd_codec.h"
#include "etcd_registry_store.h"
#include "stream_lines.h"

namespace etcd = rdmesh::xds::etcd;

namespace {

template <typename R>
void requireMessage(const R& result) {
  if (!result.isOk() && result.status().message().empty()) {
    std::fprintf(stderr, "rejected without a message\n");
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  rdmesh::xds::StreamLines lines(size_t{1} << 20);
  (void)lines.feed(input, [](std::string_view line) {
    auto response = etcd::parseWatchLine(line);
    requireMessage(response);
    if (response.isOk()) {
      for (const auto& event : response->events) {
        requireMessage(etcd::decodeStoredEntry("/rdmesh/v1", event.kv));
      }
    }
    return rdmesh::Status::ok();
  });
  requireMessage(etcd::parseRangeResponse(input));
  requireMessage(etcd::parseTxnResponse(input));
  requireMessage(etcd::parseLeaseGrantResponse(input));
  requireMessage(etcd::parseLeaseKeepAliveResponse(input));
  requireMessage(etcd::base64Decode(input));
  return 0;
}
