#include "memory_region.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace rdmesh::transport {

namespace {
class AnonymousRegion : public MemoryRegion {
 public:
  AnonymousRegion(std::byte* base, size_t size) : base_(base), size_(size) {}
  ~AnonymousRegion() override { ::munmap(base_, size_); }
  std::span<std::byte> bytes() override { return {base_, size_}; }

 private:
  std::byte* base_;
  size_t size_;
};
}  // namespace

Result<std::unique_ptr<MemoryRegion>> makeAnonymousRegion(size_t bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return Status{StatusCode::kResourceExhausted, errnoText("mmap")};
  return std::unique_ptr<MemoryRegion>(new AnonymousRegion(static_cast<std::byte*>(p), bytes));
}

Result<std::unique_ptr<MemfdRegion>> MemfdRegion::create(const char* name, size_t bytes) {
  UniqueFd fd(::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return Status{StatusCode::kResourceExhausted, errnoText("memfd_create")};
  if (::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) {
    return Status{StatusCode::kResourceExhausted, errnoText("ftruncate(memfd)")};
  }
  // The peer maps the whole memfd: a later shrink would make its accesses fault (SIGBUS), so
  // the size is sealed before the fd leaves this process (the node agent checks the seal).
  if (::fcntl(fd.get(), F_ADD_SEALS, kMemfdSizeSeals) != 0) {
    return internalError(errnoText("fcntl(F_ADD_SEALS) on the memfd"));
  }
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) return Status{StatusCode::kResourceExhausted, errnoText("mmap(memfd)")};
  return std::unique_ptr<MemfdRegion>(
      new MemfdRegion(std::move(fd), static_cast<std::byte*>(p), bytes));
}

Result<std::unique_ptr<MemfdRegion>> MemfdRegion::map(UniqueFd fd, size_t expected_bytes) {
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return internalError(errnoText("fstat(peer memfd)"));
  if (static_cast<size_t>(st.st_size) != expected_bytes) {
    return protocolError(
        fmt::format("peer region is {} bytes, its Hello implies {}", st.st_size, expected_bytes));
  }
  void* p = ::mmap(nullptr, expected_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) return Status{StatusCode::kResourceExhausted, errnoText("mmap(peer)")};
  return std::unique_ptr<MemfdRegion>(
      new MemfdRegion(std::move(fd), static_cast<std::byte*>(p), expected_bytes));
}

MemfdRegion::~MemfdRegion() {
  ::munmap(base_, size_);
}

}  // namespace rdmesh::transport
