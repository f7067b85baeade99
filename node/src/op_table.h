// Dispatch of node.sock requests by op name. Each agent module (pods now; fabrics and sidecar
// attach later) registers its ops here, so a new module is one more registration, not a rewrite.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "node_request.h"

namespace rdmesh::node {

// Fds that arrived with a request (SCM_RIGHTS). A handler that keeps one takes it (sets -1);
// the server closes the rest after the reply.
using RequestFds = std::vector<int>;

// The fields of the success reply, or the Status whose message the error reply carries.
using OpHandler =
    std::function<Result<nlohmann::json>(const RequestEnvelope& request, RequestFds& fds)>;

struct Reply {
  std::string datagram;  // okReply / errorReply
  bool ok = false;
};

class OpTable {
 public:
  void add(std::string op, OpHandler handler) { ops_[std::move(op)] = std::move(handler); }
  // Never throws: bad input and handler failures become error replies.
  Reply dispatch(std::string_view datagram, RequestFds& fds) const;

 private:
  std::map<std::string, OpHandler, std::less<>> ops_;
};

// A part of the agent that serves some ops.
class NodeModule {
 public:
  virtual ~NodeModule() = default;
  virtual void registerOps(OpTable& table) = 0;
};

}  // namespace rdmesh::node
