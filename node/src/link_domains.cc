// The LinkDomain rdmesh-node runs with.
#include <spdlog/spdlog.h>

#include "node_main.h"

namespace rdmesh::node {

LinkDomainFactory productionLinkDomains() {
  // transport::makeLinkDomain lands with branch `pair-link`; until it is merged this build has
  // no node-pair links: the fabric module then brokers same-node sessions only and answers
  // session_open to another node with "no link to node ...".
  return nullptr;
}

}  // namespace rdmesh::node
