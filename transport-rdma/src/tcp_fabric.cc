// tcp backend, control path: listen, dial, accept, and the Hello exchange.
#include "tcp_fabric.h"

#include <fmt/format.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tcp_bootstrapped_fabric.h"

namespace rdmesh::transport {

namespace {

class TcpFabric : public TcpBootstrappedFabric {
 public:
  wire::FabricKind kind() const override { return wire::FabricKind::kTcp; }

 protected:
  Result<std::unique_ptr<FabricConnection>> bringUp(UniqueFd fd, const Hello& local,
                                                    std::unique_ptr<MemoryRegion> area, bool dialer,
                                                    Deadline deadline) override {
    auto hello = exchangeHello(fd.get(), local, dialer, deadline);
    if (!hello) return hello.status();
    return std::unique_ptr<FabricConnection>(
        new TcpConnection(std::move(fd), std::move(hello.value()), std::move(area)));
  }
};

}  // namespace

std::unique_ptr<Fabric> makeTcpFabric() {
  return std::make_unique<TcpFabric>();
}

}  // namespace rdmesh::transport
