// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Transparent outbound capture for pods, without iptables (ARCHITECTURE.md, Interception).
//
// Attached once per node at a cgroup v2 directory (default the root); a socket belongs to a
// captured pod when its network namespace cookie is in rdmesh_pods (filled by rdmesh-node).
//
//   connect4/6   a captured TCP connect (not uid 1337, not loopback, not an excluded port):
//                note the original destination in the calling thread's storage, rewrite to the
//                outbound capture listener 127.0.0.1:15001 / [::1]:15001.
//   sockops      at TCP_CONNECT (same thread, same connect(), source port now chosen): record
//                the note by the app's (netns, local ip, local port), which is what the sidecar
//                sees as its peer.
//   getsockopt   SO_ORIGINAL_DST (SOL_IP / SOL_IPV6, 80) on the sidecar's accepted socket answers
//                from that record, exactly as after an iptables REDIRECT.
//   getpeername  the app sees the address it asked for, not the listener.
//   sock_release the sidecar closes its end of a captured connection: the record goes.
//
// Why this shape: a captured connect costs one hash update (and the sidecar's close one delete);
// the note lives in storage the thread keeps (created on its first captured connect, freed with
// it), so nothing is keyed by socket, and TCP is asked for no state callbacks (those run on every
// state change). sockops still runs at every callback TCP makes anyway (about nine per loopback
// connection) just for being attached: its first test is on the op.
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "capture_abi.h"

#define AF_INET 2
#define AF_INET6 10
#define SOL_IP 0
#define SOL_IPV6 41

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, RDMESH_MAX_PODS);
  __type(key, __u64);
  __type(value, struct rdmesh_pod_value);
} rdmesh_pods SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, RDMESH_MAX_EXCLUDED_PORTS);
  __type(key, struct rdmesh_port_key);
  __type(value, __u8);
} rdmesh_excl SEC(".maps");

// Between connect4 and TCP_CONNECT of the same socket: usually one connect() call, but a socket
// with TCP_FASTOPEN_CONNECT sends its SYN only at its first write, and the thread may connect
// other sockets meanwhile: a few notes, each for one socket, the oldest overwritten first.
#define RDMESH_PENDING_SLOTS 4
struct rdmesh_pending_slot {
  __u64 socket_cookie;  // 0: free
  struct rdmesh_orig_dst dst;
};
struct rdmesh_pending {
  struct rdmesh_pending_slot slot[RDMESH_PENDING_SLOTS];
  __u32 next;
};

struct {
  __uint(type, BPF_MAP_TYPE_TASK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, struct rdmesh_pending);
} rdmesh_pending_connect SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, RDMESH_MAX_CONNECTIONS);
  __type(key, struct rdmesh_conn_key);
  __type(value, struct rdmesh_orig_dst);
} rdmesh_dst_conn SEC(".maps");

// Counters, one slot per enum value, summed over CPUs by the agent.
enum rdmesh_counter {
  RDMESH_CNT_CAPTURED = 0,
  RDMESH_CNT_SKIP_UID,
  RDMESH_CNT_SKIP_PORT,
  RDMESH_CNT_SKIP_LOOPBACK,
  RDMESH_CNT_ESTABLISHED,
  RDMESH_CNT_ORIG_DST_ANSWERED,
  RDMESH_CNT_MAX,
};

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, RDMESH_CNT_MAX);
  __type(key, __u32);
  __type(value, __u64);
} rdmesh_counters SEC(".maps");

static __always_inline void count(__u32 which) {
  __u64* v = bpf_map_lookup_elem(&rdmesh_counters, &which);
  if (v) *v += 1;
}

static __always_inline void mapV4(__u8 out[16], __u32 ip4_net) {
  __builtin_memset(out, 0, 10);
  out[10] = 0xff;
  out[11] = 0xff;
  __builtin_memcpy(out + 12, &ip4_net, 4);
}

static __always_inline void copyV6(__u8 out[16], const __u32 ip6[4]) {
  __u32 words[4] = {ip6[0], ip6[1], ip6[2], ip6[3]};
  __builtin_memcpy(out, words, 16);
}

static __always_inline int isV4Mapped(const __u32 ip6[4]) {
  return ip6[0] == 0 && ip6[1] == 0 && ip6[2] == bpf_htonl(0x0000ffff);
}

// Common checks of connect4/6 after the address-family specific loopback test. Returns 1 and
// records the original destination when the connection is to be captured.
static __always_inline int shouldCapture(struct bpf_sock_addr* ctx, __u64 netns,
                                         struct rdmesh_orig_dst* dst) {
  if ((__u32)bpf_get_current_uid_gid() == RDMESH_SIDECAR_UID) {
    count(RDMESH_CNT_SKIP_UID);
    return 0;
  }
  struct rdmesh_port_key pk = {.netns_cookie = netns, .port = dst->port};
  if (bpf_map_lookup_elem(&rdmesh_excl, &pk)) {
    count(RDMESH_CNT_SKIP_PORT);
    return 0;
  }
  struct rdmesh_pending* pending = bpf_task_storage_get(
      &rdmesh_pending_connect, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
  if (!pending) return 0;
  struct rdmesh_pending_slot* slot = &pending->slot[pending->next & (RDMESH_PENDING_SLOTS - 1)];
  pending->next += 1;
  slot->socket_cookie = bpf_get_socket_cookie(ctx);
  slot->dst = *dst;
  count(RDMESH_CNT_CAPTURED);
  return 1;
}

SEC("cgroup/connect4")
int rdmesh_connect4(struct bpf_sock_addr* ctx) {
  if (ctx->type != 1 /* SOCK_STREAM */) return 1;
  __u64 netns = bpf_get_netns_cookie(ctx);
  if (!bpf_map_lookup_elem(&rdmesh_pods, &netns)) return 1;
  __u32 ip = ctx->user_ip4;
  __u32 host_ip = bpf_ntohl(ip);
  if ((host_ip >> 24) == 127 || host_ip == 0) {
    count(RDMESH_CNT_SKIP_LOOPBACK);
    return 1;
  }
  struct rdmesh_orig_dst dst = {};
  mapV4(dst.addr, ip);
  dst.port = bpf_ntohs((__u16)ctx->user_port);
  dst.is_v4 = 1;
  dst.netns_cookie = netns;
  if (!shouldCapture(ctx, netns, &dst)) return 1;
  ctx->user_ip4 = bpf_htonl(0x7f000001);
  ctx->user_port = bpf_htons(RDMESH_CAPTURE_PORT);
  return 1;
}

SEC("cgroup/connect6")
int rdmesh_connect6(struct bpf_sock_addr* ctx) {
  if (ctx->type != 1 /* SOCK_STREAM */) return 1;
  __u64 netns = bpf_get_netns_cookie(ctx);
  if (!bpf_map_lookup_elem(&rdmesh_pods, &netns)) return 1;
  __u32 ip6[4] = {ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3]};
  int mapped = isV4Mapped(ip6);
  int loopback = mapped ? ((bpf_ntohl(ip6[3]) >> 24) == 127 || ip6[3] == 0)
                        : (ip6[0] == 0 && ip6[1] == 0 && ip6[2] == 0 &&
                           (ip6[3] == bpf_htonl(1) || ip6[3] == 0));
  if (loopback) {
    count(RDMESH_CNT_SKIP_LOOPBACK);
    return 1;
  }
  struct rdmesh_orig_dst dst = {};
  copyV6(dst.addr, ip6);
  dst.port = bpf_ntohs((__u16)ctx->user_port);
  dst.is_v4 = mapped ? 1 : 0;
  dst.netns_cookie = netns;
  if (!shouldCapture(ctx, netns, &dst)) return 1;
  ctx->user_ip6[0] = 0;
  ctx->user_ip6[1] = 0;
  ctx->user_ip6[2] = mapped ? bpf_htonl(0x0000ffff) : 0;
  ctx->user_ip6[3] = mapped ? bpf_htonl(0x7f000001) : bpf_htonl(1);
  ctx->user_port = bpf_htons(RDMESH_CAPTURE_PORT);
  return 1;
}

// The captured connect of this thread, if `sk` is its socket (consumed).
static __always_inline int takePending(struct bpf_sock_ops* ops, struct rdmesh_orig_dst* out) {
  struct rdmesh_pending* pending =
      bpf_task_storage_get(&rdmesh_pending_connect, bpf_get_current_task_btf(), 0, 0);
  if (!pending) return 0;
  __u64 cookie = bpf_get_socket_cookie(ops);
  for (int i = 0; i < RDMESH_PENDING_SLOTS; ++i) {
    struct rdmesh_pending_slot* slot = &pending->slot[i];
    if (slot->socket_cookie != cookie) continue;
    slot->socket_cookie = 0;
    *out = slot->dst;
    return 1;
  }
  return 0;
}

// The app's end as (local ip, local port), v4-mapped for IPv4.
static __always_inline void localAddress(struct bpf_sock_ops* ops, struct rdmesh_conn_key* key) {
  if (ops->family == AF_INET) {
    mapV4(key->addr, ops->local_ip4);
  } else {
    __u32 ip6[4] = {ops->local_ip6[0], ops->local_ip6[1], ops->local_ip6[2], ops->local_ip6[3]};
    copyV6(key->addr, ip6);
  }
}

SEC("sockops")
int rdmesh_sockops(struct bpf_sock_ops* ops) {
  if (ops->op != BPF_SOCK_OPS_TCP_CONNECT_CB) return 1;
  struct rdmesh_orig_dst dst;
  if (!takePending(ops, &dst)) return 1;
  struct rdmesh_conn_key key = {.netns_cookie = dst.netns_cookie};
  localAddress(ops, &key);
  key.port = (__u16)ops->local_port;  // host order in sock_ops
  // The SYN is about to leave; the handshake completes after connect() releases the socket, so
  // the record exists before the sidecar's accept() can return.
  bpf_map_update_elem(&rdmesh_dst_conn, &key, &dst, BPF_ANY);
  count(RDMESH_CNT_ESTABLISHED);
  return 1;
}

// The sidecar's accepted socket: its peer is the app's end. Key it as sockops does.
static __always_inline int peerKey(struct bpf_sock* sk, __u64 netns, struct rdmesh_conn_key* key) {
  key->netns_cookie = netns;
  if (sk->family == AF_INET) {
    mapV4(key->addr, sk->dst_ip4);
  } else if (sk->family == AF_INET6) {
    __u32 ip6[4] = {sk->dst_ip6[0], sk->dst_ip6[1], sk->dst_ip6[2], sk->dst_ip6[3]};
    copyV6(key->addr, ip6);
  } else {
    return 0;
  }
  key->port = bpf_ntohs(sk->dst_port);
  return 1;
}

SEC("cgroup/getsockopt")
int rdmesh_getsockopt(struct bpf_sockopt* ctx) {
  if (ctx->optname != RDMESH_SO_ORIGINAL_DST) return 1;
  int level = ctx->level;
  if (level != SOL_IP && level != SOL_IPV6) return 1;
  struct bpf_sock* sk = ctx->sk;
  if (!sk) return 1;
  struct rdmesh_conn_key key = {};
  if (!peerKey(sk, bpf_get_netns_cookie(ctx), &key)) return 1;
  struct rdmesh_orig_dst* dst = bpf_map_lookup_elem(&rdmesh_dst_conn, &key);
  if (!dst) return 1;  // not captured: the kernel's own answer stands
  void* optval = ctx->optval;
  void* optval_end = ctx->optval_end;
  if (level == SOL_IP) {
    if (!dst->is_v4) return 1;
    struct sockaddr_in* sin = optval;
    if ((void*)(sin + 1) > optval_end) return 1;
    sin->sin_family = AF_INET;
    sin->sin_port = bpf_htons(dst->port);
    __builtin_memcpy(&sin->sin_addr, dst->addr + 12, 4);
    __builtin_memset(sin->__pad, 0, sizeof(sin->__pad));
    ctx->optlen = sizeof(*sin);
  } else {
    struct sockaddr_in6* sin6 = optval;
    if ((void*)(sin6 + 1) > optval_end) return 1;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = bpf_htons(dst->port);
    sin6->sin6_flowinfo = 0;
    __builtin_memcpy(&sin6->sin6_addr, dst->addr, 16);
    sin6->sin6_scope_id = 0;
    ctx->optlen = sizeof(*sin6);
  }
  ctx->retval = 0;
  count(RDMESH_CNT_ORIG_DST_ANSWERED);
  return 1;
}

// The sidecar's end of a captured connection closes: its peer key is the record's key. Only
// loopback peers can be (cheap test before the hash).
SEC("cgroup/sock_release")
int rdmesh_sock_release(struct bpf_sock* sk) {
  if (sk->protocol != 6 /* IPPROTO_TCP */ || sk->dst_port == 0) return 1;
  if (sk->family == AF_INET) {
    if ((bpf_ntohl(sk->dst_ip4) >> 24) != 127) return 1;
  } else if (sk->family == AF_INET6) {
    __u32 ip6[4] = {sk->dst_ip6[0], sk->dst_ip6[1], sk->dst_ip6[2], sk->dst_ip6[3]};
    int loopback = isV4Mapped(ip6)
                       ? (bpf_ntohl(ip6[3]) >> 24) == 127
                       : (ip6[0] == 0 && ip6[1] == 0 && ip6[2] == 0 && ip6[3] == bpf_htonl(1));
    if (!loopback) return 1;
  } else {
    return 1;
  }
  if (bpf_ntohs(sk->dst_port) == RDMESH_CAPTURE_PORT) return 1;  // the app's end
  struct rdmesh_conn_key key = {};
  if (!peerKey(sk, bpf_get_netns_cookie(sk), &key)) return 1;
  bpf_map_delete_elem(&rdmesh_dst_conn, &key);
  return 1;
}

// getpeername on the app's socket: the original destination instead of the capture listener.
static __always_inline struct rdmesh_orig_dst* capturedDestination(struct bpf_sock_addr* ctx) {
  __u64 netns = bpf_get_netns_cookie(ctx);
  if (!bpf_map_lookup_elem(&rdmesh_pods, &netns)) return 0;
  if (bpf_ntohs((__u16)ctx->user_port) != RDMESH_CAPTURE_PORT) return 0;
  struct bpf_sock* sk = ctx->sk;
  if (!sk) return 0;
  struct rdmesh_conn_key key = {.netns_cookie = netns};
  if (sk->family == AF_INET) {
    mapV4(key.addr, sk->src_ip4);
  } else {
    __u32 ip6[4] = {sk->src_ip6[0], sk->src_ip6[1], sk->src_ip6[2], sk->src_ip6[3]};
    copyV6(key.addr, ip6);
  }
  key.port = (__u16)sk->src_port;  // host order
  return bpf_map_lookup_elem(&rdmesh_dst_conn, &key);
}

SEC("cgroup/getpeername4")
int rdmesh_getpeername4(struct bpf_sock_addr* ctx) {
  struct rdmesh_orig_dst* dst = capturedDestination(ctx);
  if (!dst || !dst->is_v4) return 1;
  __u32 ip;
  __builtin_memcpy(&ip, dst->addr + 12, 4);
  ctx->user_ip4 = ip;
  ctx->user_port = bpf_htons(dst->port);
  return 1;
}

SEC("cgroup/getpeername6")
int rdmesh_getpeername6(struct bpf_sock_addr* ctx) {
  struct rdmesh_orig_dst* dst = capturedDestination(ctx);
  if (!dst) return 1;
  __u32 words[4];
  __builtin_memcpy(words, dst->addr, 16);
  ctx->user_ip6[0] = words[0];
  ctx->user_ip6[1] = words[1];
  ctx->user_ip6[2] = words[2];
  ctx->user_ip6[3] = words[3];
  ctx->user_port = bpf_htons(dst->port);
  return 1;
}
