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
// SO_ORIGINAL_DST (linux/netfilter_ipv4.h) and IP6T_SO_ORIGINAL_DST share the value 80.
#define RDMESH_SO_ORIGINAL_DST 80

// Capacities. Records live in LRU maps, so a leak (a missed close callback) can never fill them.
#define RDMESH_MAX_PODS 4096
#define RDMESH_MAX_EXCLUDED_PORTS 65536
#define RDMESH_MAX_CONNECTIONS 65536

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
  __u8 addr[16];       // network order, v4-mapped for IPv4
  __u16 port;          // host order
  __u8 is_v4;          // 1: the app asked for an IPv4 (or v4-mapped) address
  __u8 pad;
  __u32 pad2;
  __u64 netns_cookie;  // the pod that made the connection (for cleanup on pod_del)
};

// The app side of a captured connection, as the sidecar sees its peer: (netns, local ip, port).
struct rdmesh_conn_key {
  __u64 netns_cookie;
  __u8 addr[16];  // v4-mapped for IPv4
  __u16 port;     // host order
  __u16 pad[3];
};

#endif  // RDMESH_CAPTURE_ABI_H_
