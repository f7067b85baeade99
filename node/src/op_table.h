// Dispatch of node.sock requests by op name. Each agent module (pods, the session switch) registers
// its ops here, so a new module is one more registration, not a rewrite.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "client_connection.h"
#include "node_request.h"
#include "rdmesh/common/unique_fd.h"

namespace rdmesh::node {

// Fds that arrived with a request (SCM_RIGHTS). A handler that keeps one takes it (sets -1);
// the server closes the rest after the reply.
using RequestFds = std::vector<int>;

// The fields of the success reply, or the Status whose message the error reply carries.
using OpHandler =
    std::function<Result<nlohmann::json>(const RequestEnvelope& request, RequestFds& fds)>;

// What an op that sees its connection answers: the reply now (fields + fds), or nothing now
// (`deferred`: the handler keeps the ConnectionRef and replies through it later).
struct OpResult {
  nlohmann::json fields = nlohmann::json::object();
  std::vector<UniqueFd> fds;  // attached to the reply, closed after it is sent
  bool deferred = false;
};
using ConnectionOpHandler = std::function<Result<OpResult>(
    const RequestEnvelope& request, RequestFds& fds, const ConnectionRef& connection)>;

struct Reply {
  std::string datagram;  // okReply / errorReply; empty when deferred
  bool ok = false;
  bool deferred = false;
  std::vector<UniqueFd> fds;
};

class OpTable {
 public:
  void add(std::string op, OpHandler handler);
  void add(std::string op, ConnectionOpHandler handler);
  // Never throws: bad input and handler failures become error replies. `connection` is the
  // client's (null outside a server, e.g. in the fuzzer: connection ops then answer an error).
  Reply dispatch(std::string_view datagram, RequestFds& fds,
                 const ConnectionRef& connection = nullptr) const;

 private:
  std::map<std::string, ConnectionOpHandler, std::less<>> ops_;
};

// A part of the agent that serves some ops.
class NodeModule {
 public:
  virtual ~NodeModule() = default;
  virtual void registerOps(OpTable& table) = 0;
};

}  // namespace rdmesh::node
