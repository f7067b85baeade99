// The sleep/doorbell discipline of every shared-memory queue here (the shm backend's completion
// queues, the agent region's SQ and CQ). Dekker-style: the consumer sets its `sleeping` flag
// (seq_cst), re-checks its queue, then blocks on its doorbell (an eventfd); the producer publishes
// its index, then rings only if it swaps the flag from 1 to 0 (seq_cst). So a wake-up is never
// lost, a burst of writes costs one syscall at most, and an awake consumer costs none.
#pragma once

#include <atomic>
#include <cstdint>

#include "rdmesh/common/status.h"

namespace rdmesh::transport {

// Producer side, after the release store that published new entries.
Status wakeIfSleeping(std::atomic<uint32_t>& sleeping, int doorbell_fd);

// Consumer side of one flag: remembers whether we set it, so clearing costs nothing otherwise.
class SleepMark {
 public:
  // Marks us sleeping, then calls `pending()` (which must load the queue index seq_cst). If work
  // arrived meanwhile, clears the mark and returns false: do not block.
  template <typename Pending>
  bool prepare(std::atomic<uint32_t>& sleeping, Pending&& pending) {
    sleeping.store(1, std::memory_order_seq_cst);
    marked_ = true;
    if (pending()) {
      clear(sleeping);
      return false;
    }
    return true;
  }
  // Back from the loop for any reason: the producer need not ring a doorbell nobody waits on.
  void clear(std::atomic<uint32_t>& sleeping) {
    if (!marked_) return;
    sleeping.store(0, std::memory_order_relaxed);
    marked_ = false;
  }
  // The doorbell fired (edge-triggered, its counter never read back: 2^64 rings to overflow).
  // The producer has usually cleared the flag already; make sure it reads 0.
  void afterWakeup(std::atomic<uint32_t>& sleeping) {
    marked_ = true;
    clear(sleeping);
  }

 private:
  bool marked_ = false;
};

}  // namespace rdmesh::transport
