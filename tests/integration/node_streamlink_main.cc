// rdmesh-node-streamlink: rdmesh-node with the stream test double of PairLink
// (tests/common/stream_link.h) as its LinkDomain, for the integration tests until the real tcp
// links of branch pair-link are merged (then the tests run rdmesh-node itself).
#include "node_main.h"
#include "stream_link.h"

int main(int argc, char** argv) {
  return rdmesh::node::nodeMain(
      argc, argv,
      [](const rdmesh::transport::LinkDomainOptions& options)
          -> rdmesh::Result<std::unique_ptr<rdmesh::transport::LinkDomain>> {
        return std::unique_ptr<rdmesh::transport::LinkDomain>(
            rdmesh::testing::makeStreamLinkDomain(options.node_name));
      });
}
