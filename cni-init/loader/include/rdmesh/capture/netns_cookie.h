// The network namespace cookie (the id eBPF programs see via bpf_get_netns_cookie).
#pragma once

#include <cstdint>
#include <string>

#include "rdmesh/common/status.h"

namespace rdmesh::capture {

// Cookie of the network namespace at `netns_path` (/run/netns/NAME, /proc/PID/ns/net). Reads it
// through a socket created in that namespace by a short-lived thread (SO_NETNS_COOKIE).
Result<uint64_t> netnsCookie(const std::string& netns_path);

// Cookie of the caller's own network namespace.
Result<uint64_t> currentNetnsCookie();

}  // namespace rdmesh::capture
