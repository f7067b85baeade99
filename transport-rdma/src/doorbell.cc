#include "doorbell.h"

#include <unistd.h>

#include <cerrno>

#include "unix_fd.h"

namespace rdmesh::transport {

Status wakeIfSleeping(std::atomic<uint32_t>& sleeping, int doorbell_fd) {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  // The relaxed load keeps the common case (consumer awake) free of a locked instruction.
  if (sleeping.load(std::memory_order_relaxed) == 0 ||
      sleeping.exchange(0, std::memory_order_seq_cst) == 0) {
    return {};
  }
  uint64_t one = 1;
  if (::write(doorbell_fd, &one, sizeof(one)) < 0 && errno != EAGAIN) {
    return unavailable(errnoText("doorbell"));
  }
  return {};
}

}  // namespace rdmesh::transport
