// What the node agent needs from pod interception: put a pod in, take it out, check it, count.
// Implemented by the eBPF capture (bpf_capture.h); tests and `--bpf=false` use other backends.
#pragma once

#include <cstdint>
#include <vector>

#include "rdmesh/common/status.h"

namespace rdmesh::capture {

// One pod as the interception programs know it.
struct PodCapture {
  uint64_t netns_cookie = 0;
  std::vector<uint16_t> excluded_ports;  // outbound destination ports never captured
};

// Sums over CPUs of the programs' counters.
struct CaptureCounters {
  uint64_t captured = 0;                  // connects rewritten to the capture listener
  uint64_t skipped_uid = 0;               // connects by the sidecar's uid
  uint64_t skipped_port = 0;              // connects to an excluded port
  uint64_t skipped_loopback = 0;          // connects to loopback
  uint64_t answered_after_app_close = 0;  // of those: the app had closed first (write, close)
  uint64_t original_dst_answered = 0;     // original destinations told the sidecar (getsockname)
  uint64_t records = 0;                   // record slots in use (pod_del clears a pod's)
};

class InterceptionMaps {
 public:
  virtual ~InterceptionMaps() = default;
  // All or nothing: on failure nothing of this pod is left in the maps. Idempotent.
  virtual Status addPod(const PodCapture& pod) = 0;
  // Removes membership, excluded ports and every connection record of the pod's netns.
  // Idempotent: a pod that is not there is fine.
  virtual Status removePod(const PodCapture& pod) = 0;
  // Ok when every entry of the pod is present; otherwise says what is missing.
  virtual Status checkPod(const PodCapture& pod) = 0;
  // Original-destination records that belong to a netns (live or not yet overwritten).
  virtual size_t connectionRecords(uint64_t netns_cookie) = 0;
  virtual CaptureCounters counters() = 0;
};

}  // namespace rdmesh::capture
