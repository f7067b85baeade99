#include "rdmesh/transport/agent_region.h"

#include <fmt/format.h>

namespace rdmesh::transport {

namespace agentwire = wire::agent;

namespace {

bool isPowerOfTwo(uint64_t v) {
  return v != 0 && (v & (v - 1)) == 0;
}

uint64_t alignUp(uint64_t v) {
  return (v + agentwire::kSectionAlign - 1) & ~uint64_t{agentwire::kSectionAlign - 1};
}

Status checkDepth(const char* name, uint32_t depth) {
  if (!isPowerOfTwo(depth) || depth < agentwire::kMinQueueDepth ||
      depth > agentwire::kMaxQueueDepth) {
    return invalidArgument(fmt::format("agent region: {} {} is not a power of two in {}..{}", name,
                                       depth, agentwire::kMinQueueDepth,
                                       agentwire::kMaxQueueDepth));
  }
  return {};
}

Status checkStaging(uint64_t bytes) {
  if (bytes < agentwire::kMinStagingBytes || bytes > agentwire::kMaxStagingBytes ||
      bytes % agentwire::kSectionAlign != 0) {
    return invalidArgument(fmt::format(
        "agent region: staging_bytes {} is not a multiple of {} in {}..{}", bytes,
        agentwire::kSectionAlign, agentwire::kMinStagingBytes, agentwire::kMaxStagingBytes));
  }
  return {};
}

}  // namespace

uint32_t roundUpToPowerOfTwo(uint32_t v) {
  uint32_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

Result<agentwire::RegionLayout> buildAgentRegionLayout(const AgentRegionSizes& sizes) {
  if (Status s = checkDepth("sq_depth", sizes.sq_depth); !s) return s;
  if (Status s = checkDepth("cq_depth", sizes.cq_depth); !s) return s;
  if (Status s = checkStaging(sizes.staging_bytes); !s) return s;
  if (sizes.receive_bytes == 0 || sizes.receive_bytes > agentwire::kMaxRegionBytes) {
    return invalidArgument(
        fmt::format("agent region: receive area of {} bytes", sizes.receive_bytes));
  }
  agentwire::RegionLayout l{};
  l.magic = agentwire::kRegionMagic;
  l.version = agentwire::kRegionVersion;
  l.sq_depth = sizes.sq_depth;
  l.cq_depth = sizes.cq_depth;
  l.sq_offset = agentwire::kRegionHeaderBytes;
  l.cq_offset = alignUp(l.sq_offset + uint64_t{l.sq_depth} * sizeof(agentwire::Submission));
  l.receive_offset = alignUp(l.cq_offset + uint64_t{l.cq_depth} * sizeof(agentwire::Arrival));
  l.receive_bytes = sizes.receive_bytes;
  l.staging_offset = alignUp(l.receive_offset + l.receive_bytes);
  l.staging_bytes = sizes.staging_bytes;
  l.region_bytes = l.staging_offset + l.staging_bytes;
  if (l.region_bytes > agentwire::kMaxRegionBytes) {
    return invalidArgument(fmt::format("agent region: {} bytes in all, more than {}",
                                       l.region_bytes, agentwire::kMaxRegionBytes));
  }
  return l;
}

Status validateAgentRegionLayout(const agentwire::RegionLayout& l, uint64_t memfd_bytes) {
  if (l.magic != agentwire::kRegionMagic) {
    return protocolError(fmt::format("agent region: bad magic {:#x}", l.magic));
  }
  if (l.version != agentwire::kRegionVersion) {
    return protocolError(fmt::format("agent region: version {} (this build speaks {})", l.version,
                                     agentwire::kRegionVersion));
  }
  if (Status s = checkDepth("sq_depth", l.sq_depth); !s) return protocolError(s.message());
  if (Status s = checkDepth("cq_depth", l.cq_depth); !s) return protocolError(s.message());
  if (Status s = checkStaging(l.staging_bytes); !s) return protocolError(s.message());
  if (l.region_bytes != memfd_bytes || l.region_bytes > agentwire::kMaxRegionBytes) {
    return protocolError(fmt::format("agent region: layout says {} bytes, the memfd has {}",
                                     l.region_bytes, memfd_bytes));
  }
  // Each section: aligned, after the previous one, inside the region. Sizes are bounded above
  // (depths <= 2^16, staging <= 64 MiB, region <= 4 GiB), so none of these sums can overflow.
  struct Section {
    const char* name;
    uint64_t offset;
    uint64_t bytes;
  };
  const Section sections[] = {
      {"submission queue", l.sq_offset, uint64_t{l.sq_depth} * sizeof(agentwire::Submission)},
      {"completion queue", l.cq_offset, uint64_t{l.cq_depth} * sizeof(agentwire::Arrival)},
      {"receive area", l.receive_offset, l.receive_bytes},
      {"send staging", l.staging_offset, l.staging_bytes},
  };
  uint64_t end = agentwire::kRegionHeaderBytes;
  for (const Section& s : sections) {
    if (s.offset % agentwire::kSectionAlign != 0 || s.offset < end ||
        s.offset > l.region_bytes || s.bytes > l.region_bytes - s.offset || s.bytes == 0) {
      return protocolError(fmt::format(
          "agent region: {} at {} (+{} bytes) is misaligned, overlaps or lies outside the {} "
          "bytes",
          s.name, s.offset, s.bytes, l.region_bytes));
    }
    end = s.offset + s.bytes;
  }
  return {};
}

Status checkAgentRegionForHello(const agentwire::RegionLayout& l, const Hello& hello) {
  if (l.receive_bytes != hello.geometry.receiveAreaBytes()) {
    return protocolError(fmt::format("agent region: receive area of {} bytes, the Hello implies {}",
                                     l.receive_bytes, hello.geometry.receiveAreaBytes()));
  }
  if (l.cq_depth < hello.geometry.recv_depth) {
    return protocolError(fmt::format(
        "agent region: completion queue of {} cannot hold the Hello's recv_depth {}", l.cq_depth,
        hello.geometry.recv_depth));
  }
  return {};
}

}  // namespace rdmesh::transport
