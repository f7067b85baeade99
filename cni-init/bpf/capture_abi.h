// Layout shared by the eBPF capture programs (capture.bpf.c) and the loader (C++): map keys and
// values, map names and sizes. One definition for both sides; the loader static_asserts the sizes.
#ifndef RDMESH_CAPTURE_ABI_H_
#define RDMESH_CAPTURE_ABI_H_

#ifdef __bpf__
// vmlinux.h provides the __u* types.
#else
#include <linux/types.h>
#endif

// The outbound capture listener (ARCHITECTURE.md: 127.0.0.1:15001 / [::1]:15001).
#define RDMESH_CAPTURE_PORT 15001
// The sidecar's uid: its own connections are never captured.
#define RDMESH_SIDECAR_UID 1337
// Capacities. RDMESH_DST_SLOTS is a power of two (a socket cookie's low bits pick the slot).
#define RDMESH_MAX_PODS 4096
#define RDMESH_MAX_EXCLUDED_PORTS 65536
#define RDMESH_DST_SLOTS 65536

// Membership: a captured pod, keyed by its network namespace cookie.
struct rdmesh_pod_value {
  __u32 flags;  // reserved, 0
};

// One excluded outbound destination port of one pod.
struct rdmesh_port_key {
  __u64 netns_cookie;
  __u16 port;  // host order
  __u16 pad[3];
};

// An original destination. IPv4 addresses are kept v4-mapped (::ffff:a.b.c.d) so that an app
// socket that is AF_INET6 with a mapped address and a sidecar socket that is AF_INET agree.
struct rdmesh_orig_dst {
  __u8 addr[16];  // network order, v4-mapped for IPv4
  __u16 port;     // host order
  __u8 is_v4;     // 1: the app asked for an IPv4 (or v4-mapped) address
  __u8 pad;
  __u32 pad2;
  __u64 netns_cookie;  // the pod that made the connection (for cleanup on pod_del)
};

// One captured connection's record, in slot (app socket cookie % RDMESH_DST_SLOTS). The cookie
// says whose it is: a later socket whose cookie picks the same slot overwrites it.
struct rdmesh_dst_slot {
  __u64 socket_cookie;  // 0: empty
  struct rdmesh_orig_dst dst;
};

#endif  // RDMESH_CAPTURE_ABI_H_
