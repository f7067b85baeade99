// The node agent socket (/var/run/rdmesh/node.sock): AF_UNIX SOCK_SEQPACKET, one JSON request
// per datagram (fds may ride along with SCM_RIGHTS), one reply datagram per request, in order.
// Runs on the agent's libevent loop; requests go to an OpTable. Connections are shared with the
// handlers (ClientConnection): a session op keeps its connection, replies later, pushes events.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "op_table.h"
#include "rdmesh/common/stats.h"
#include "rdmesh/common/status.h"

struct event;
struct event_base;

namespace rdmesh::node {

class NodeSocketServer {
 public:
  NodeSocketServer(event_base* base, const OpTable& ops, StatsStore& stats);
  ~NodeSocketServer();
  NodeSocketServer(const NodeSocketServer&) = delete;
  NodeSocketServer& operator=(const NodeSocketServer&) = delete;

  // Creates the parent directory (0755) if needed, replaces a stale socket file, binds and
  // listens; the socket is 0660.
  Status listen(const std::string& path);
  // Stops accepting, closes every connection (their on-closed callbacks do not run: the agent
  // is stopping), removes the socket file.
  void close();

 private:
  class Connection;
  friend class Connection;
  static void onAccept(int fd, short what, void* arg);
  void serve(Connection& c);
  // Sends one datagram (+ fds); drops the client when it cannot take it.
  Status send(Connection& c, std::string_view datagram, std::span<const int> fds);
  void drop(int fd, bool notify);

  event_base* base_;
  const OpTable& ops_;
  std::string path_;
  int listen_fd_ = -1;
  event* listen_ev_ = nullptr;
  std::map<int, std::shared_ptr<Connection>> connections_;
  Counter& requests_;
  Counter& errors_;
  Gauge& clients_;
};

}  // namespace rdmesh::node
