// librdmesh-preload.so: capture without eBPF, for dynamically linked apps (LD_PRELOAD).
//
// connect() of a TCP socket to a non-loopback IPv4/IPv6 address (not an excluded port, not by
// uid 1337) is sent to the pod's capture listener 127.0.0.1:15001 ([::1]:15001) instead. So that
// the sidecar knows where it was going, the shim first binds the socket to an ephemeral loopback
// port P and sends "P -> original destination" as one datagram to the sidecar's abstract unix
// socket (@rdmesh-preload, scoped to the pod's network namespace); the sidecar looks P up when it
// accepts the connection (its peer port). The datagram is queued before connect() starts, so
// it is always there by accept() time: no round trip, one extra sendto() per connect.
// getpeername() reports the address the app asked for.
//
// Correct with non-blocking sockets (nothing here blocks: bind, getsockname and a datagram
// send), threads (no shared mutable state but a small table behind a mutex) and fork (the child
// inherits fds and table alike). After exec the shim loads again from LD_PRELOAD; only
// getpeername() of a captured socket inherited across exec reports the listener.
// Not covered: statically linked apps, raw syscalls (Go's runtime, io_uring), TCP Fast Open's
// sendto(MSG_FASTOPEN).
//
// Plain C-style code on purpose: it runs inside arbitrary processes (no exceptions, no static
// constructors with dependencies, no allocation on the connect path).
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "rdmesh/common/preload_wire.h"

namespace {

constexpr uint16_t kDefaultCapturePort = 15001;
constexpr uid_t kSidecarUid = 1337;
constexpr const char* kDefaultRegistry = "@rdmesh-preload";
constexpr int kTableSize = 4096;  // captured fds remembered for getpeername (by fd % size)

using ConnectFn = int (*)(int, const sockaddr*, socklen_t);
using GetpeernameFn = int (*)(int, sockaddr*, socklen_t*);

struct Config {
  ConnectFn real_connect = nullptr;
  GetpeernameFn real_getpeername = nullptr;
  uint16_t capture_port = kDefaultCapturePort;
  uint8_t excluded[65536 / 8] = {};
  sockaddr_un registry{};
  socklen_t registry_len = 0;
  int registry_fd = -1;
};

Config g_config;
pthread_once_t g_once = PTHREAD_ONCE_INIT;

struct Captured {
  int fd = -1;
  uint16_t local_port = 0;
  sockaddr_storage original{};
  socklen_t original_len = 0;
};
Captured g_table[kTableSize];
pthread_mutex_t g_table_mu = PTHREAD_MUTEX_INITIALIZER;

bool excluded(uint16_t port) { return (g_config.excluded[port / 8] >> (port % 8)) & 1; }

// "5432,6379" -> bitmap; anything that is not a port is ignored.
void parseExcluded(const char* list) {
  while (list != nullptr && *list != '\0') {
    char* end = nullptr;
    long port = strtol(list, &end, 10);
    if (end == list) {
      ++list;
      continue;
    }
    if (port > 0 && port < 65536) g_config.excluded[port / 8] |= uint8_t(1u << (port % 8));
    list = end;
  }
}

void init() {
  g_config.real_connect = reinterpret_cast<ConnectFn>(dlsym(RTLD_NEXT, "connect"));
  g_config.real_getpeername = reinterpret_cast<GetpeernameFn>(dlsym(RTLD_NEXT, "getpeername"));
  parseExcluded(getenv("RDMESH_EXCLUDE_OUTBOUND_PORTS"));
  if (const char* p = getenv("RDMESH_CAPTURE_PORT")) {
    long port = strtol(p, nullptr, 10);
    if (port > 0 && port < 65536) g_config.capture_port = static_cast<uint16_t>(port);
  }
  const char* name = getenv("RDMESH_PRELOAD_SOCKET");
  if (name == nullptr || name[0] != '@' || name[1] == '\0') name = kDefaultRegistry;
  size_t n = strnlen(name, sizeof(g_config.registry.sun_path));
  g_config.registry.sun_family = AF_UNIX;
  memcpy(g_config.registry.sun_path + 1, name + 1, n - 1);  // abstract: leading NUL
  g_config.registry_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + n);
  g_config.registry_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
}

bool isLoopbackOrAny4(const in_addr& a) {
  uint32_t h = ntohl(a.s_addr);
  return (h >> 24) == 127 || h == 0;
}

bool isV4Mapped(const in6_addr& a) { return IN6_IS_ADDR_V4MAPPED(&a); }

in_addr mappedV4(const in6_addr& a) {
  in_addr v4;
  memcpy(&v4, a.s6_addr + 12, 4);
  return v4;
}

void remember(int fd, uint16_t local_port, const sockaddr* original, socklen_t len) {
  if (fd < 0) return;
  pthread_mutex_lock(&g_table_mu);
  Captured& c = g_table[fd % kTableSize];
  c.fd = fd;
  c.local_port = local_port;
  memcpy(&c.original, original, len);
  c.original_len = len;
  pthread_mutex_unlock(&g_table_mu);
}

// The capture decision and the redirect. Returns false to leave the connect alone.
bool capture(int fd, const sockaddr* addr, socklen_t len, sockaddr_storage* redirect,
             socklen_t* redirect_len) {
  if (addr == nullptr || g_config.registry_fd < 0) return false;
  rdmesh::preload::Registration reg{};
  sockaddr_storage bind_to{};
  socklen_t bind_len = 0;
  if (addr->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(addr);
    if (isLoopbackOrAny4(sin->sin_addr)) return false;
    reg.dst_family = 4;
    reg.dst_port = sin->sin_port;
    memcpy(reg.dst_addr, &sin->sin_addr, 4);
    auto* b = reinterpret_cast<sockaddr_in*>(&bind_to);
    b->sin_family = AF_INET;
    b->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind_len = sizeof(sockaddr_in);
    reg.source_family = 4;
  } else if (addr->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(addr);
    auto* b = reinterpret_cast<sockaddr_in6*>(&bind_to);
    b->sin6_family = AF_INET6;
    bind_len = sizeof(sockaddr_in6);
    reg.dst_port = sin6->sin6_port;
    if (isV4Mapped(sin6->sin6_addr)) {
      in_addr v4 = mappedV4(sin6->sin6_addr);
      if (isLoopbackOrAny4(v4)) return false;
      reg.dst_family = 4;
      memcpy(reg.dst_addr, &v4, 4);
      // ::ffff:127.0.0.1: the sidecar's IPv4 listener sees the app as 127.0.0.1.
      b->sin6_addr.s6_addr[10] = 0xff;
      b->sin6_addr.s6_addr[11] = 0xff;
      b->sin6_addr.s6_addr[12] = 127;
      b->sin6_addr.s6_addr[15] = 1;
      reg.source_family = 4;
    } else {
      if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr) || IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr)) {
        return false;
      }
      reg.dst_family = 6;
      memcpy(reg.dst_addr, &sin6->sin6_addr, 16);
      b->sin6_addr = in6addr_loopback;
      reg.source_family = 6;
    }
  } else {
    return false;
  }
  uint16_t dst_port = ntohs(reg.dst_port);
  if (dst_port == 0 || excluded(dst_port) || getuid() == kSidecarUid) return false;
  int type = 0;
  socklen_t type_len = sizeof(type);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) != 0 || type != SOCK_STREAM) {
    return false;
  }
  // An unbound socket gets a loopback port; one the app bound itself is left alone (its port
  // would not be on loopback, so the sidecar could not find it).
  sockaddr_storage local{};
  socklen_t local_len = sizeof(local);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0) return false;
  uint16_t bound_port = local.ss_family == AF_INET
                            ? reinterpret_cast<sockaddr_in*>(&local)->sin_port
                            : reinterpret_cast<sockaddr_in6*>(&local)->sin6_port;
  if (bound_port != 0) return false;
  if (bind(fd, reinterpret_cast<sockaddr*>(&bind_to), bind_len) != 0) return false;
  local_len = sizeof(local);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0) return false;
  reg.source_port = local.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&local)->sin_port
                                               : reinterpret_cast<sockaddr_in6*>(&local)->sin6_port;
  reg.magic = htonl(rdmesh::preload::kMagic);
  reg.version = rdmesh::preload::kVersion;
  // No sidecar registry yet (start-up race): still redirect, so the connect fails fast at the
  // listener like an eBPF-captured one and the app's retry is captured once the sidecar is up.
  sendto(g_config.registry_fd, &reg, sizeof(reg), MSG_NOSIGNAL | MSG_DONTWAIT,
         reinterpret_cast<const sockaddr*>(&g_config.registry), g_config.registry_len);
  remember(fd, ntohs(reg.source_port), addr, len);

  *redirect = bind_to;
  if (bind_to.ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(redirect)->sin_port = htons(g_config.capture_port);
  } else {
    reinterpret_cast<sockaddr_in6*>(redirect)->sin6_port = htons(g_config.capture_port);
  }
  *redirect_len = bind_len;
  return true;
}

uint16_t portOf(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
  }
  return 0;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int connect(int fd, const sockaddr* addr, socklen_t len) {
  pthread_once(&g_once, init);
  if (g_config.real_connect == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  int saved_errno = errno;
  sockaddr_storage redirect{};
  socklen_t redirect_len = 0;
  if (capture(fd, addr, len, &redirect, &redirect_len)) {
    errno = saved_errno;
    return g_config.real_connect(fd, reinterpret_cast<sockaddr*>(&redirect), redirect_len);
  }
  errno = saved_errno;
  return g_config.real_connect(fd, addr, len);
}

__attribute__((visibility("default"))) int getpeername(int fd, sockaddr* addr, socklen_t* len) {
  pthread_once(&g_once, init);
  if (g_config.real_getpeername == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  if (addr == nullptr || len == nullptr) return g_config.real_getpeername(fd, addr, len);
  sockaddr_storage peer{};
  socklen_t peer_len = sizeof(peer);
  if (g_config.real_getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) return -1;
  const void* result = &peer;
  socklen_t result_len = peer_len;
  Captured copy;
  sockaddr_storage local{};
  socklen_t local_len = sizeof(local);
  if (portOf(peer) == g_config.capture_port &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) == 0) {
    pthread_mutex_lock(&g_table_mu);
    const Captured& c = g_table[fd % kTableSize];
    if (c.fd == fd && c.local_port == portOf(local)) copy = c;  // not a reused fd number
    pthread_mutex_unlock(&g_table_mu);
    if (copy.fd == fd) {
      result = &copy.original;
      result_len = copy.original_len;
    }
  }
  // As the kernel does: copy what fits, report the full length.
  memcpy(addr, result, *len < result_len ? *len : result_len);
  *len = result_len;
  return 0;
}

}  // extern "C"
