// The node agent as rdmesh-cni sees it: a pure interface (what), and its implementation over the
// agent's unix socket (how). Tests put a fake agent behind either.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cni_node_messages.h"
#include "rdmesh/common/status.h"
#include "rdmesh/common/unique_fd.h"

namespace rdmesh::cni {

// Status codes of every call: kNotFound (no socket at the path: no agent on this node),
// kUnavailable (nobody accepts on the socket, or the connection broke), kTimeout (no reply in
// time), kProtocolError (the reply breaks the contract), kInvalidArgument (the agent refused; its
// reason is the message).
class NodeAgent {
 public:
  virtual ~NodeAgent() = default;
  // Registers the pod; the agent's cookie of the pod's network namespace.
  virtual Result<uint64_t> podAdd(const PodRegistration& pod) = 0;
  virtual Status podDel(std::string_view container_id) = 0;
  virtual Status podCheck(std::string_view container_id) = 0;
  virtual Result<std::vector<RegisteredPod>> podList() = 0;
};

// One SOCK_SEQPACKET connection to the agent: one datagram out, one datagram back.
class NodeSocketConnection {
 public:
  static Result<NodeSocketConnection> connect(const std::string& path);
  // Sends `request` and waits for the reply until `timeout` has passed.
  Result<std::string> call(std::string_view request, std::chrono::milliseconds timeout);

 private:
  explicit NodeSocketConnection(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// NodeAgent over the socket at `path`; connects on first use, one connection for all calls.
// After a failed call the connection is dropped and the next call dials again.
class SocketNodeAgent : public NodeAgent {
 public:
  SocketNodeAgent(std::string path, std::chrono::milliseconds timeout)
      : path_(std::move(path)), timeout_(timeout) {}

  Result<uint64_t> podAdd(const PodRegistration& pod) override;
  Status podDel(std::string_view container_id) override;
  Status podCheck(std::string_view container_id) override;
  Result<std::vector<RegisteredPod>> podList() override;

 private:
  Result<std::string> call(const std::string& request);

  std::string path_;
  std::chrono::milliseconds timeout_;
  std::optional<NodeSocketConnection> connection_;
};

}  // namespace rdmesh::cni
