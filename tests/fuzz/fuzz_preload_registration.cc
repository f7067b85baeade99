// libFuzzer target for the LD_PRELOAD registration datagram the sidecar reads from its abstract
// unix socket (any process of the pod can send one). Accepted ones must make sense.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "original_destination.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto entry = rdmesh::proxy::parsePreloadRegistration(data, size);
  if (!entry.isOk()) return 0;
  const auto& e = entry.value();
  int family = e.destination.family();
  if (e.source_port == 0 || e.destination.port() == 0 ||
      (family != AF_INET && family != AF_INET6)) {
    std::fprintf(stderr, "accepted a registration with port 0 or no address family\n");
    std::abort();
  }
  return 0;
}
