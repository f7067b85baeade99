// tcp backend, control path: listen, dial, accept, and the Hello exchange.
#include "tcp_fabric.h"

#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "memory_region.h"
#include "rdmesh/common/address.h"

namespace rdmesh::transport {

namespace {

void tuneSocket(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  // Large buffers: one connection carries every stream between two nodes.
  int buf = 4 << 20;
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
}

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
    auto addr = InetAddress::parse(address);
    if (!addr) return addr.status();
    UniqueFd fd(::socket(addr->family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return internalError(errnoText("socket"));
    tuneSocket(fd.get());
    if (::connect(fd.get(), addr->sockaddrPtr(), addr->sockaddrLen()) != 0) {
      if (errno != EINPROGRESS) {
        return unavailable(fmt::format("connect {}: {}", address, strerror(errno)));
      }
      if (Status s = waitFd(fd.get(), POLLOUT, deadline); !s) return s;
      int err = 0;
      socklen_t len = sizeof(err);
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) return unavailable(fmt::format("connect {}: {}", address, strerror(err)));
    }
    return bringUp(std::move(fd), local, std::move(area), /*dialer=*/true, deadline);
  }

  Result<std::unique_ptr<FabricConnection>> accept(int fd, const Hello& local,
                                                   std::unique_ptr<MemoryRegion> area,
                                                   Deadline deadline) override {
    UniqueFd owned(fd);
    if (Status s = setNonBlocking(fd); !s) return s;
    tuneSocket(fd);
    return bringUp(std::move(owned), local, std::move(area), /*dialer=*/false, deadline);
  }
};

}  // namespace

std::unique_ptr<Fabric> makeTcpFabric() {
  return std::make_unique<TcpFabric>();
}

}  // namespace rdmesh::transport
