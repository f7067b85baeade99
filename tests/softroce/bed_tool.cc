// rdmesh-bed-tool: the application side of the Soft-RoCE bed, run inside the qemu guests.
// Servers and clients that check every byte, so a case passes only if data arrived intact:
//
//   serve PORT                         echo server (a thread per connection)
//   sink PORT [KILL_AFTER PID]         counts and hashes bytes until EOF, replies "<bytes>
//   <hash>\n";
//                                      with KILL_AFTER: SIGKILLs PID once a connection got that
//                                      many
//   discard PORT                       counts bytes until EOF, replies "<bytes> 0\n" (no hashing:
//   for
//                                      measuring the transport rather than the checksum)
//   blast HOST:PORT BYTES              sends BYTES of one constant buffer to a discard server,
//                                      checks the count, prints MB/s
//   push HOST:PORT BYTES               sends BYTES of a seeded stream, half-closes, checks the
//   sink's
//                                      count and hash; prints MB/s (or how it was interrupted)
//   echo HOST:PORT BYTES STREAMS       STREAMS concurrent connections each send BYTES and check the
//                                      echo byte for byte
//   rtt HOST:PORT COUNT SIZE           ping-pong of SIZE bytes against an echo server; prints
//                                      median and mean round trip in microseconds
//   agent PORT                         runs each received line with sh -c, replies "rc=N" + output
//   remote HOST:PORT COMMAND           sends COMMAND to an agent, prints its reply, exits with rc
//   retry SECONDS COMMAND...           reruns COMMAND until it exits 0 or SECONDS pass
//   node SOCKET JSON                   one request to rdmesh-node's node.sock (SOCK_SEQPACKET),
//                                      prints the reply; exit 0 when it says "ok":true
//
// Exit status 0 means the check passed. Output lines are meant for logs and the bed's report.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Deterministic byte stream per seed (xorshift64*), so both ends agree without sharing data.
class ByteStream {
 public:
  explicit ByteStream(uint64_t seed) : state_(seed * 0x9e3779b97f4a7c15ULL + 1) {}
  void fill(char* out, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      if (left_ == 0) {
        state_ ^= state_ >> 12;
        state_ ^= state_ << 25;
        state_ ^= state_ >> 27;
        word_ = state_ * 0x2545f4914f6cdd1dULL;
        left_ = 8;
      }
      out[i] = static_cast<char>(word_ & 0xff);
      word_ >>= 8;
      --left_;
    }
  }

 private:
  uint64_t state_;
  uint64_t word_ = 0;
  int left_ = 0;
};

// FNV-1a, 64-bit: enough to tell corrupted, reordered or missing bytes apart.
struct Hash {
  uint64_t h = 0xcbf29ce484222325ULL;
  void add(const char* p, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      h ^= static_cast<unsigned char>(p[i]);
      h *= 0x100000001b3ULL;
    }
  }
};

bool parseHostPort(const std::string& s, sockaddr_in* out) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  *out = {};
  out->sin_family = AF_INET;
  out->sin_port = htons(static_cast<uint16_t>(std::atoi(s.c_str() + colon + 1)));
  return inet_pton(AF_INET, s.substr(0, colon).c_str(), &out->sin_addr) == 1;
}

int dial(const std::string& where) {
  sockaddr_in sa{};
  if (!parseHostPort(where, &sa)) {
    std::fprintf(stderr, "bad address %s\n", where.c_str());
    return -1;
  }
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    std::fprintf(stderr, "connect %s: %s\n", where.c_str(), strerror(errno));
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

int listenOn(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 || ::listen(fd, 512) != 0) {
    std::fprintf(stderr, "listen %d: %s\n", port, strerror(errno));
    std::exit(2);
  }
  return fd;
}

bool writeAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

const char* errorName(int err) {
  return err == ECONNRESET ? "reset" : err == EPIPE ? "broken-pipe" : strerror(err);
}

// ---------------------------------------------------------------- servers

template <typename Fn>
[[noreturn]] void acceptLoop(int port, Fn handle) {
  int lfd = listenOn(port);
  std::printf("listening on %d\n", port);
  std::fflush(stdout);
  for (;;) {
    int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::thread([fd, handle] {
      handle(fd);
      ::close(fd);
    }).detach();
  }
}

int serveEcho(int port) {
  acceptLoop(port, [](int fd) {
    std::vector<char> buf(size_t{64} * 1024);
    for (;;) {
      ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      if (!writeAll(fd, buf.data(), static_cast<size_t>(n))) break;
    }
    ::shutdown(fd, SHUT_WR);
  });
}

int serveSink(int port, uint64_t kill_after, pid_t victim, bool hashing) {
  acceptLoop(port, [kill_after, victim, hashing](int fd) {
    std::vector<char> buf(size_t{256} * 1024);
    Hash hash;
    uint64_t total = 0;
    bool killed = false;
    for (;;) {
      ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      if (hashing) hash.add(buf.data(), static_cast<size_t>(n));
      total += static_cast<uint64_t>(n);
      if (kill_after && !killed && total >= kill_after && victim > 0) {
        killed = true;
        ::kill(victim, SIGKILL);
        std::printf("sink: killed pid %d after %llu bytes\n", victim,
                    static_cast<unsigned long long>(total));
        std::fflush(stdout);
      }
    }
    char line[64];
    int len =
        std::snprintf(line, sizeof(line), "%llu %016llx\n", static_cast<unsigned long long>(total),
                      static_cast<unsigned long long>(hashing ? hash.h : 0));
    writeAll(fd, line, static_cast<size_t>(len));
  });
}

// ---------------------------------------------------------------- clients

int push(const std::string& where, uint64_t bytes, bool hashing) {
  int fd = dial(where);
  if (fd < 0) return 1;
  ByteStream gen(42);
  Hash hash;
  if (!hashing) hash.h = 0;
  std::vector<char> buf(size_t{256} * 1024, 'b');
  auto t0 = Clock::now();
  uint64_t sent = 0;
  while (sent < bytes) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), bytes - sent));
    if (hashing) {
      gen.fill(buf.data(), n);
      hash.add(buf.data(), n);
    }
    if (!writeAll(fd, buf.data(), n)) {
      std::printf("push: interrupted (%s) after %llu of %llu bytes\n", errorName(errno),
                  static_cast<unsigned long long>(sent), static_cast<unsigned long long>(bytes));
      return 3;
    }
    sent += n;
  }
  double send_secs = secondsSince(t0);
  ::shutdown(fd, SHUT_WR);
  char reply[128] = {};
  size_t got = 0;
  for (;;) {
    ssize_t n = ::recv(fd, reply + got, sizeof(reply) - 1 - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::printf("push: interrupted (%s) waiting for the sink's reply\n", errorName(errno));
      return 3;
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  double secs = secondsSince(t0);
  unsigned long long their_bytes = 0, their_hash = 0;
  if (std::sscanf(reply, "%llu %llx", &their_bytes, &their_hash) != 2) {
    std::printf("push: interrupted (eof) - no reply from the sink\n");
    return 3;
  }
  bool ok = their_bytes == bytes && their_hash == hash.h;
  std::printf(
      "push: %s bytes=%llu sink_bytes=%llu hash=%016llx sink_hash=%016llx secs=%.2f "
      "MBps=%.2f send_MBps=%.2f\n",
      ok ? "OK" : "MISMATCH", static_cast<unsigned long long>(bytes), their_bytes,
      static_cast<unsigned long long>(hash.h), their_hash, secs, bytes / secs / 1e6,
      bytes / send_secs / 1e6);
  ::close(fd);
  return ok ? 0 : 1;
}

// One connection: writes its stream and reads the echo with poll(), checking every byte.
bool echoOne(const std::string& where, uint64_t bytes, uint64_t seed, std::string* why) {
  int fd = dial(where);
  if (fd < 0) {
    *why = "connect failed";
    return false;
  }
  ByteStream out_gen(seed), in_gen(seed);
  std::vector<char> out(size_t{64} * 1024), in(size_t{64} * 1024), expect(size_t{64} * 1024);
  uint64_t sent = 0, received = 0;
  size_t out_len = 0, out_pos = 0;
  bool ok = true;
  while (received < bytes) {
    pollfd p{fd, POLLIN, 0};
    if (sent < bytes || out_pos < out_len) p.events |= POLLOUT;
    if (::poll(&p, 1, 60000) <= 0) {
      *why = "no progress for 60 s";
      ok = false;
      break;
    }
    if (p.revents & POLLOUT) {
      if (out_pos == out_len) {
        out_len = static_cast<size_t>(std::min<uint64_t>(out.size(), bytes - sent));
        out_gen.fill(out.data(), out_len);
        out_pos = 0;
      }
      ssize_t w = ::send(fd, out.data() + out_pos, out_len - out_pos, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0) {
        out_pos += static_cast<size_t>(w);
        sent += static_cast<uint64_t>(w);
        if (sent == bytes) ::shutdown(fd, SHUT_WR);
      } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
        *why = std::string("send: ") + errorName(errno);
        ok = false;
        break;
      }
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::recv(fd, in.data(), in.size(), MSG_DONTWAIT);
      if (n == 0) {
        *why = "early eof after " + std::to_string(received) + " bytes";
        ok = false;
        break;
      }
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        *why = std::string("recv: ") + errorName(errno);
        ok = false;
        break;
      }
      in_gen.fill(expect.data(), static_cast<size_t>(n));
      if (std::memcmp(in.data(), expect.data(), static_cast<size_t>(n)) != 0) {
        *why = "corrupt echo at offset " + std::to_string(received);
        ok = false;
        break;
      }
      received += static_cast<uint64_t>(n);
    }
  }
  ::close(fd);
  return ok;
}

int echo(const std::string& where, uint64_t bytes, int streams) {
  std::atomic<int> failed{0};
  std::vector<std::string> why(static_cast<size_t>(streams));
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(streams));
  auto t0 = Clock::now();
  for (int i = 0; i < streams; ++i) {
    threads.emplace_back([&, i] {
      if (!echoOne(where, bytes, static_cast<uint64_t>(i) + 1, &why[static_cast<size_t>(i)])) {
        ++failed;
      }
    });
  }
  for (auto& t : threads) t.join();
  double secs = secondsSince(t0);
  for (int i = 0; i < streams; ++i) {
    if (!why[static_cast<size_t>(i)].empty()) {
      std::printf("echo: stream %d: %s\n", i, why[static_cast<size_t>(i)].c_str());
    }
  }
  std::printf("echo: %s streams=%d failed=%d bytes_each=%llu secs=%.2f\n", failed ? "FAIL" : "OK",
              streams, failed.load(), static_cast<unsigned long long>(bytes), secs);
  return failed ? 1 : 0;
}

int rtt(const std::string& where, int count, size_t size) {
  int fd = dial(where);
  if (fd < 0) return 1;
  std::vector<char> msg(size, 'r'), back(size);
  std::vector<double> us;
  for (int i = 0; i < count; ++i) {
    auto t0 = Clock::now();
    if (!writeAll(fd, msg.data(), size)) return 1;
    size_t got = 0;
    while (got < size) {
      ssize_t n = ::recv(fd, back.data() + got, size - got, 0);
      if (n <= 0) {
        std::printf("rtt: connection lost\n");
        return 1;
      }
      got += static_cast<size_t>(n);
    }
    us.push_back(secondsSince(t0) * 1e6);
  }
  std::sort(us.begin(), us.end());
  double mean = 0;
  for (double v : us) mean += v;
  mean /= static_cast<double>(us.size());
  std::printf("rtt: OK count=%d size=%zu median_us=%.1f mean_us=%.1f p99_us=%.1f\n", count, size,
              us[us.size() / 2], mean, us[us.size() * 99 / 100]);
  return 0;
}

// ---------------------------------------------------------------- remote control between guests

int agent(int port) {
  int lfd = listenOn(port);
  std::printf("agent listening on %d\n", port);
  std::fflush(stdout);
  for (;;) {
    int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::string command;
    char c;
    while (::recv(fd, &c, 1, 0) == 1 && c != '\n') command += c;
    std::string output;
    FILE* p = ::popen((command + " 2>&1").c_str(), "r");
    int rc = 127;
    if (p != nullptr) {
      char buf[4096];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) output.append(buf, n);
      int status = ::pclose(p);
      rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    }
    std::string reply = "rc=" + std::to_string(rc) + "\n" + output;
    writeAll(fd, reply.data(), reply.size());
    ::close(fd);
    std::printf("agent: rc=%d for: %s\n", rc, command.c_str());
    std::fflush(stdout);
    if (command == "exit") return 0;
  }
}

int remote(const std::string& where, const std::string& command) {
  int fd = dial(where);
  if (fd < 0) return 125;
  std::string line = command + "\n";
  writeAll(fd, line.data(), line.size());
  std::string reply;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) reply.append(buf, static_cast<size_t>(n));
  ::close(fd);
  int rc = 125;
  std::sscanf(reply.c_str(), "rc=%d", &rc);
  auto nl = reply.find('\n');
  std::fputs(nl == std::string::npos ? "" : reply.c_str() + nl + 1, stdout);
  return rc;
}

int retry(double seconds, char** argv) {
  auto t0 = Clock::now();
  for (;;) {
    pid_t pid = ::fork();
    if (pid == 0) {
      ::execvp(argv[0], argv);
      _exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    if (secondsSince(t0) > seconds) return 1;
    ::usleep(200 * 1000);
  }
}

// One node.sock request (docs/node-agent.md: one JSON datagram, one reply datagram).
int nodeRequest(const std::string& path, const std::string& request) {
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (fd < 0 || path.size() >= sizeof(addr.sun_path)) return 125;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    std::printf("connect %s: %s\n", path.c_str(), std::strerror(errno));
    ::close(fd);
    return 125;
  }
  if (::send(fd, request.data(), request.size(), 0) != static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return 125;
  }
  pollfd p{fd, POLLIN, 0};
  std::string reply(64 << 10, '\0');
  ssize_t n = ::poll(&p, 1, 10000) == 1 ? ::recv(fd, reply.data(), reply.size(), 0) : -1;
  ::close(fd);
  if (n <= 0) {
    std::printf("no reply from %s\n", path.c_str());
    return 125;
  }
  reply.resize(static_cast<size_t>(n));
  std::printf("%s\n", reply.c_str());
  return reply.find("\"ok\":true") != std::string::npos ? 0 : 1;
}

int usage() {
  std::fprintf(
      stderr,
      "usage: rdmesh-bed-tool serve PORT | sink PORT [KILL_AFTER PID] | discard PORT | push "
      "HOST:PORT BYTES | blast HOST:PORT BYTES | echo HOST:PORT BYTES STREAMS | rtt HOST:PORT "
      "COUNT SIZE | agent PORT | "
      "remote HOST:PORT COMMAND | retry SECONDS COMMAND... | node SOCKET JSON\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  if (argc < 3) return usage();
  std::string mode = argv[1];
  if (mode == "serve") return serveEcho(std::atoi(argv[2]));
  if (mode == "sink") {
    uint64_t after = argc > 4 ? std::strtoull(argv[3], nullptr, 10) : 0;
    pid_t victim = argc > 4 ? static_cast<pid_t>(std::atoi(argv[4])) : 0;
    return serveSink(std::atoi(argv[2]), after, victim, /*hashing=*/true);
  }
  if (mode == "discard") return serveSink(std::atoi(argv[2]), 0, 0, /*hashing=*/false);
  if (mode == "push" && argc == 4) return push(argv[2], std::strtoull(argv[3], nullptr, 10), true);
  if (mode == "blast" && argc == 4) {
    return push(argv[2], std::strtoull(argv[3], nullptr, 10), false);
  }
  if (mode == "echo" && argc == 5) {
    return echo(argv[2], std::strtoull(argv[3], nullptr, 10), std::atoi(argv[4]));
  }
  if (mode == "rtt" && argc == 5) {
    return rtt(argv[2], std::atoi(argv[3]), std::strtoul(argv[4], nullptr, 10));
  }
  if (mode == "agent") return agent(std::atoi(argv[2]));
  if (mode == "remote" && argc == 4) return remote(argv[2], argv[3]);
  if (mode == "retry" && argc >= 4) return retry(std::atof(argv[2]), argv + 3);
  if (mode == "node" && argc == 4) return nodeRequest(argv[2], argv[3]);
  return usage();
}
