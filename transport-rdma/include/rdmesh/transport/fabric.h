// Fabric: the one-sided RDMA model every backend provides. A backend registers local memory the
// peer may write into, bootstraps a connection to a peer node, posts WRITE WITH IMMEDIATE into the
// peer's registered memory, reports completions of the peer's writes, and rings doorbells.
//
// Control path (bootstrap) blocks with a deadline and runs off the event loop; the data path
// (FabricConnection) is non-blocking and single-threaded, driven by one event loop.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "rdmesh/common/status.h"
#include "rdmesh/transport/hello.h"
#include "rdmesh/transport/wire.h"

namespace rdmesh::transport {

using Deadline = std::chrono::steady_clock::time_point;

// The peer finished a WRITE WITH IMMEDIATE into our memory.
struct Completion {
  uint32_t imm;
  uint32_t byte_len;
};

// Local memory registered with the fabric so a peer can write into it.
class MemoryRegion {
 public:
  virtual ~MemoryRegion() = default;
  virtual std::span<std::byte> bytes() = 0;
};

class FabricConnection {
 public:
  virtual ~FabricConnection() = default;

  virtual wire::FabricKind kind() const = 0;
  virtual const Hello& peerHello() const = 0;
  virtual uint16_t version() const = 0;

  // Our receive area: the peer's writes land here.
  virtual std::span<std::byte> receiveArea() = 0;
  // Gives the pages of [offset, offset+bytes) of our receive area back to the kernel (they read
  // as zero afterwards). The caller guarantees the peer no longer writes there.
  virtual void releaseReceiveMemory(uint64_t offset, uint64_t bytes) = 0;

  // Memory to fill with up to `max_len` bytes that will land at `remote_offset` of the peer's
  // receive area. shm returns the peer's memory itself (the only copy is the caller's read());
  // tcp returns room in its send buffer. Empty when the fabric is backed up: see wantsWritable().
  // At most one staged write is outstanding.
  virtual std::span<std::byte> stageWrite(uint64_t remote_offset, size_t max_len) = 0;
  // Posts the staged write as WRITE WITH IMMEDIATE with its first `len` bytes (0 cancels it).
  // Writes become visible to the peer in posting order.
  virtual void postWriteWithImm(size_t len, uint32_t imm) = 0;
  // Makes posted writes visible and wakes the peer only if it sleeps. One call per loop iteration
  // batches every stream's writes. An error means the connection is lost.
  virtual Status flush() = 0;
  // True when flush() left bytes behind: call it again once eventFd() is writable.
  virtual bool wantsWritable() const = 0;

  // Non-blocking: completions of the peer's writes, in order. An error means the connection is
  // lost or the peer broke the fabric protocol.
  virtual Result<size_t> poll(std::span<Completion> out) = 0;

  // Readable when completions may be pending (doorbell or socket).
  virtual int eventFd() const = 0;
  // A doorbell (eventfd) is watched edge-triggered: each ring is one event and nothing has to be
  // read back, saving a syscall per wake-up. A socket is watched level-triggered.
  virtual bool eventFdIsDoorbell() const = 0;
  // Readable/hang-up when the peer process or connection is gone (-1: same as eventFd()).
  virtual int livenessFd() const = 0;
  // Whether polling briefly before sleeping pays (shared memory: yes; a socket: no).
  virtual bool pollsUsefully() const = 0;
  // Completions already received but not yet returned by poll() (tcp: whole frames left in its
  // buffer after a bounded poll); the event loop must poll again before it may sleep.
  virtual bool hasBufferedCompletions() const = 0;
  // Announce that we are about to block on eventFd(); false if completions arrived meanwhile.
  virtual bool prepareToSleep() = 0;
  // The doorbell fired: clear the sleeping mark.
  virtual void afterWakeup() = 0;
  // For fabrics whose send resources are freed by completions rather than by a writable socket
  // (verbs: send queue slots and staging memory): true once after stageWrite() came back empty
  // and room has been freed since, so the caller retries its blocked writers.
  virtual bool resumedSending() { return false; }
  // Back from the event loop for any reason: clear the sleeping mark (cheap, no syscall), so
  // the peer does not ring a doorbell nobody waits on.
  virtual void markAwake() = 0;
};

class Fabric {
 public:
  virtual ~Fabric() = default;
  virtual wire::FabricKind kind() const = 0;

  // Registers `bytes` of local memory for peers to write into.
  virtual Result<std::unique_ptr<MemoryRegion>> registerRegion(size_t bytes) = 0;

  // Bootstrap listener for peers (tcp: "ip:port"; shm: unix socket path). Non-blocking fd.
  virtual Result<int> listen(const std::string& address) = 0;
  // Dials `address`, exchanges Hellos, and brings the fabric up with `receive_area` as ours.
  virtual Result<std::unique_ptr<FabricConnection>> connect(
      const std::string& address, const Hello& local, std::unique_ptr<MemoryRegion> receive_area,
      Deadline deadline) = 0;
  // The same for a connection accepted on the listener (takes ownership of `fd`).
  virtual Result<std::unique_ptr<FabricConnection>> accept(
      int fd, const Hello& local, std::unique_ptr<MemoryRegion> receive_area,
      Deadline deadline) = 0;
};

// verbs backend: the RDMA device and RoCEv2 GID to use. By default every device is considered and
// the GID is the one whose IPv4-mapped address is the local address of the bootstrap connection.
struct VerbsFabricOptions {
  std::string device;  // e.g. "rxe0", "mlx5_0"; empty: any
  int gid_index = -1;  // -1: found by address
  uint8_t port = 1;
};

std::unique_ptr<Fabric> makeTcpFabric();
std::unique_ptr<Fabric> makeShmFabric();
// Sessions over RC QPs (RDMA WRITE WITH IMMEDIATE), bootstrapped over TCP like the tcp backend.
// Falls back to the tcp backend on the same connection when either side cannot run RDMA.
std::unique_ptr<Fabric> makeVerbsFabric(VerbsFabricOptions options);
// A node's own fabric by kind, as a sidecar's `transport.backend` selects it (tcp, shm, verbs;
// `verbs` only applies to kVerbs). nullptr for kAgent, which needs the node agent's socket.
std::unique_ptr<Fabric> makeFabric(wire::FabricKind kind, const VerbsFabricOptions& verbs = {});

const char* toString(wire::FabricKind kind);

}  // namespace rdmesh::transport
