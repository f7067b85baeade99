// The eBPF capture programs (cni-init/bpf/capture.bpf.c): load, attach at a cgroup v2 directory,
// pin under a bpffs directory, reuse on restart, remove on uninstall.
//
// Everything that must outlive the agent is pinned: the maps and one bpf_link per program. A
// restarted agent reuses the pinned maps (so pods and open connections keep their records) and
// swaps its freshly loaded programs into the pinned links atomically (bpf_link_update), so
// capture never stops while the agent restarts or upgrades.
#pragma once

#include <memory>
#include <string>

#include "rdmesh/capture/interception_maps.h"
#include "rdmesh/common/status.h"

namespace rdmesh::capture {

inline constexpr const char* kDefaultPinDir = "/sys/fs/bpf/rdmesh";

struct BpfCaptureOptions {
  std::string cgroup_path;  // cgroup v2 directory to attach at; "" = the cgroup v2 root
  std::string pin_dir = kDefaultPinDir;
};

// The cgroup v2 mount point: /sys/fs/cgroup/unified (hybrid layout) or /sys/fs/cgroup.
Result<std::string> cgroupV2Root();

// Loads (or reuses) and attaches the programs; the returned maps stay valid after the links
// and pins are left in place at destruction (capture continues without the agent).
Result<std::unique_ptr<InterceptionMaps>> installBpfCapture(const BpfCaptureOptions& options);

// Detaches every pinned program and removes the pins and the pin directory. Idempotent.
Status uninstallBpfCapture(const BpfCaptureOptions& options);

}  // namespace rdmesh::capture
