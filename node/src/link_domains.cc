// The LinkDomain rdmesh-node runs with: verbs when a device opens (and `fabric.rdma` is on), tcp
// links otherwise (transport-rdma's pair links).
#include "node_main.h"

namespace rdmesh::node {

LinkDomainFactory productionLinkDomains() {
  return [](const transport::LinkDomainOptions& options)
             -> Result<std::unique_ptr<transport::LinkDomain>> {
    return transport::makeLinkDomain(options);
  };
}

}  // namespace rdmesh::node
