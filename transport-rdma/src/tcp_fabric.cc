// tcp backend, control path: listen, dial, accept, and the Hello exchange.
#include "tcp_fabric.h"

#include <fmt/format.h>
#include <sys/socket.h>
#include <unistd.h>

#include "memory_region.h"
#include "rdmesh/common/address.h"

namespace rdmesh::transport {

namespace {

Result<std::unique_ptr<FabricConnection>> bringUp(UniqueFd fd, const Hello& local,
                                                  std::unique_ptr<MemoryRegion> area, bool dialer,
                                                  Deadline deadline) {
  auto hello = exchangeHello(fd.get(), local, dialer, deadline);
  if (!hello) return hello.status();
  return std::unique_ptr<FabricConnection>(
      new TcpConnection(std::move(fd), std::move(hello.value()), std::move(area)));
}

class TcpFabric : public Fabric {
 public:
  wire::FabricKind kind() const override { return wire::FabricKind::kTcp; }

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
};

}  // namespace

std::unique_ptr<Fabric> makeTcpFabric() {
  return std::make_unique<TcpFabric>();
}

}  // namespace rdmesh::transport
