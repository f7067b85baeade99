// shm backend, control path: unix-socket listener, Hello exchange, and the exchange of memfds and
// doorbells over SCM_RIGHTS.
#include "shm_fabric.h"

#include <fmt/format.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

namespace rdmesh::transport {

namespace {

// Both sides send one marker byte with [area, queue, doorbell]; the dialer first.
constexpr size_t kFdsPerSide = 3;

}  // namespace

Result<std::unique_ptr<FabricConnection>> bringUpShm(UniqueFd sock, const Hello& local,
                                                     std::unique_ptr<MemoryRegion> area,
                                                     bool dialer, Deadline deadline,
                                                     UniqueFd brokered_by) {
  auto* local_memfd = dynamic_cast<MemfdRegion*>(area.get());
  if (local_memfd == nullptr) return internalError("shm fabric needs a region it registered");
  int type = 0;
  socklen_t type_len = sizeof(type);
  if (::getsockopt(sock.get(), SOL_SOCKET, SO_TYPE, &type, &type_len) != 0 || type != SOCK_STREAM) {
    return protocolError("shm bootstrap needs a connected AF_UNIX stream socket");
  }
  auto hello = exchangeHello(sock.get(), local, dialer, deadline);
  if (!hello) return hello.status();

  auto queue = MemfdRegion::create("rdmesh-shm-queue", shmQueueBytes(local.geometry.recv_depth));
  if (!queue) return queue.status();
  new (queue.value()->bytes().data()) ShmQueueHeader{};
  UniqueFd doorbell(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!doorbell) return internalError(errnoText("eventfd"));

  const int ours[kFdsPerSide] = {local_memfd->fd(), queue.value()->fd(), doorbell.get()};
  const std::byte marker[1] = {std::byte{'F'}};
  std::byte peer_marker[1];
  UniqueFd theirs[kFdsPerSide];
  if (dialer) {
    if (Status s = sendWithFds(sock.get(), marker, ours, deadline); !s) return s;
  }
  if (Status s = recvWithFds(sock.get(), peer_marker, theirs, deadline); !s) return s;
  if (!dialer) {
    if (Status s = sendWithFds(sock.get(), marker, ours, deadline); !s) return s;
  }

  const SessionGeometry& pg = hello->peer.geometry;
  auto peer_area = MemfdRegion::map(std::move(theirs[0]), pg.receiveAreaBytes());
  if (!peer_area) return peer_area.status();
  auto peer_queue = MemfdRegion::map(std::move(theirs[1]), shmQueueBytes(pg.recv_depth));
  if (!peer_queue) return peer_queue.status();
  if (Status s = setNonBlocking(sock.get()); !s) return s;

  ShmConnection::Parts parts{std::move(sock),
                             std::move(hello.value()),
                             std::move(area),
                             std::move(queue.value()),
                             std::move(doorbell),
                             std::move(peer_area.value()),
                             std::move(peer_queue.value()),
                             std::move(theirs[2]),
                             std::move(brokered_by)};
  return std::unique_ptr<FabricConnection>(new ShmConnection(std::move(parts)));
}

Result<std::unique_ptr<MemoryRegion>> makeShmRegion(size_t bytes) {
  auto region = MemfdRegion::create("rdmesh-shm-area", bytes);
  if (!region) return region.status();
  return std::unique_ptr<MemoryRegion>(std::move(region.value()));
}

namespace {

class ShmFabric : public Fabric {
 public:
  wire::FabricKind kind() const override { return wire::FabricKind::kShm; }

  Result<std::unique_ptr<MemoryRegion>> registerRegion(size_t bytes) override {
    return makeShmRegion(bytes);
  }

  Result<int> listen(const std::string& path) override {
    auto sun = unixAddress(path);
    if (!sun) return sun.status();
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    ::unlink(path.c_str());  // a stale socket from a previous run
    return listenOn(reinterpret_cast<sockaddr*>(&sun.value()), sizeof(sockaddr_un), path);
  }

  Result<std::unique_ptr<FabricConnection>> connect(const std::string& path, const Hello& local,
                                                    std::unique_ptr<MemoryRegion> area,
                                                    Deadline deadline) override {
    auto sun = unixAddress(path);
    if (!sun) return sun.status();
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return internalError(errnoText("socket(AF_UNIX)"));
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sun.value()), sizeof(sockaddr_un)) != 0) {
      return unavailable(fmt::format("connect {}: {}", path, strerror(errno)));
    }
    return bringUpShm(std::move(fd), local, std::move(area), /*dialer=*/true, deadline);
  }

  Result<std::unique_ptr<FabricConnection>> accept(int fd, const Hello& local,
                                                   std::unique_ptr<MemoryRegion> area,
                                                   Deadline deadline) override {
    UniqueFd owned(fd);
    if (Status s = setNonBlocking(fd); !s) return s;
    return bringUpShm(std::move(owned), local, std::move(area), /*dialer=*/false, deadline);
  }
};

}  // namespace

std::unique_ptr<Fabric> makeShmFabric() {
  return std::make_unique<ShmFabric>();
}

}  // namespace rdmesh::transport
