// Where a captured connection was going. The capture listener asks, for each accepted socket:
//  - TransparentLocalAddress: getsockname(), which the eBPF getsockname hook (cni-init/bpf)
//    answers with the original destination, as for a TPROXY listener's accepted socket;
//  - SoOriginalDst: getsockopt(SO_ORIGINAL_DST), answered by netfilter after an iptables
//    REDIRECT (for users who redirect with iptables themselves; rdmesh never does);
//  - PreloadRegistry: registrations librdmesh-preload.so sent before connecting (by the app's
//    loopback port, which is the accepted socket's peer port).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "rdmesh/common/address.h"
#include "rdmesh/common/preload_wire.h"
#include "rdmesh/common/status.h"

namespace rdmesh::proxy {

// A connection accepted on a capture listener.
struct CapturedConnection {
  int fd = -1;
  InetAddress peer;      // the app's end on loopback
  InetAddress listener;  // the capture listener's own address
};

class OriginalDestination {
 public:
  virtual ~OriginalDestination() = default;
  virtual Result<InetAddress> lookup(const CapturedConnection& connection) = 0;
};

// getsockname(fd): an answer when it is not the listener's own address.
std::unique_ptr<OriginalDestination> makeTransparentLocalAddress();
// getsockopt(fd, SOL_IP or SOL_IPV6 by the socket's family, SO_ORIGINAL_DST).
std::unique_ptr<OriginalDestination> makeSoOriginalDst();

// Decodes one registration datagram; an error says what is wrong. Fuzzed.
struct PreloadEntry {
  bool source_v6 = false;
  uint16_t source_port = 0;
  InetAddress destination;
};
Result<PreloadEntry> parsePreloadRegistration(const void* data, size_t len);

// Thread-safe (the workers share one). Registrations are drained from the socket when a lookup
// misses: the shim sends before it connects, so by accept() time its datagram is queued.
class PreloadRegistry final : public OriginalDestination {
 public:
  static Result<std::unique_ptr<PreloadRegistry>> bind(const std::string& abstract_name);
  ~PreloadRegistry() override;

  Result<InetAddress> lookup(const CapturedConnection& connection) override;
  size_t rejectedDatagrams() const { return rejected_; }

 private:
  explicit PreloadRegistry(int fd) : fd_(fd) {}
  void drainLocked();
  static uint32_t key(bool v6, uint16_t port) { return (v6 ? 0x10000u : 0u) | port; }

  int fd_;
  std::mutex mu_;
  std::unordered_map<uint32_t, InetAddress> by_port_;
  size_t rejected_ = 0;
};

// Tries each source in order; the first answer wins.
class ChainedOriginalDestination final : public OriginalDestination {
 public:
  void add(std::unique_ptr<OriginalDestination> source) { sources_.push_back(std::move(source)); }
  Result<InetAddress> lookup(const CapturedConnection& connection) override;

 private:
  std::vector<std::unique_ptr<OriginalDestination>> sources_;
};

}  // namespace rdmesh::proxy
