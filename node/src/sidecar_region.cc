#include "sidecar_region.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <utility>

namespace rdmesh::node {

namespace {

using wire::agent::Arrival;
using wire::agent::RegionLayout;
using wire::agent::Submission;

Status fail(const std::string& what) {
  return invalidArgument("region: " + what);
}

bool isDepth(uint32_t d) {
  return std::has_single_bit(d) && d >= wire::agent::kMinQueueDepth &&
         d <= wire::agent::kMaxQueueDepth;
}

// [offset, offset + bytes) as a section: aligned, starting at or after `from`, inside `end`.
Status section(const char* name, uint64_t offset, uint64_t bytes, uint64_t from, uint64_t end) {
  if (offset % wire::agent::kSectionAlign != 0) {
    return fail(fmt::format("{} offset {} is not a multiple of {}", name, offset,
                            wire::agent::kSectionAlign));
  }
  if (offset < from) {
    return fail(fmt::format("{} at {} overlaps the section before it (which ends at {})", name,
                            offset, from));
  }
  if (offset > end || bytes > end - offset) {
    return fail(
        fmt::format("{} [{}, +{}) lies outside the {}-byte region", name, offset, bytes, end));
  }
  return {};
}

Status checkEventFd(int fd, const char* name) {
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0) return fail(fmt::format("{}: not an open fd", name));
  // An eventfd is an anonymous inode; reading its fdinfo would be the precise check, the flags
  // are enough to refuse a regular file or a socket passed by mistake.
  if (S_ISREG(st.st_mode) || S_ISSOCK(st.st_mode) || S_ISDIR(st.st_mode)) {
    return fail(fmt::format("{}: expected an eventfd", name));
  }
  return {};
}

}  // namespace

Status validateRegionLayout(const RegionLayout& l, uint64_t memfd_bytes,
                            const RegionRequirements& req) {
  namespace aw = wire::agent;
  if (l.magic != aw::kRegionMagic) return fail(fmt::format("bad magic {:#x}", l.magic));
  if (l.version != aw::kRegionVersion) {
    return fail(fmt::format("version {} (this agent speaks {})", l.version, aw::kRegionVersion));
  }
  if (l.region_bytes != memfd_bytes) {
    return fail(
        fmt::format("region_bytes {} but the memfd holds {} bytes", l.region_bytes, memfd_bytes));
  }
  if (l.region_bytes > aw::kMaxRegionBytes) {
    return fail(
        fmt::format("region_bytes {} exceeds the limit {}", l.region_bytes, aw::kMaxRegionBytes));
  }
  if (!isDepth(l.sq_depth)) {
    return fail(fmt::format("sq_depth {} is not a power of two in {}..{}", l.sq_depth,
                            aw::kMinQueueDepth, aw::kMaxQueueDepth));
  }
  if (!isDepth(l.cq_depth)) {
    return fail(fmt::format("cq_depth {} is not a power of two in {}..{}", l.cq_depth,
                            aw::kMinQueueDepth, aw::kMaxQueueDepth));
  }
  if (l.cq_depth < req.recv_depth) {
    return fail(fmt::format("cq_depth {} is smaller than the Hello's recv_depth {}", l.cq_depth,
                            req.recv_depth));
  }
  if (l.receive_bytes < req.receive_bytes) {
    return fail(fmt::format("receive_bytes {} is smaller than the Hello's receive area ({} bytes)",
                            l.receive_bytes, req.receive_bytes));
  }
  if (l.staging_bytes < aw::kMinStagingBytes || l.staging_bytes > aw::kMaxStagingBytes) {
    return fail(fmt::format("staging_bytes {} is not in {}..{}", l.staging_bytes,
                            aw::kMinStagingBytes, aw::kMaxStagingBytes));
  }
  const uint64_t end = l.region_bytes;
  uint64_t sq_bytes = uint64_t{l.sq_depth} * sizeof(Submission);
  uint64_t cq_bytes = uint64_t{l.cq_depth} * sizeof(Arrival);
  if (Status s = section("submission queue", l.sq_offset, sq_bytes, aw::kRegionHeaderBytes, end);
      !s) {
    return s;
  }
  if (Status s = section("completion queue", l.cq_offset, cq_bytes, l.sq_offset + sq_bytes, end);
      !s) {
    return s;
  }
  if (Status s =
          section("receive area", l.receive_offset, l.receive_bytes, l.cq_offset + cq_bytes, end);
      !s) {
    return s;
  }
  return section("send staging", l.staging_offset, l.staging_bytes,
                 l.receive_offset + l.receive_bytes, end);
}

Result<std::unique_ptr<SidecarRegion>> SidecarRegion::map(UniqueFd memfd,
                                                          UniqueFd doorbell_to_agent,
                                                          UniqueFd doorbell_to_sidecar,
                                                          const RegionRequirements& req) {
  struct stat st {};
  if (!memfd || ::fstat(memfd.get(), &st) != 0) return fail("the region fd is not an open fd");
  if (!S_ISREG(st.st_mode)) return fail("the region fd is not a memfd");
  auto size = static_cast<uint64_t>(st.st_size);
  if (size < wire::agent::kRegionHeaderBytes || size > wire::agent::kMaxRegionBytes) {
    return fail(fmt::format("the memfd holds {} bytes (expected {}..{})", size,
                            wire::agent::kRegionHeaderBytes, wire::agent::kMaxRegionBytes));
  }
  if (Status s = checkEventFd(doorbell_to_agent.get(), "doorbell to agent"); !s) return s;
  if (Status s = checkEventFd(doorbell_to_sidecar.get(), "doorbell to sidecar"); !s) return s;
  // A sidecar that shrank its memfd later would make the agent's next access fault (SIGBUS):
  // its size must be sealed. Sidecars seal it themselves (MFD_ALLOW_SEALING, F_SEAL_SHRINK |
  // F_SEAL_GROW); one that allowed sealing but did not seal is sealed here.
  int seals = ::fcntl(memfd.get(), F_GET_SEALS);
  if (seals >= 0 && (seals & F_SEAL_SHRINK) == 0 &&
      ::fcntl(memfd.get(), F_ADD_SEALS, F_SEAL_SHRINK) == 0) {
    seals |= F_SEAL_SHRINK;
  }
  if (seals < 0 || (seals & F_SEAL_SHRINK) == 0) {
    return fail(
        fmt::format("the memfd's size cannot be sealed ({}): create it with MFD_ALLOW_SEALING "
                    "and seal it with F_SEAL_SHRINK",
                    seals < 0 ? strerror(errno) : "F_SEAL_SEAL is set without F_SEAL_SHRINK"));
  }
  RegionLayout layout;
  if (::pread(memfd.get(), &layout, sizeof(layout), 0) != static_cast<ssize_t>(sizeof(layout))) {
    return fail("cannot read the layout from the memfd");
  }
  if (Status s = validateRegionLayout(layout, size, req); !s) return s;
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd.get(), 0);
  if (p == MAP_FAILED) return fail(fmt::format("mmap of {} bytes: {}", size, strerror(errno)));
  return std::unique_ptr<SidecarRegion>(
      new SidecarRegion(std::move(memfd), std::move(doorbell_to_agent),
                        std::move(doorbell_to_sidecar), static_cast<std::byte*>(p), layout));
}

SidecarRegion::SidecarRegion(UniqueFd memfd, UniqueFd to_agent, UniqueFd to_sidecar,
                             std::byte* base, const RegionLayout& layout)
    : memfd_(std::move(memfd)),
      doorbell_to_agent_(std::move(to_agent)),
      doorbell_to_sidecar_(std::move(to_sidecar)),
      base_(base),
      header_(reinterpret_cast<wire::agent::RegionHeader*>(base)),
      layout_(layout) {}

SidecarRegion::~SidecarRegion() {
  ::munmap(base_, layout_.region_bytes);
}

Submission* SidecarRegion::submissions() {
  return reinterpret_cast<Submission*>(base_ + layout_.sq_offset);
}

Arrival* SidecarRegion::arrivals() {
  return reinterpret_cast<Arrival*>(base_ + layout_.cq_offset);
}

bool SidecarRegion::wakeSidecarIfSleeping() {
  // Dekker with the sidecar: it sets sidecar_sleeping then re-reads cq_tail; we published
  // cq_tail then read sidecar_sleeping. seq_cst on both sides: one of us sees the other.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  auto& sleeping = header_->sidecar_sleeping;
  if (sleeping.load(std::memory_order_relaxed) == 0 ||
      sleeping.exchange(0, std::memory_order_seq_cst) == 0) {
    return false;
  }
  ::eventfd_write(doorbell_to_sidecar_.get(), 1);
  return true;
}

void SidecarRegion::markClosed() {
  header_->closed.store(1, std::memory_order_seq_cst);
  wakeSidecarIfSleeping();
}

}  // namespace rdmesh::node
