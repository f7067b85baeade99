// libFuzzer target for what an xDS client (rdmesh-proxy, rdmesh-node) reads from rdmesh-xds:
// the NDJSON framer in front of the error line and the state-of-the-world and delta response
// parsers, each response driven through the client's protocol state (SotwState, DeltaState).
// Beyond "never crash": every ACK or NACK the client would send parses back as the request it
// is (the server must understand every reply), and a NACK never changes the set in force.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "rdmesh/xds/delta_state.h"
#include "rdmesh/xds/messages.h"
#include "rdmesh/xds/ndjson_framer.h"
#include "rdmesh/xds/sotw_state.h"

namespace {

using namespace rdmesh;
using namespace rdmesh::xds;

[[noreturn]] void failProperty(const char* what, std::string_view detail) {
  std::fprintf(stderr, "fuzz_xds_client_response: %s\n%.*s\n", what,
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

template <typename Request, typename Parse>
void checkReply(const Request& reply, Parse parse) {
  std::string line = serialize(reply);
  auto parsed = parse(line);
  if (!parsed.isOk())
    failProperty("a reply does not parse", line + "\n" + parsed.status().message());
  if (!(*parsed == reply)) failProperty("a reply changed on reparse", line);
}

std::vector<Subscription> subscriptions() {
  return {{ResourceType::kNode, {}}, {ResourceType::kCluster, {}}, {ResourceType::kListener, {}}};
}

ClientIdentity identity() {
  ClientIdentity id;
  id.id = "sidecar~default/web-0~node-a";
  id.node_name = "node-a";
  id.workload = "default/web-0";
  id.namespace_name = "default";
  return id;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  SotwState sotw(identity(), subscriptions());
  DeltaState delta(identity(), subscriptions());
  NdjsonFramer framer;
  int line_index = 0;
  (void)framer.feed(
      std::string_view(reinterpret_cast<const char*>(data), size), [&](std::string_view line) {
        (void)parseStreamError(line);
        // Alternate verdicts so both ACK and NACK paths run.
        Status verdict = (line_index++ % 2 == 0) ? Status::ok() : invalidArgument("rejected");
        if (auto response = parseDiscoveryResponse(line); response.isOk()) {
          checkReply(sotw.onResponse(*response, verdict), parseDiscoveryRequest);
        }
        if (auto response = parseDeltaDiscoveryResponse(line); response.isOk()) {
          auto candidate = delta.candidate(*response);
          Status judged = candidate.isOk() ? verdict : candidate.status();
          std::vector<DeltaDiscoveryRequest> before = delta.onStreamOpen();
          checkReply(delta.onResponse(*response, judged), parseDeltaDiscoveryRequest);
          if (!judged.isOk() && !(delta.onStreamOpen() == before)) {
            failProperty("a NACK changed the resources in force", line);
          }
        }
        return Status::ok();
      });
  for (const DiscoveryRequest& r : sotw.onStreamOpen()) checkReply(r, parseDiscoveryRequest);
  for (const DeltaDiscoveryRequest& r : delta.onStreamOpen()) {
    checkReply(r, parseDeltaDiscoveryRequest);
  }
  return 0;
}
