// The layout of one sidecar session's region (agent_wire.h): built by the sidecar before it hands
// the memfd to its node agent, and checked by whoever maps a region it did not build (the agent,
// against the memfd's real size, before it maps or registers anything).
#pragma once

#include <cstdint>

#include "rdmesh/common/status.h"
#include "rdmesh/transport/agent_wire.h"
#include "rdmesh/transport/hello.h"

namespace rdmesh::transport {

struct AgentRegionSizes {
  uint32_t sq_depth = 4096;          // power of two, kMinQueueDepth..kMaxQueueDepth
  uint32_t cq_depth = 4096;          // power of two, >= the recv_depth of the sidecar's Hello
  uint64_t receive_bytes = 0;        // the session's v1 receive area
  uint64_t staging_bytes = 8 << 20;  // kMinStagingBytes..kMaxStagingBytes
};

// Sections in the order of agent_wire.h, each on a 4 KiB boundary; an error names the size that
// is out of range.
Result<wire::agent::RegionLayout> buildAgentRegionLayout(const AgentRegionSizes& sizes);

// Everything a region's creator could get wrong: magic, version, depths, section order, overlap,
// alignment, and the total against the memfd's real size. Never trusts a field before checking it.
Status validateAgentRegionLayout(const wire::agent::RegionLayout& layout, uint64_t memfd_bytes);

// The region fits the Hello it was announced with: the receive area is the Hello's, and the
// completion queue holds every arrival the peer may have in flight (recv_depth).
Status checkAgentRegionForHello(const wire::agent::RegionLayout& layout, const Hello& hello);

// The smallest power of two >= v (v <= 2^31).
uint32_t roundUpToPowerOfTwo(uint32_t v);

}  // namespace rdmesh::transport
