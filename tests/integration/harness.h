// Integration test harness: emulated nodes (network namespaces joined by veth), child processes
// (sidecars, redis-server, nginx, clients) with their output kept in log files, in-process TCP
// servers, an HTTP/1.0 client for the admin endpoint, and config builders for rdmesh-proxy.
//
// Rules the tests follow:
//  - nothing outside 127.0.0.0/8 and the namespaces a test creates itself (removed afterwards,
//    also on failure: every resource is RAII and stale namespaces of dead test processes are
//    swept on start);
//  - readiness is polled (waitFor, waitForHttp, waitForTcp), never a fixed sleep;
//  - processes are forked from the main test thread only (PR_SET_PDEATHSIG is per thread);
//  - socket work inside a namespace runs in a thread that entered it with setns(): sockets keep
//    the namespace they were created in, so the fd can then be used from any thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace rdmesh::it {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

// ------------------------------------------------------------------------------------ environment

// Empty when namespace tests can run here (root, `ip` present, a probe netns can be created);
// otherwise the reason, for GTEST_SKIP.
std::string netnsUnavailableReason();
// Raises RLIMIT_NOFILE's soft limit to the hard limit (children inherit it).
void raiseFdLimit();
// Path of the rdmesh-proxy binary: $RDMESH_PROXY_BIN, else the one CMake built.
std::string proxyBinary();
// rdmesh-xds of this build (RDMESH_XDS_BIN overrides); "" when the build has none.
std::string xdsBinary();
// Full path of an executable found in PATH (or the path itself if it contains '/'); "" if none.
std::string findExecutable(const std::string& name);
// Process-unique short name: "<prefix><pid>x<n>" (fits IFNAMSIZ for prefixes of <= 4 chars).
std::string uniqueName(const std::string& prefix);
// Scaled sizes/timeouts: environment variable `name` (integer) or `def`.
uint64_t envOr(const char* name, uint64_t def);
// Polls `pred` every `interval` until it returns true or `timeout` passes.
bool waitFor(const std::function<bool()>& pred, Millis timeout, Millis interval = 20ms);
double secondsSince(Clock::time_point t0);

// ------------------------------------------------------------------------------------ files

class TempDir {
 public:
  explicit TempDir(const std::string& tag = "rdmit");
  // Removes the directory, unless the current test failed (then it is kept and its path printed)
  // or RDMESH_IT_KEEP=1.
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void writeFile(const std::string& path, const std::string& content);
std::string readFile(const std::string& path);

// ------------------------------------------------------------------------------------ fds

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// ------------------------------------------------------------------------------------ namespaces

// A named network namespace (/run/netns/<name>) with lo up; deleted by the destructor.
class Netns {
 public:
  explicit Netns(const std::string& tag);
  ~Netns();
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;
  const std::string& name() const { return name_; }
  // Runs `ip -n <name> <args...>`; throws on failure.
  void ip(const std::vector<std::string>& args) const;

 private:
  std::string name_;
};

// Joins two namespaces with a veth pair; each end gets its address (CIDR, e.g. "10.77.1.1/24")
// and is brought up.
void linkVeth(const Netns& a, const std::string& cidr_a, const Netns& b, const std::string& cidr_b);
// Deletes namespaces named by this harness whose creating process is gone (interrupted runs).
void removeStaleNamespaces();

// Makes the calling thread enter the namespace (throws on failure). "" = stay.
void enterNetns(const std::string& ns);

// Runs f in a new thread that entered `ns` ("" = the current namespace), waits, returns its result
// (exceptions propagate).
template <class F>
auto inNetns(const std::string& ns, F&& f) -> std::invoke_result_t<F&> {
  using R = std::invoke_result_t<F&>;
  std::packaged_task<R()> task([&]() -> R {
    enterNetns(ns);
    return f();
  });
  auto result = task.get_future();
  std::thread t(std::move(task));
  t.join();
  return result.get();
}

// A background thread running inside a namespace; joined by the destructor (or join()).
class NetnsThread {
 public:
  NetnsThread(const std::string& ns, std::function<void()> body);
  ~NetnsThread() { join(); }
  NetnsThread(const NetnsThread&) = delete;
  NetnsThread& operator=(const NetnsThread&) = delete;
  void join() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::thread thread_;
};

// ------------------------------------------------------------------------------------ processes

std::string describeWaitStatus(int status);

// Where a child's stdin comes from and its stdout goes, when not /dev/null and the log file.
struct Stdio {
  std::string stdin_path;   // "" = /dev/null
  std::string stdout_path;  // "" = the log file (stderr always goes to the log file)
};

// A child process: fork + exec (optionally through `ip netns exec NS`), stdout and stderr to a
// log file that is kept; SIGKILLed and reaped by the destructor if still running. When the current
// test has failed, the destructor prints the tail of the log.
class Process {
 public:
  Process(std::string name, std::vector<std::string> argv, std::string log_path,
          std::string netns = {}, std::vector<std::string> extra_env = {}, Stdio stdio = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  const std::string& name() const { return name_; }
  pid_t pid() const { return pid_; }
  const std::string& logPath() const { return log_path_; }
  bool running();        // reaps if it exited
  bool signal(int sig);  // false if already exited
  // Waits up to `timeout` for the exit; the raw wait status, or nullopt if still running.
  std::optional<int> wait(Millis timeout);
  // SIGTERM, wait up to `grace`, then SIGKILL; returns the wait status.
  int terminate(Millis grace = 10s);
  void kill();  // SIGKILL + reap
  std::optional<int> status() const { return status_; }
  std::string output() const { return readFile(log_path_); }
  void printLog(size_t max_bytes = 48 * 1024) const;

 private:
  std::string name_;
  std::string log_path_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

struct CommandResult {
  int status = -1;  // raw wait status
  bool timed_out = false;
  std::string output;  // stdout + stderr
  bool ok() const;     // exited 0 in time
  std::string describe() const;
};
// Runs a command to completion (killed after `timeout`), output captured in `log_path`.
CommandResult runCommand(const std::vector<std::string>& argv, const std::string& log_path,
                         const std::string& netns = {}, Millis timeout = 60s);

// A command run to completion with `input` on stdin and stdout kept apart from stderr (for
// programs whose stdout is a protocol, such as CNI plugins). Files live in `dir`, named after
// `name`; `extra_env` entries ("K=V") override the test's environment.
struct CapturedRun {
  int status = -1;  // raw wait status
  bool timed_out = false;
  std::string stdout_text;
  std::string stderr_text;
  int exitCode() const;  // -1 unless it exited normally in time
};
CapturedRun runCapturing(const std::vector<std::string>& argv, const std::string& input,
                         const std::vector<std::string>& extra_env, const std::string& dir,
                         const std::string& name, Millis timeout = 30s);

// ------------------------------------------------------------------------------------ sockets

// Blocking TCP socket created (and connected) inside `ns`. Invalid fd on failure; *err = errno.
UniqueFd tcpConnect(const std::string& ns, const std::string& ip, uint16_t port,
                    Millis timeout = 5s, int* err = nullptr);
// Listening socket bound inside `ns` (SO_REUSEADDR); throws on failure.
UniqueFd tcpListen(const std::string& ns, const std::string& ip, uint16_t port, int backlog = 4096);
// Until a TCP connect to ip:port inside `ns` succeeds.
bool waitForTcp(const std::string& ns, const std::string& ip, uint16_t port, Millis timeout);

bool sendAll(int fd, const void* data, size_t len);
bool sendAll(int fd, const std::string& s);
// SO_RCVTIMEO / SO_SNDTIMEO.
void setSocketTimeouts(int fd, Millis timeout);
void setNonBlocking(int fd, bool on = true);
struct ReadResult {
  std::string data;
  bool eof = false;  // orderly EOF seen
  int error = 0;     // errno of a failed read (ECONNRESET, ETIMEDOUT for our deadline, ...)
};
// Reads until `want` bytes, EOF, an error, or the deadline (error = ETIMEDOUT).
ReadResult readExactly(int fd, size_t want, Millis timeout);
ReadResult readUntilEof(int fd, Millis timeout, size_t max_bytes = 64 << 20);
// Connects to ip:port inside `ns` (an echo path), sends `bytes` of PatternGen(seed), half-closes,
// and checks (gtest expectations) that the same bytes come back, by count and hash.
void expectEchoed(const std::string& ns, const std::string& ip, uint16_t port, size_t bytes,
                  uint64_t seed, Millis timeout = 60s);

// ------------------------------------------------------------------------------------ HTTP

struct HttpResponse {
  int status = 0;  // 0 = no HTTP answer
  std::string body;
  std::string error;  // transport error, if any
};
// Raw HTTP/1.0 over a socket created inside `ns`. url: http://host:port/path
HttpResponse httpRequest(const std::string& ns, const std::string& method, const std::string& url,
                         Millis timeout = 3s);
HttpResponse httpGet(const std::string& ns, const std::string& url, Millis timeout = 3s);
bool waitForHttp(const std::string& ns, const std::string& url, int status, Millis timeout);

// Value of `name` in a /stats body ("name: value" lines; quotes around text values removed).
std::optional<std::string> statValue(const std::string& body, const std::string& name);
// Integer value, or `fallback` when absent or not a number.
int64_t statInt(const std::string& body, const std::string& name, int64_t fallback = -1);
// All "name: value" lines whose name contains every one of `parts`.
std::vector<std::pair<std::string, std::string>> statsMatching(
    const std::string& body, const std::vector<std::string>& parts);

// ------------------------------------------------------------------------------------ data

// Streaming 64-bit hash (FNV-1a over 8-byte little-endian words, tail bytes one by one):
// independent of how the stream is chunked.
class Hasher {
 public:
  void update(const void* data, size_t len);
  uint64_t digest() const;
  uint64_t bytes() const { return bytes_; }

 private:
  void word(uint64_t w) { h_ = (h_ ^ w) * 0x100000001b3ULL; }
  uint64_t h_ = 0xcbf29ce484222325ULL;
  uint64_t pending_ = 0;
  unsigned npending_ = 0;
  uint64_t bytes_ = 0;
};

// xorshift64* stream of pseudo-random bytes.
class PatternGen {
 public:
  explicit PatternGen(uint64_t seed) : s_(seed ? seed : 0x9e3779b97f4a7c15ULL) {}
  void fill(void* buf, size_t len);  // len rounded down to 8 bytes is random; tail too
  std::string bytes(size_t len);

 private:
  uint64_t next() {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 0x2545f4914f6cdd1dULL;
  }
  uint64_t s_;
};

// ------------------------------------------------------------------------------------ servers

// Accepts on a socket bound inside a namespace; one thread runs an epoll loop.
// Echo: every byte read is written back; on EOF from the client it finishes writing, then
// shutdown(SHUT_WR) (half-close both ways), then closes.
class EchoServer {
 public:
  EchoServer(const std::string& ns, const std::string& ip, uint16_t port);
  ~EchoServer();
  EchoServer(const EchoServer&) = delete;
  EchoServer& operator=(const EchoServer&) = delete;
  uint64_t accepted() const { return accepted_.load(); }
  int64_t active() const { return active_.load(); }
  uint64_t bytes() const { return bytes_.load(); }

 private:
  void loop();
  UniqueFd listen_;
  UniqueFd wake_;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<int64_t> active_{0};
  std::atomic<uint64_t> bytes_{0};
  std::thread thread_;
};

// Thread per connection; `handler(fd)` owns the connection for its lifetime (fd closed after).
class ThreadedServer {
 public:
  using Handler = std::function<void(int fd)>;
  ThreadedServer(const std::string& ns, const std::string& ip, uint16_t port, Handler handler);
  ~ThreadedServer();
  ThreadedServer(const ThreadedServer&) = delete;
  ThreadedServer& operator=(const ThreadedServer&) = delete;
  uint64_t accepted() const { return accepted_.load(); }

 private:
  void loop();
  UniqueFd listen_;
  UniqueFd wake_;
  Handler handler_;
  std::atomic<uint64_t> accepted_{0};
  std::mutex mu_;
  std::vector<std::thread> conns_;
  std::thread thread_;
};

// Sink: reads to EOF hashing everything, then replies 16 bytes {uint64 bytes, uint64 hash}
// (little-endian) and closes. Results are recorded per connection.
class SinkServer {
 public:
  struct Result {
    uint64_t bytes = 0;
    uint64_t hash = 0;
    double seconds = 0;
    int error = 0;  // errno if the read failed
  };
  SinkServer(const std::string& ns, const std::string& ip, uint16_t port);
  std::vector<Result> results() const;

 private:
  mutable std::mutex mu_;
  std::vector<Result> results_;
  std::unique_ptr<ThreadedServer> server_;
};

// Source: on each connection sends `bytes` pseudo-random bytes, then closes (after the client's
// EOF, so the close is orderly). Records the hash of what it sent.
class SourceServer {
 public:
  struct Result {
    uint64_t bytes = 0;
    uint64_t hash = 0;
    bool ok = false;
  };
  SourceServer(const std::string& ns, const std::string& ip, uint16_t port, uint64_t bytes);
  std::vector<Result> results() const;

 private:
  uint64_t bytes_;
  mutable std::mutex mu_;
  std::vector<Result> results_;
  std::unique_ptr<ThreadedServer> server_;
};

// ------------------------------------------------------------------------------------ rdmesh

struct ListenerSpec {
  std::string name;
  std::string direction;                       // "outbound" | "inbound" | "capture"
  std::string address;                         // outbound: ip:port apps connect to
  std::string cluster;                         // outbound
  uint16_t port = 0;                           // inbound: destination port accepted from the tunnel
  std::string target;                          // inbound: local app ip:port
  std::map<std::string, std::string> options;  // capture: address, unknown_destination, ...
};
struct EndpointSpec {
  std::string node;
  std::string address;
};
struct ClusterSpec {
  std::string name;
  std::string lb_policy = "round_robin";
  std::vector<EndpointSpec> endpoints;
  int connect_timeout_ms = 0;                  // 0 = default
  std::vector<std::string> service_addresses;  // ip:port apps use for the whole cluster
};
struct PeerSpec {
  std::string name;
  std::string address;
};
struct SidecarSpec {
  std::string node;
  // Mesh mode (behind rdmesh-node): set node_agent_socket and pod_ips; the transport section
  // then only tunes sessions. `pod` names the sidecar's files (several share a node).
  std::string node_agent_socket;
  std::vector<std::string> pod_ips;
  std::map<std::string, std::string> node_agent_options;  // idle_session_timeout_ms, ...
  std::string pod;
  const std::string& fileName() const { return pod.empty() ? node : pod; }
  std::string identity;
  int workers = 1;
  std::string admin = "127.0.0.1:15000";
  std::string backend = "tcp";
  std::string listen;
  std::vector<PeerSpec> peers;
  std::map<std::string, std::string> transport_options;  // ring_bytes, max_streams, keepalive_*...
  std::vector<ListenerSpec> listeners;
  std::vector<ClusterSpec> clusters;
  int drain_timeout_ms = 0;  // 0 = default
  std::string extra_yaml;    // appended verbatim (e.g. an xds: section)

  SidecarSpec& outbound(const std::string& name, const std::string& address,
                        const std::string& cluster);
  SidecarSpec& inbound(const std::string& name, uint16_t port, const std::string& target);
  // The outbound capture listener (127.0.0.1:15001 / [::1]:15001 unless options say otherwise).
  SidecarSpec& capture(const std::string& name, std::map<std::string, std::string> options = {});
  SidecarSpec& cluster(const std::string& name, std::vector<EndpointSpec> endpoints,
                       const std::string& lb_policy = "round_robin");
  std::string toYaml() const;
};

// One rdmesh-proxy inside a namespace (admin on 127.0.0.1:15000 of that namespace by default).
class Sidecar {
 public:
  Sidecar(SidecarSpec spec, std::string ns, std::string dir);
  ~Sidecar();
  Sidecar(const Sidecar&) = delete;
  Sidecar& operator=(const Sidecar&) = delete;

  const SidecarSpec& spec() const { return spec_; }
  // Starts the sidecar through `launcher(argv)` instead of `ip netns exec <ns> argv` (e.g. to
  // put it in a pod's cgroup and run it as uid 1337); the admin endpoint is still reached in ns.
  using Launcher = std::function<std::vector<std::string>(std::vector<std::string> argv)>;
  void setLauncher(Launcher launcher) { launcher_ = std::move(launcher); }
  const std::string& ns() const { return ns_; }
  const std::string& configPath() const { return config_path_; }
  // Starts the process (again, after kill()/stop(): a new log file per start).
  void start();
  bool waitReady(Millis timeout = 30s);
  Process* process() { return proc_.get(); }
  bool running() { return proc_ && proc_->running(); }
  std::string adminUrl(const std::string& path) const;
  std::string stats();  // "" if the admin endpoint does not answer
  std::optional<std::string> stat(const std::string& name);
  int64_t statInt(const std::string& name, int64_t fallback = -1);
  bool waitStat(const std::string& name, const std::string& value, Millis timeout);
  bool waitSessionState(const std::string& peer, const std::string& state, Millis timeout);
  void kill();                        // SIGKILL
  int terminate(Millis grace = 15s);  // SIGTERM; wait status
  // ADD_FAILUREs for sanitizer reports in any log of this sidecar.
  void checkLogsClean();

 private:
  SidecarSpec spec_;
  std::string ns_;
  std::string dir_;
  std::string config_path_;
  int starts_ = 0;
  std::vector<std::string> logs_;
  std::unique_ptr<Process> proc_;
  std::vector<std::unique_ptr<Process>> old_;
  Launcher launcher_;
};

// Emulated nodes for one test: namespaces + veth links, a temp dir for configs, logs and shm
// sockets, and the transport part of each node's config for the chosen backend.
// Topology: node 0 is the hub, linked to every other node i by its own veth pair on 10.77.<i>.0/24
// (hub .1, node i .2). nodes[i]'s address (as endpoints name it) is 10.77.<i>.2; the hub's is
// 10.77.1.1. Lower-named nodes dial higher-named ones, so names should sort hub first.
class Mesh {
 public:
  Mesh(std::string backend, std::vector<std::string> node_names);
  ~Mesh();
  const std::string& backend() const { return backend_; }
  TempDir& dir() { return dir_; }
  const std::string& ns(const std::string& node) const;
  std::string ip(const std::string& node) const;
  // node, backend, listen, peers (the hub peers with every node, others only with the hub),
  // keepalive/connect timeouts suited to tests.
  SidecarSpec baseSpec(const std::string& node) const;
  Sidecar& add(SidecarSpec spec);  // creates, does not start
  Sidecar& sidecar(const std::string& node);
  // Starts all added sidecars (highest name first), waits for /ready and for every hub session.
  void startAll(Millis timeout = 30s);
  // Waits until both ends report the session established.
  bool waitEstablished(const std::string& a, const std::string& b, Millis timeout = 30s);
  // Log file path for a helper process.
  std::string logPath(const std::string& name) { return dir_.file(name + ".log"); }

 private:
  std::string backend_;
  std::vector<std::string> names_;
  TempDir dir_;
  std::vector<std::unique_ptr<Netns>> ns_;
  std::map<std::string, std::string> ip_;
  std::map<std::string, std::unique_ptr<Sidecar>> sidecars_;
};

// ------------------------------------------------------------------------------------ pods

// argv that runs `argv` as a process of a pod: it joins the cgroup v2 directory `cgroup_dir`
// first, then enters only the network namespace `ns` (nsenter, so /sys stays the host's, unlike
// `ip netns exec`), then drops to `uid` (>= 0) with setpriv. Give it to Process with no netns.
std::vector<std::string> inPod(const std::string& cgroup_dir, const std::string& ns,
                               std::vector<std::string> argv, int uid = -1);

// A cgroup v2 directory made for a test (under the cgroup v2 root), removed by the destructor
// after its processes are gone. Skips nothing itself: check cgroupV2Root() first.
std::string cgroupV2Root();  // "" if there is no cgroup v2 mount
class TestCgroup {
 public:
  explicit TestCgroup(const std::string& path);
  ~TestCgroup();
  TestCgroup(const TestCgroup&) = delete;
  TestCgroup& operator=(const TestCgroup&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Test name suffix for backend-parameterised suites.
struct BackendName {
  template <class ParamInfo>
  std::string operator()(const ParamInfo& info) const {
    return info.param;
  }
};

}  // namespace rdmesh::it
