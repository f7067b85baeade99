// connect_cost: what one TCP connect costs the app, for the capture benchmark (bench/capture.sh).
// Times socket() + connect() + close() (RST, so no TIME_WAIT piles up) `count` times against
// `target`, after `warmup` untimed ones, and prints the median and mean in microseconds. It
// also accepts on every `--listen` address, asks each accepted socket for its local address (as
// the sidecar asks for the original destination) and closes it, and drains an LD_PRELOAD
// registration socket if given, so one process is app, listener and registry at once. With two
// or more CPUs the app runs on the first and the listener on the second (as an app and its
// sidecar would on two cores); left to the scheduler, the two threads' placement changes from
// run to run and with it the cost by half.
//
//   connect_cost --target 10.99.0.1:9090 --listen 127.0.0.1:15001 [--preload-socket @name]
//                [--count 10000] [--warmup 500]
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <thread>
#include <vector>

#include "rdmesh/common/address.h"

namespace {

int listenOn(const rdmesh::InetAddress& a) {
  int fd = ::socket(a.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, a.sockaddrPtr(), a.sockaddrLen()) != 0 || ::listen(fd, 4096) != 0) {
    std::fprintf(stderr, "connect_cost: listen %s: %s\n", a.toString().c_str(), strerror(errno));
    std::exit(2);
  }
  return fd;
}

int bindAbstract(const std::string& name) {
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data() + 1, name.size() - 1);
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    std::fprintf(stderr, "connect_cost: bind %s: %s\n", name.c_str(), strerror(errno));
    std::exit(2);
  }
  return fd;
}

// Pins the calling thread to the `nth` CPU it may run on, if there is one.
void pinToNthCpu(int nth) {
  cpu_set_t allowed;
  if (::sched_getaffinity(0, sizeof(allowed), &allowed) != 0 || CPU_COUNT(&allowed) < 2) return;
  for (int cpu = 0, seen = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed) || seen++ != nth) continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    ::pthread_setaffinity_np(::pthread_self(), sizeof(one), &one);
    return;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"connect_cost: time socket+connect+close"};
  std::string target;
  std::vector<std::string> listens;
  std::string preload_socket;
  int count = 10000;
  int warmup = 500;
  app.add_option("--target", target, "ip:port to connect to")->required();
  app.add_option("--listen", listens, "ip:port to accept on (repeatable)");
  app.add_option("--preload-socket", preload_socket, "abstract socket (@name) to drain");
  app.add_option("--count", count, "timed connects");
  app.add_option("--warmup", warmup, "untimed connects first");
  CLI11_PARSE(app, argc, argv);

  auto dst = rdmesh::InetAddress::parse(target);
  if (!dst) {
    std::fprintf(stderr, "connect_cost: %s\n", dst.status().message().c_str());
    return 2;
  }
  std::vector<pollfd> fds;
  for (const auto& l : listens) {
    auto a = rdmesh::InetAddress::parse(l);
    if (!a) return 2;
    fds.push_back({listenOn(*a), POLLIN, 0});
  }
  if (!preload_socket.empty()) fds.push_back({bindAbstract(preload_socket), POLLIN, 0});
  std::atomic<bool> stop{false};
  std::thread acceptor([&] {
    pinToNthCpu(1);
    char buf[64];
    while (!stop.load()) {
      if (::poll(fds.data(), fds.size(), 100) <= 0) continue;
      for (size_t i = 0; i < fds.size(); ++i) {
        if (!(fds[i].revents & POLLIN)) continue;
        if (!preload_socket.empty() && i + 1 == fds.size()) {
          while (::recv(fds[i].fd, buf, sizeof(buf), 0) > 0) {
          }
          continue;
        }
        int c = ::accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        sockaddr_storage local{};
        socklen_t local_len = sizeof(local);
        ::getsockname(c, reinterpret_cast<sockaddr*>(&local), &local_len);
        ::close(c);
      }
    }
  });

  pinToNthCpu(0);
  std::vector<double> us;
  us.reserve(static_cast<size_t>(count));
  int failures = 0;
  for (int i = 0; i < warmup + count; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    int fd = ::socket(dst->family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = ::connect(fd, dst->sockaddrPtr(), dst->sockaddrLen());
    linger lg{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    ::close(fd);
    auto t1 = std::chrono::steady_clock::now();
    if (rc != 0) ++failures;
    if (i >= warmup) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  stop = true;
  acceptor.join();
  std::sort(us.begin(), us.end());
  double mean = std::accumulate(us.begin(), us.end(), 0.0) / static_cast<double>(us.size());
  std::printf("median_us %.2f mean_us %.2f p99_us %.2f failures %d\n", us[us.size() / 2], mean,
              us[us.size() * 99 / 100], failures);
  return failures == 0 ? 0 : 1;
}
