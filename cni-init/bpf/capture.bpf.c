// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Transparent outbound capture for pods, without iptables (ARCHITECTURE.md, Interception).
//
// Attached once per node at a cgroup v2 directory (default the root); a socket belongs to a
// captured pod when its network namespace cookie is in rdmesh_pods (filled by rdmesh-node).
//
//   connect4/6   a captured TCP connect (not uid 1337, not loopback, not an excluded port):
//                write the original destination into the slot of the socket's cookie, rewrite
//                to the outbound capture listener 127.0.0.1:15001 / [::1]:15001.
//   getsockname  on the sidecar's accepted socket (local port 15001): find the app's socket by
//                the connection's 4-tuple (also once closed, in FIN_WAIT or TIME_WAIT), answer
//                its slot as the local address, as a TPROXY listener's accepted socket would.
//   getpeername  the app sees the address it asked for, not the listener.
//
// Why this shape: a captured connect costs one array write (no allocation, no lock), and nothing
// else runs on the app's path: no sockops program (the kernel calls one at every TCP callback,
// about nine per loopback connection, just for being attached), no close hook. A record is never
// deleted; the next socket whose cookie picks its slot overwrites it, and pod_del clears a pod's.
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "capture_abi.h"

#define IPPROTO_TCP 6

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

// Original destinations of captured connections, by app socket cookie. Mmapable: the agent scans
// it in memory for pod_del and the record count.
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(map_flags, BPF_F_MMAPABLE);
  __uint(max_entries, RDMESH_DST_SLOTS);
  __type(key, __u32);
  __type(value, struct rdmesh_dst_slot);
} rdmesh_dst_slots SEC(".maps");

// Counters, one slot per enum value, summed over CPUs by the agent.
enum rdmesh_counter {
  RDMESH_CNT_CAPTURED = 0,
  RDMESH_CNT_SKIP_UID,
  RDMESH_CNT_SKIP_PORT,
  RDMESH_CNT_SKIP_LOOPBACK,
  RDMESH_CNT_ANSWERED_AFTER_APP_CLOSE,
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

static __always_inline struct rdmesh_dst_slot* slotOf(__u64 cookie) {
  __u32 index = (__u32)cookie & (RDMESH_DST_SLOTS - 1);
  return bpf_map_lookup_elem(&rdmesh_dst_slots, &index);
}

// The record of the socket with this cookie, if its slot still holds it.
static __always_inline struct rdmesh_orig_dst* recordOf(__u64 cookie) {
  struct rdmesh_dst_slot* slot = cookie ? slotOf(cookie) : 0;
  return slot && slot->socket_cookie == cookie ? &slot->dst : 0;
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
  __u64 cookie = bpf_get_socket_cookie(ctx);
  struct rdmesh_dst_slot* slot = slotOf(cookie);
  if (!slot) return 0;
  // Cookie first: whoever still asks for the slot's previous owner sees the mismatch. A second
  // connect() of the same socket rewrites its own slot.
  slot->socket_cookie = cookie;
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

// The cookie of the app's socket behind the sidecar's accepted one, found by `tuple` (the app's
// view: its remote is the listener, its local the sidecar's peer). A socket the app has closed
// lingers in FIN_WAIT (orphaned) or TIME_WAIT, which keeps the cookie. *closed says which.
static __always_inline __u64 appCookie(struct bpf_sock_addr* ctx, struct bpf_sock_tuple* tuple,
                                       __u32 tuple_len, int* closed) {
  struct bpf_sock* app = bpf_skc_lookup_tcp(ctx, tuple, tuple_len, BPF_F_CURRENT_NETNS, 0);
  if (!app) return 0;
  __u64 cookie = 0;
  struct tcp_sock* tp = bpf_skc_to_tcp_sock(app);
  if (tp) {
    cookie = tp->inet_conn.icsk_inet.sk.__sk_common.skc_cookie.counter;
    *closed = tp->inet_conn.icsk_inet.sk.sk_socket == 0;  // closed, in FIN_WAIT
  } else {
    struct tcp_timewait_sock* tw = bpf_skc_to_tcp_timewait_sock(app);
    if (tw) cookie = tw->tw_sk.__tw_common.skc_cookie.counter;
    *closed = 1;
  }
  bpf_sk_release(app);
  return cookie;
}

// The record of the connection behind the sidecar's accepted socket.
static __always_inline int recordFor(struct bpf_sock_addr* ctx, struct bpf_sock_tuple* tuple,
                                     __u32 tuple_len, struct rdmesh_orig_dst* out) {
  int closed = 0;
  struct rdmesh_orig_dst* dst = recordOf(appCookie(ctx, tuple, tuple_len, &closed));
  if (!dst) return 0;
  *out = *dst;
  if (closed) count(RDMESH_CNT_ANSWERED_AFTER_APP_CLOSE);
  return 1;
}

// Filter of both getsockname hooks: the sidecar's accepted socket of a captured pod (a local
// port of 15001 and a peer; the listener itself has none), or null.
static __always_inline struct bpf_sock* acceptedCaptureSocket(struct bpf_sock_addr* ctx) {
  if (ctx->user_port != bpf_htons(RDMESH_CAPTURE_PORT)) return 0;
  struct bpf_sock* sk = ctx->sk;
  if (!sk || sk->protocol != IPPROTO_TCP || sk->dst_port == 0) return 0;
  __u64 netns = bpf_get_netns_cookie(ctx);
  return bpf_map_lookup_elem(&rdmesh_pods, &netns) ? sk : 0;
}

SEC("cgroup/getsockname4")
int rdmesh_getsockname4(struct bpf_sock_addr* ctx) {
  struct bpf_sock* sk = acceptedCaptureSocket(ctx);
  if (!sk) return 1;
  struct bpf_sock_tuple tuple = {};
  tuple.ipv4.saddr = ctx->user_ip4;
  tuple.ipv4.sport = (__u16)ctx->user_port;
  tuple.ipv4.daddr = sk->dst_ip4;
  tuple.ipv4.dport = (__u16)sk->dst_port;
  struct rdmesh_orig_dst dst;
  if (!recordFor(ctx, &tuple, sizeof(tuple.ipv4), &dst) || !dst.is_v4) return 1;
  __u32 ip;
  __builtin_memcpy(&ip, dst.addr + 12, 4);
  ctx->user_ip4 = ip;
  ctx->user_port = bpf_htons(dst.port);
  count(RDMESH_CNT_ORIG_DST_ANSWERED);
  return 1;
}

SEC("cgroup/getsockname6")
int rdmesh_getsockname6(struct bpf_sock_addr* ctx) {
  struct bpf_sock* sk = acceptedCaptureSocket(ctx);
  if (!sk) return 1;
  __u32 local[4] = {ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3]};
  __u32 remote[4] = {sk->dst_ip6[0], sk->dst_ip6[1], sk->dst_ip6[2], sk->dst_ip6[3]};
  struct bpf_sock_tuple tuple = {};
  __u32 tuple_len;
  if (isV4Mapped(remote)) {  // a v4 app on a dual-stack listener: the app's socket is v4
    tuple.ipv4.saddr = local[3];
    tuple.ipv4.daddr = remote[3];
    tuple.ipv4.sport = (__u16)ctx->user_port;
    tuple.ipv4.dport = (__u16)sk->dst_port;
    tuple_len = sizeof(tuple.ipv4);
  } else {
    __builtin_memcpy(tuple.ipv6.saddr, local, 16);
    __builtin_memcpy(tuple.ipv6.daddr, remote, 16);
    tuple.ipv6.sport = (__u16)ctx->user_port;
    tuple.ipv6.dport = (__u16)sk->dst_port;
    tuple_len = sizeof(tuple.ipv6);
  }
  struct rdmesh_orig_dst dst;
  if (!recordFor(ctx, &tuple, tuple_len, &dst)) return 1;
  __u32 words[4];
  __builtin_memcpy(words, dst.addr, 16);
  ctx->user_ip6[0] = words[0];
  ctx->user_ip6[1] = words[1];
  ctx->user_ip6[2] = words[2];
  ctx->user_ip6[3] = words[3];
  ctx->user_port = bpf_htons(dst.port);
  count(RDMESH_CNT_ORIG_DST_ANSWERED);
  return 1;
}

// getpeername on the app's socket: the original destination instead of the capture listener.
static __always_inline struct rdmesh_orig_dst* capturedDestination(struct bpf_sock_addr* ctx) {
  if (bpf_ntohs((__u16)ctx->user_port) != RDMESH_CAPTURE_PORT) return 0;
  return recordOf(bpf_get_socket_cookie(ctx));
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
