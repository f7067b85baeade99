// Listening sockets for an outbound listener: one SO_REUSEPORT socket per worker, bound on the
// main thread so that a bad address is reported (and NACKed) before any worker sees the update.
#pragma once

#include <vector>

#include "rdmesh/common/address.h"
#include "rdmesh/common/status.h"

namespace rdmesh::proxy {

// Owns a set of listening fds until they are released to workers.
class ListenSockets {
 public:
  ListenSockets() = default;
  ~ListenSockets();
  ListenSockets(ListenSockets&& other) noexcept : fds_(std::move(other.fds_)) {
    other.fds_.clear();
  }
  ListenSockets& operator=(ListenSockets&& other) noexcept;
  ListenSockets(const ListenSockets&) = delete;
  ListenSockets& operator=(const ListenSockets&) = delete;

  // `count` sockets on `address`. Port 0 picks one port for all of them (the first socket's).
  static Result<ListenSockets> bind(const std::string& listener, const InetAddress& address,
                                    unsigned count);

  // The fd for worker `index`; the caller owns it from now on.
  int release(size_t index);

 private:
  std::vector<int> fds_;
};

}  // namespace rdmesh::proxy
