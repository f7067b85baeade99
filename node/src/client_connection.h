// One client connection of node.sock, as an op handler sees it. Most ops answer at once and never
// touch it (v1 behaviour). The session ops keep it: a handler that holds the ConnectionRef may
// reply later (the server reads nothing more from the client until then, so replies stay in
// order), push events between replies, learn when the client hangs up, and end the connection.
#pragma once

#include <sys/socket.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string_view>

#include "rdmesh/common/status.h"

namespace rdmesh::node {

class ClientConnection {
 public:
  virtual ~ClientConnection() = default;

  // SO_PEERCRED of the client, taken when it connected.
  virtual const ucred& peerCredentials() const = 0;
  // The reply to a request whose handler deferred it (OpResult::deferred); fds ride along with
  // SCM_RIGHTS and stay owned by the caller. Reading resumes afterwards.
  virtual Status replyOk(const nlohmann::json& fields, std::span<const int> fds = {}) = 0;
  virtual Status replyError(std::string_view message) = 0;
  // An event datagram ({"event":...}) between replies. A client that does not read is dropped.
  virtual Status push(const nlohmann::json& event) = 0;
  // Runs once when the client hangs up or the server drops the connection (not after close()).
  virtual void setOnClosed(std::function<void()> callback) = 0;
  // Ends the connection from the agent's side: the client sees the hang-up.
  virtual void close() = 0;
  virtual bool isOpen() const = 0;
};

using ConnectionRef = std::shared_ptr<ClientConnection>;

}  // namespace rdmesh::node
