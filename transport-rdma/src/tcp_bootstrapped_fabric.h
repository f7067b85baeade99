// Fabrics whose bootstrap is one TCP connection to the peer's session listener (tcp, and verbs,
// which exchanges its QP info over it and falls back to tcp on it): listen, dial and accept are
// the same; only bringing the connection up differs.
#pragma once

#include <memory>
#include <string>

#include "memory_region.h"
#include "rdmesh/common/address.h"
#include "rdmesh/transport/fabric.h"
#include "unix_fd.h"

namespace rdmesh::transport {

class TcpBootstrappedFabric : public Fabric {
 public:
  // Plain memory: a backend that needs registration does it when a connection comes up.
  Result<std::unique_ptr<MemoryRegion>> registerRegion(size_t bytes) override {
    return makeAnonymousRegion(bytes);
  }

  Result<int> listen(const std::string& address) override {
    auto addr = InetAddress::parse(address);
    if (!addr) return addr.status();
    return listenOn(addr->sockaddrPtr(), addr->sockaddrLen(), address);
  }

  Result<std::unique_ptr<FabricConnection>> connect(const std::string& address, const Hello& local,
                                                    std::unique_ptr<MemoryRegion> area,
                                                    Deadline deadline) override {
    auto fd = dialTcp(address, deadline);
    if (!fd) return fd.status();
    return bringUp(std::move(fd.value()), local, std::move(area), /*dialer=*/true, deadline);
  }

  Result<std::unique_ptr<FabricConnection>> accept(int fd, const Hello& local,
                                                   std::unique_ptr<MemoryRegion> area,
                                                   Deadline deadline) override {
    UniqueFd owned(fd);
    if (Status s = setNonBlocking(fd); !s) return s;
    tuneTcpSocket(fd);
    return bringUp(std::move(owned), local, std::move(area), /*dialer=*/false, deadline);
  }

 protected:
  // Hello exchange and whatever the backend adds, on the connected bootstrap socket.
  virtual Result<std::unique_ptr<FabricConnection>> bringUp(UniqueFd fd, const Hello& local,
                                                            std::unique_ptr<MemoryRegion> area,
                                                            bool dialer, Deadline deadline) = 0;
};

}  // namespace rdmesh::transport
