// libFuzzer target for what rdmesh-xds reads from the network on a discovery stream: the NDJSON
// framer in front of the state-of-the-world and delta request parsers. Beyond "never crash" it
// checks that every rejection is an InvalidArgument and that every accepted request serializes
// to a line that parses back to the same request.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "rdmesh/xds/messages.h"
#include "rdmesh/xds/ndjson_framer.h"

namespace {

[[noreturn]] void failProperty(const char* what, std::string_view detail) {
  std::fprintf(stderr, "fuzz_xds_request: %s\n%.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

template <typename Parse>
void checkParser(std::string_view line, Parse parse) {
  auto request = parse(line);
  if (!request.isOk()) {
    if (request.status().code() != rdmesh::StatusCode::kInvalidArgument) {
      failProperty("rejected with a code other than InvalidArgument", request.status().message());
    }
    if (request.status().message().empty()) failProperty("rejected without a message", line);
    return;
  }
  const std::string text = rdmesh::xds::serialize(*request);
  auto reparsed = parse(text);
  if (!reparsed.isOk()) failProperty("serialized request does not parse back", text);
  if (!(*reparsed == *request)) failProperty("request changed on reparse", text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Small cap so the fuzzer reaches the over-limit paths; the first byte picks the chunking.
  rdmesh::xds::NdjsonFramer framer(size > 0 && (data[0] & 1) ? 256 : rdmesh::xds::kMaxMessageBytes);
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t chunk = size > 0 ? 1 + data[0] % 7 : 1;
  auto on_message = [](std::string_view line) {
    checkParser(line, rdmesh::xds::parseDiscoveryRequest);
    checkParser(line, rdmesh::xds::parseDeltaDiscoveryRequest);
    return rdmesh::Status::ok();
  };
  for (size_t offset = 0; offset < input.size(); offset += chunk) {
    if (!framer.feed(input.substr(offset, chunk), on_message).isOk()) break;
  }
  (void)framer.finish();
  return 0;
}
