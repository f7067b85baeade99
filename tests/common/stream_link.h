// A test double of the agent's LinkDomain/PairLink (transport/pair_link.h) over one stream
// socket: TCP between processes (bootstrap on a real listener, like the node-agent port) or a
// socketpair in one process. Writes are frames [header][payload] that the receiving side copies
// into the target registration after checking the key and the bounds, so a write into memory
// that was already unregistered fails the link exactly as a remote access error fails an RC QP.
// Used until branch pair-link provides the real links; it never pins memory.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "rdmesh/transport/pair_link.h"

namespace rdmesh::testing {

class StreamLinkDomain : public transport::LinkDomain {
 public:
  // Bound port of the last listen() (for "127.0.0.1:0").
  virtual uint16_t listenPort() const = 0;
  // Registrations alive (a leak check for tests).
  virtual size_t registrations() const = 0;
};

std::unique_ptr<StreamLinkDomain> makeStreamLinkDomain(std::string node_name);

// Two connected links in one process (a socketpair): a's link to b and b's link to a.
std::pair<std::unique_ptr<transport::PairLink>, std::unique_ptr<transport::PairLink>>
makeLoopbackLinks(StreamLinkDomain& a, StreamLinkDomain& b);

}  // namespace rdmesh::testing
