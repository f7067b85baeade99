// One sidecar session's shared memory as the agent holds it (agent_wire.h): the sidecar's memfd,
// checked and mapped MAP_SHARED, and its two doorbells. The layout is checked before anything is
// mapped and copied once, so the sidecar cannot move the sections under the agent afterwards.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "rdmesh/common/status.h"
#include "rdmesh/common/unique_fd.h"
#include "rdmesh/transport/agent_wire.h"
#include "rdmesh/transport/hello.h"

namespace rdmesh::node {

// What the sidecar's Hello promises about its region: room for `recv_depth` arrivals and a
// receive area of the geometry's size.
struct RegionRequirements {
  uint32_t recv_depth = 0;
  uint64_t receive_bytes = 0;
  static RegionRequirements of(const transport::Hello& hello) {
    return {hello.geometry.recv_depth, hello.geometry.receiveAreaBytes()};
  }
};

// Magic, version, power-of-two depths, sections 4 KiB aligned, in order, inside the memfd and
// not overlapping, sizes within agent_wire.h's limits. Errors say which field is wrong.
Status validateRegionLayout(const wire::agent::RegionLayout& layout, uint64_t memfd_bytes,
                            const RegionRequirements& requirements);

class SidecarRegion {
 public:
  // Fds in the contract's order: region memfd, doorbell to agent, doorbell to sidecar.
  static Result<std::unique_ptr<SidecarRegion>> map(UniqueFd memfd, UniqueFd doorbell_to_agent,
                                                    UniqueFd doorbell_to_sidecar,
                                                    const RegionRequirements& requirements);
  ~SidecarRegion();
  SidecarRegion(const SidecarRegion&) = delete;
  SidecarRegion& operator=(const SidecarRegion&) = delete;

  const wire::agent::RegionLayout& layout() const { return layout_; }
  wire::agent::RegionHeader& header() { return *header_; }
  std::span<std::byte> bytes() { return {base_, layout_.region_bytes}; }
  wire::agent::Submission* submissions();
  wire::agent::Arrival* arrivals();
  int doorbellToAgent() const { return doorbell_to_agent_.get(); }
  // Wakes the sidecar if it announced sleep (the shm backend's protocol).
  bool wakeSidecarIfSleeping();
  // The session is over: the sidecar must stop and nothing more is written (then woken).
  void markClosed();

  static constexpr int kFdCount = 3;  // memfd, two doorbells

 private:
  SidecarRegion(UniqueFd memfd, UniqueFd to_agent, UniqueFd to_sidecar, std::byte* base,
                const wire::agent::RegionLayout& layout);

  UniqueFd memfd_;
  UniqueFd doorbell_to_agent_;
  UniqueFd doorbell_to_sidecar_;
  std::byte* base_;
  wire::agent::RegionHeader* header_;
  wire::agent::RegionLayout layout_;
};

}  // namespace rdmesh::node
