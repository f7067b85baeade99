// Memory regions of the host backends: anonymous (tcp) and memfd (shm, shareable by fd).
#pragma once

#include <fcntl.h>

#include <memory>
#include <span>

#include "rdmesh/transport/fabric.h"
#include "unix_fd.h"

namespace rdmesh::transport {

// A private mapping; pages are allocated only when touched, so large sparse areas cost nothing.
Result<std::unique_ptr<MemoryRegion>> makeAnonymousRegion(size_t bytes);

// The seals on every memfd this process creates for a peer: its size is fixed.
inline constexpr int kMemfdSizeSeals = F_SEAL_SHRINK | F_SEAL_GROW;

// A memfd mapped shared; the fd can be passed to another process and mapped there. Created
// with MFD_ALLOW_SEALING and sealed with kMemfdSizeSeals.
class MemfdRegion : public MemoryRegion {
 public:
  static Result<std::unique_ptr<MemfdRegion>> create(const char* name, size_t bytes);
  // Maps a peer's memfd (received over SCM_RIGHTS) after checking its size.
  static Result<std::unique_ptr<MemfdRegion>> map(UniqueFd fd, size_t expected_bytes);
  ~MemfdRegion() override;

  std::span<std::byte> bytes() override { return {base_, size_}; }
  int fd() const { return fd_.get(); }

 private:
  MemfdRegion(UniqueFd fd, std::byte* base, size_t size)
      : fd_(std::move(fd)), base_(base), size_(size) {}
  UniqueFd fd_;
  std::byte* base_;
  size_t size_;
};

}  // namespace rdmesh::transport
