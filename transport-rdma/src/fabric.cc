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

}  // namespace rdmesh::transport
