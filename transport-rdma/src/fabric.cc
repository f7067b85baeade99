#include "rdmesh/transport/fabric.h"

namespace rdmesh::transport {

const char* toString(wire::FabricKind kind) {
  switch (kind) {
    case wire::FabricKind::kTcp:
      return "tcp";
    case wire::FabricKind::kShm:
      return "shm";
    case wire::FabricKind::kVerbs:
      return "verbs";
    case wire::FabricKind::kAgent:
      return "agent";
  }
  return "unknown";
}

std::unique_ptr<Fabric> makeFabric(wire::FabricKind kind, const VerbsFabricOptions& verbs) {
  switch (kind) {
    case wire::FabricKind::kTcp:
      return makeTcpFabric();
    case wire::FabricKind::kShm:
      return makeShmFabric();
    case wire::FabricKind::kVerbs:
      return makeVerbsFabric(verbs);
    case wire::FabricKind::kAgent:
      break;
  }
  return nullptr;
}

}  // namespace rdmesh::transport
