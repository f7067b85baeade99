// The datagram librdmesh-preload.so sends to its sidecar before it connects an app's socket to the
// capture listener: "the connection that will come from loopback port P is for DST". Shared by
// the shim (cni-init/preload) and the sidecar (proxy), so it lives here, dependency-free.
//
// Transport: an abstract AF_UNIX SOCK_DGRAM socket (default "@rdmesh-preload"), which is scoped to
// the network namespace: exactly the pod's app and sidecar share it, with no file to mount.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rdmesh::preload {

inline constexpr uint32_t kMagic = 0x524d5031;  // "RMP1"
inline constexpr uint8_t kVersion = 1;

// All multi-byte fields in network byte order.
struct Registration {
  uint32_t magic;
  uint8_t version;
  uint8_t source_family;  // 4 or 6: how the sidecar sees the app's end (127.0.0.1 or ::1)
  uint16_t source_port;   // the app socket's loopback port (the sidecar's accept() peer port)
  uint8_t dst_family;     // 4 or 6: the address the app asked for
  uint8_t reserved[3];    // 0
  uint16_t dst_port;
  uint16_t reserved2;     // 0
  uint8_t dst_addr[16];   // IPv4 in the first 4 bytes
};

static_assert(sizeof(Registration) == 32, "Registration is a fixed 32-byte datagram");
static_assert(offsetof(Registration, source_port) == 6);
static_assert(offsetof(Registration, dst_port) == 12);
static_assert(offsetof(Registration, dst_addr) == 16);

}  // namespace rdmesh::preload
