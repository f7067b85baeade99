#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#ifndef RDMESH_PROXY_BIN
#define RDMESH_PROXY_BIN ""
#endif

extern char** environ;

namespace rdmesh::it {

namespace fs = std::filesystem;

namespace {

constexpr const char* kNetnsPrefix = "rdmit-";  // rdmit-<pid>-<n>-<tag>

std::string errnoText(int e) {
  return std::string(strerror(e)) + " (errno " + std::to_string(e) + ")";
}

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what);
}

bool currentTestFailed() {
  return ::testing::UnitTest::GetInstance()->current_test_info() != nullptr &&
         ::testing::Test::HasFailure();
}

struct Quiet {
  int status = -1;
  std::string output;
};

// fork+exec with the output on a pipe; for short helper commands (ip ...).
Quiet runQuiet(const std::vector<std::string>& argv) {
  Quiet q;
  std::string path = findExecutable(argv.at(0));
  if (path.empty()) {
    q.output = argv[0] + ": not found in PATH";
    return q;
  }
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args[0] = path.data();
  args.push_back(nullptr);
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) fail("pipe2: " + errnoText(errno));
  pid_t pid = fork();
  if (pid < 0) fail("fork: " + errnoText(errno));
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(p[1], 1);
    dup2(p[1], 2);
    execve(path.c_str(), args.data(), environ);
    _exit(127);
  }
  close(p[1]);
  char buf[4096];
  for (;;) {
    ssize_t n = read(p[0], buf, sizeof buf);
    if (n > 0) {
      q.output.append(buf, static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  close(p[0]);
  while (waitpid(pid, &q.status, 0) < 0 && errno == EINTR) {
  }
  return q;
}

void runOrThrow(const std::vector<std::string>& argv) {
  Quiet q = runQuiet(argv);
  if (!(WIFEXITED(q.status) && WEXITSTATUS(q.status) == 0)) {
    std::string cmd;
    for (auto& a : argv) cmd += a + " ";
    fail("command failed (" + describeWaitStatus(q.status) + "): " + cmd + "\n" + q.output);
  }
}

bool pidAlive(pid_t pid) {
  return kill(pid, 0) == 0 || errno == EPERM;
}

std::atomic<int> g_name_counter{0};

}  // namespace

// ------------------------------------------------------------------------------------ environment

std::string netnsUnavailableReason() {
  static std::once_flag once;
  static std::string reason;
  std::call_once(once, [] {
    if (geteuid() != 0) {
      reason = "integration tests need root (network namespaces, veth)";
      return;
    }
    if (findExecutable("ip").empty()) {
      reason = "iproute2 `ip` not found";
      return;
    }
    removeStaleNamespaces();
    std::string probe = std::string(kNetnsPrefix) + std::to_string(getpid()) + "-probe";
    Quiet q = runQuiet({"ip", "netns", "add", probe});
    if (!(WIFEXITED(q.status) && WEXITSTATUS(q.status) == 0)) {
      reason = "cannot create a network namespace here: " + q.output;
      return;
    }
    runQuiet({"ip", "netns", "del", probe});
  });
  return reason;
}

void raiseFdLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, 1 << 20);
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

std::string proxyBinary() {
  if (const char* e = getenv("RDMESH_PROXY_BIN"); e && *e) return e;
  return RDMESH_PROXY_BIN;
}

std::string xdsBinary() {
  if (const char* e = getenv("RDMESH_XDS_BIN"); e && *e) return e;
#ifdef RDMESH_XDS_BIN
  return RDMESH_XDS_BIN;
#else
  return "";
#endif
}

std::string findExecutable(const std::string& name) {
  if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = getenv("PATH");
  std::string p = path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  p += ":/usr/sbin:/sbin";  // `ip` lives there; non-login root shells may lack it
  std::stringstream ss(p);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    std::string cand = dir + "/" + name;
    struct stat st {};
    if (stat(cand.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(cand.c_str(), X_OK) == 0) {
      return cand;
    }
  }
  return "";
}

std::string uniqueName(const std::string& prefix) {
  return prefix + std::to_string(getpid()) + "x" + std::to_string(g_name_counter.fetch_add(1));
}

uint64_t envOr(const char* name, uint64_t def) {
  const char* v = getenv(name);
  if (!v || !*v) return def;
  char* end = nullptr;
  unsigned long long x = strtoull(v, &end, 10);
  return (end && *end == '\0') ? x : def;
}

bool waitFor(const std::function<bool()>& pred, Millis timeout, Millis interval) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);
  }
}

double secondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// ------------------------------------------------------------------------------------ files

TempDir::TempDir(const std::string& tag) {
  std::string tmpl = "/tmp/" + tag + "-" + std::to_string(getpid()) + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) fail("mkdtemp: " + errnoText(errno));
  path_ = buf.data();
  chmod(path_.c_str(), 0755);
}

TempDir::~TempDir() {
  if (currentTestFailed() || envOr("RDMESH_IT_KEEP", 0) == 1) {
    std::cerr << "[harness] kept " << path_ << " (configs and logs)\n";
    return;
  }
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void writeFile(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) fail("cannot write " + path);
  f << content;
  if (!f) fail("cannot write " + path);
}

std::string readFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return "";
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

// ------------------------------------------------------------------------------------ namespaces

Netns::Netns(const std::string& tag) {
  // IFNAMSIZ does not apply to netns names, but keep them short and recognisable.
  name_ = std::string(kNetnsPrefix) + std::to_string(getpid()) + "-" +
          std::to_string(g_name_counter.fetch_add(1)) + "-" + tag;
  runOrThrow({"ip", "netns", "add", name_});
  try {
    ip({"link", "set", "lo", "up"});
  } catch (...) {
    runQuiet({"ip", "netns", "del", name_});
    throw;
  }
}

Netns::~Netns() {
  // Whatever still runs inside a namespace this test made was started by it: kill it, or it would
  // outlive the test in an unnamed namespace.
  Quiet pids = runQuiet({"ip", "netns", "pids", name_});
  std::istringstream in(pids.output);
  pid_t p;
  while (in >> p) {
    if (p > 1 && p != getpid()) {
      std::cerr << "[harness] killing leftover pid " << p << " in " << name_ << "\n";
      ::kill(p, SIGKILL);
    }
  }
  Quiet q = runQuiet({"ip", "netns", "del", name_});
  if (!(WIFEXITED(q.status) && WEXITSTATUS(q.status) == 0)) {
    std::cerr << "[harness] ip netns del " << name_ << " failed: " << q.output << "\n";
  }
}

void Netns::ip(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"ip", "-n", name_};
  argv.insert(argv.end(), args.begin(), args.end());
  runOrThrow(argv);
}

void linkVeth(const Netns& a, const std::string& cidr_a, const Netns& b,
              const std::string& cidr_b) {
  std::string base = uniqueName("rv");  // rv<pid>x<n> + a/b <= 15 chars
  std::string va = base + "a", vb = base + "b";
  runOrThrow({"ip", "link", "add", va, "netns", a.name(), "type", "veth", "peer", "name", vb,
              "netns", b.name()});
  a.ip({"addr", "add", cidr_a, "dev", va});
  b.ip({"addr", "add", cidr_b, "dev", vb});
  a.ip({"link", "set", va, "up"});
  b.ip({"link", "set", vb, "up"});
}

void removeStaleNamespaces() {
  std::error_code ec;
  if (!fs::exists("/run/netns", ec)) return;
  for (auto& entry : fs::directory_iterator("/run/netns", ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind(kNetnsPrefix, 0) != 0) continue;
    std::string rest = name.substr(strlen(kNetnsPrefix));
    pid_t pid = static_cast<pid_t>(atoi(rest.c_str()));
    if (pid <= 0 || pid == getpid() || pidAlive(pid)) continue;
    std::cerr << "[harness] removing stale namespace " << name << " (pid " << pid << " is gone)\n";
    runQuiet({"ip", "netns", "del", name});
  }
}

void enterNetns(const std::string& ns) {
  if (ns.empty()) return;
  std::string path = "/run/netns/" + ns;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("open " + path + ": " + errnoText(errno));
  int rc = setns(fd, CLONE_NEWNET);
  int e = errno;
  close(fd);
  if (rc != 0) fail("setns " + path + ": " + errnoText(e));
}

NetnsThread::NetnsThread(const std::string& ns, std::function<void()> body)
    : thread_([ns, body = std::move(body)] {
        try {
          enterNetns(ns);
          body();
        } catch (const std::exception& e) {
          ADD_FAILURE() << "thread in " << ns << ": " << e.what();
        }
      }) {}

// ------------------------------------------------------------------------------------ processes

std::string describeWaitStatus(int status) {
  if (status == -1) return "not started";
  if (WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return std::string("killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  }
  return "status " + std::to_string(status);
}

Process::Process(std::string name, std::vector<std::string> argv, std::string log_path,
                 std::string netns, std::vector<std::string> extra_env, Stdio stdio)
    : name_(std::move(name)), log_path_(std::move(log_path)) {
  if (argv.empty()) fail("Process " + name_ + ": empty argv");
  std::string exe = findExecutable(argv[0]);
  if (exe.empty()) fail("Process " + name_ + ": " + argv[0] + " not found");
  argv[0] = exe;
  if (!netns.empty()) {
    std::vector<std::string> wrapped = {findExecutable("ip"), "netns", "exec", netns};
    wrapped.insert(wrapped.end(), argv.begin(), argv.end());
    argv = std::move(wrapped);
  }
  // Everything the child needs is prepared before fork (only async-signal-safe calls after).
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    std::string key = kv.substr(0, kv.find('='));
    bool overridden = std::any_of(extra_env.begin(), extra_env.end(), [&](const std::string& x) {
      return x.compare(0, key.size() + 1, key + "=") == 0;
    });
    if (!overridden) env_store.push_back(kv);
  }
  env_store.insert(env_store.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);

  int out = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) fail("open " + log_path_ + ": " + errnoText(errno));
  std::string header = "### " + name_ + ":";
  for (size_t i = 0; args[i]; ++i) header += std::string(" ") + args[i];
  header += "\n";
  (void)!write(out, header.data(), header.size());
  const std::string in_path = stdio.stdin_path.empty() ? "/dev/null" : stdio.stdin_path;
  int devnull = open(in_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (devnull < 0) fail("open " + in_path + ": " + errnoText(errno));
  int stdout_fd = out;
  if (!stdio.stdout_path.empty()) {
    stdout_fd = open(stdio.stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (stdout_fd < 0) fail("open " + stdio.stdout_path + ": " + errnoText(errno));
  }
  pid_t parent = getpid();
  pid_ = fork();
  if (pid_ < 0) {
    int e = errno;
    close(out);
    if (stdout_fd != out) close(stdout_fd);
    if (devnull >= 0) close(devnull);
    fail("fork: " + errnoText(e));
  }
  if (pid_ == 0) {
    // Die with the test (it is forked from the main thread, which lives as long as the process).
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(stdout_fd, 1);
    dup2(out, 2);
    execve(args[0], args.data(), envp.data());
    static const char msg[] = "exec failed\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(127);
  }
  close(out);
  if (stdout_fd != out) close(stdout_fd);
  if (devnull >= 0) close(devnull);
}

Process::~Process() {
  if (running()) kill();
  if (currentTestFailed()) printLog();
}

bool Process::running() {
  if (pid_ <= 0 || status_) return false;
  int st = 0;
  pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = st;
    return false;
  }
  return r == 0;
}

bool Process::signal(int sig) {
  if (!running()) return false;
  return ::kill(pid_, sig) == 0;
}

std::optional<int> Process::wait(Millis timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (!running()) return status_;
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(5ms);
  }
}

int Process::terminate(Millis grace) {
  if (signal(SIGTERM)) {
    if (auto st = wait(grace)) return *st;
    std::cerr << "[harness] " << name_ << " ignored SIGTERM for " << grace.count()
              << " ms; SIGKILL\n";
  }
  kill();
  return status_.value_or(-1);
}

void Process::kill() {
  if (!running()) return;
  ::kill(pid_, SIGKILL);
  int st = 0;
  while (waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
  }
  status_ = st;
}

void Process::printLog(size_t max_bytes) const {
  std::string log = output();
  std::cerr << "----- " << name_ << " (" << log_path_ << ", "
            << (status_ ? describeWaitStatus(*status_) : std::string("running")) << ") -----\n";
  if (log.size() > max_bytes) {
    std::cerr << "[... " << log.size() - max_bytes << " bytes cut ...]\n";
    log = log.substr(log.size() - max_bytes);
  }
  std::cerr << log;
  if (!log.empty() && log.back() != '\n') std::cerr << "\n";
  std::cerr << "----- end of " << name_ << " -----\n";
}

bool CommandResult::ok() const {
  return !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

std::string CommandResult::describe() const {
  return (timed_out ? std::string("timed out, ") : std::string()) + describeWaitStatus(status) +
         "; output:\n" + output;
}

CommandResult runCommand(const std::vector<std::string>& argv, const std::string& log_path,
                         const std::string& netns, Millis timeout) {
  CommandResult r;
  { std::ofstream trunc(log_path, std::ios::trunc); }
  Process p(argv.at(0), argv, log_path, netns);
  auto st = p.wait(timeout);
  if (!st) {
    r.timed_out = true;
    p.kill();
    st = p.status();
  }
  r.status = st.value_or(-1);
  r.output = p.output();
  return r;
}

int CapturedRun::exitCode() const {
  return !timed_out && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

CapturedRun runCapturing(const std::vector<std::string>& argv, const std::string& input,
                         const std::vector<std::string>& extra_env, const std::string& dir,
                         const std::string& name, Millis timeout) {
  const std::string base = dir + "/" + name;
  writeFile(base + ".stdin", input);
  { std::ofstream trunc(base + ".stderr", std::ios::trunc); }
  CapturedRun r;
  Process p(name, argv, base + ".stderr", {}, extra_env, Stdio{base + ".stdin", base + ".stdout"});
  auto st = p.wait(timeout);
  if (!st) {
    r.timed_out = true;
    p.kill();
    st = p.status();
  }
  r.status = st.value_or(-1);
  r.stdout_text = readFile(base + ".stdout");
  r.stderr_text = readFile(base + ".stderr");
  // Process starts its log with a "### name: argv" line; stderr proper follows it.
  if (r.stderr_text.rfind("### ", 0) == 0) {
    const size_t eol = r.stderr_text.find('\n');
    r.stderr_text.erase(0, eol == std::string::npos ? r.stderr_text.size() : eol + 1);
  }
  return r;
}

// ------------------------------------------------------------------------------------ sockets

namespace {

sockaddr_in makeAddr(const std::string& ip, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (inet_pton(AF_INET, ip.c_str(), &sa.sin_addr) != 1) fail("bad IPv4 address: " + ip);
  return sa;
}

int remainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(std::min<int64_t>(left, 1 << 30));
}

}  // namespace

UniqueFd tcpConnect(const std::string& ns, const std::string& ip, uint16_t port, Millis timeout,
                    int* err) {
  sockaddr_in sa = makeAddr(ip, port);
  int e = 0;
  UniqueFd fd = inNetns(ns, [&]() -> UniqueFd {
    UniqueFd s(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!s) {
      e = errno;
      return UniqueFd();
    }
    if (connect(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      if (errno != EINPROGRESS) {
        e = errno;
        return UniqueFd();
      }
      pollfd p{s.get(), POLLOUT, 0};
      int r = poll(&p, 1, static_cast<int>(timeout.count()));
      if (r <= 0) {
        e = r == 0 ? ETIMEDOUT : errno;
        return UniqueFd();
      }
      int soerr = 0;
      socklen_t len = sizeof soerr;
      getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &soerr, &len);
      if (soerr != 0) {
        e = soerr;
        return UniqueFd();
      }
    }
    setNonBlocking(s.get(), false);
    int one = 1;
    setsockopt(s.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return s;
  });
  if (err) *err = e;
  return fd;
}

UniqueFd tcpListen(const std::string& ns, const std::string& ip, uint16_t port, int backlog) {
  // IPv4, or IPv6 when the address has a ':' ("::" listens dual-stack).
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (ip.find(':') != std::string::npos) {
    auto* sa6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sa6->sin6_family = AF_INET6;
    sa6->sin6_port = htons(port);
    if (inet_pton(AF_INET6, ip.c_str(), &sa6->sin6_addr) != 1) fail("bad IPv6 address: " + ip);
    len = sizeof(sockaddr_in6);
  } else {
    *reinterpret_cast<sockaddr_in*>(&ss) = makeAddr(ip, port);
    len = sizeof(sockaddr_in);
  }
  return inNetns(ns, [&]() -> UniqueFd {
    UniqueFd s(socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) fail("socket: " + errnoText(errno));
    int one = 1;
    setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(s.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      fail("bind " + ip + ":" + std::to_string(port) + " in " + ns + ": " + errnoText(errno));
    }
    if (listen(s.get(), backlog) != 0) fail("listen: " + errnoText(errno));
    return s;
  });
}

bool waitForTcp(const std::string& ns, const std::string& ip, uint16_t port, Millis timeout) {
  return waitFor([&] { return static_cast<bool>(tcpConnect(ns, ip, port, 1s)); }, timeout, 20ms);
}

bool sendAll(int fd, const void* data, size_t len) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

bool sendAll(int fd, const std::string& s) {
  return sendAll(fd, s.data(), s.size());
}

void setSocketTimeouts(int fd, Millis timeout) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

void setNonBlocking(int fd, bool on) {
  int fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK));
}

namespace {

ReadResult readLoop(int fd, size_t want, Millis timeout, bool until_eof) {
  ReadResult r;
  auto deadline = Clock::now() + timeout;
  std::vector<char> buf(256 * 1024);
  while (until_eof || r.data.size() < want) {
    pollfd p{fd, POLLIN, 0};
    int pr = poll(&p, 1, remainingMs(deadline));
    if (pr < 0) {
      if (errno == EINTR) continue;
      r.error = errno;
      break;
    }
    if (pr == 0) {
      r.error = ETIMEDOUT;
      break;
    }
    size_t cap = until_eof ? buf.size() : std::min(buf.size(), want - r.data.size());
    ssize_t n = recv(fd, buf.data(), cap, MSG_DONTWAIT);
    if (n > 0) {
      r.data.append(buf.data(), static_cast<size_t>(n));
      if (until_eof && r.data.size() > want) {
        r.error = EFBIG;
        break;
      }
    } else if (n == 0) {
      r.eof = true;
      break;
    } else if (errno != EAGAIN && errno != EINTR) {
      r.error = errno;
      break;
    }
  }
  return r;
}

}  // namespace

ReadResult readExactly(int fd, size_t want, Millis timeout) {
  return readLoop(fd, want, timeout, false);
}

ReadResult readUntilEof(int fd, Millis timeout, size_t max_bytes) {
  return readLoop(fd, max_bytes, timeout, true);
}

void expectEchoed(const std::string& ns, const std::string& ip, uint16_t port, size_t bytes,
                  uint64_t seed, Millis timeout) {
  UniqueFd fd = tcpConnect(ns, ip, port);
  ASSERT_TRUE(fd) << "connect to " << ip << ":" << port;
  std::string data = PatternGen(seed).bytes(bytes);
  Hasher sent;
  sent.update(data.data(), data.size());
  std::thread writer([&] {
    sendAll(fd.get(), data);
    ::shutdown(fd.get(), SHUT_WR);
  });
  ReadResult r = readUntilEof(fd.get(), timeout);
  writer.join();
  ASSERT_EQ(r.error, 0) << strerror(r.error);
  Hasher got;
  got.update(r.data.data(), r.data.size());
  EXPECT_EQ(got.bytes(), bytes);
  EXPECT_EQ(got.digest(), sent.digest()) << "echoed bytes differ";
}

// ------------------------------------------------------------------------------------ HTTP

HttpResponse httpRequest(const std::string& ns, const std::string& method, const std::string& url,
                         Millis timeout) {
  HttpResponse resp;
  std::string rest = url;
  if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
  size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "/" : rest.substr(slash);
  size_t colon = hostport.rfind(':');
  std::string host = hostport.substr(0, colon);
  uint16_t port = colon == std::string::npos
                      ? 80
                      : static_cast<uint16_t>(std::stoi(hostport.substr(colon + 1)));
  int err = 0;
  UniqueFd fd = tcpConnect(ns, host, port, timeout, &err);
  if (!fd) {
    resp.error = "connect " + hostport + ": " + errnoText(err);
    return resp;
  }
  std::string req = method + " " + path + " HTTP/1.0\r\nHost: " + hostport +
                    "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  if (!sendAll(fd.get(), req)) {
    resp.error = "send: " + errnoText(errno);
    return resp;
  }
  ReadResult rr = readUntilEof(fd.get(), timeout, 64 << 20);
  if (!rr.eof) {
    resp.error = "read: " + errnoText(rr.error);
    if (rr.data.empty()) return resp;
  }
  const std::string& d = rr.data;
  if (d.rfind("HTTP/1.", 0) != 0 || d.size() < 12) {
    resp.error = "not an HTTP response: " + d.substr(0, 64);
    return resp;
  }
  resp.status = atoi(d.c_str() + 9);
  size_t body = d.find("\r\n\r\n");
  if (body != std::string::npos) resp.body = d.substr(body + 4);
  return resp;
}

HttpResponse httpGet(const std::string& ns, const std::string& url, Millis timeout) {
  return httpRequest(ns, "GET", url, timeout);
}

bool waitForHttp(const std::string& ns, const std::string& url, int status, Millis timeout) {
  return waitFor([&] { return httpGet(ns, url, 2s).status == status; }, timeout, 25ms);
}

namespace {

std::string trim(std::string s) {
  size_t a = s.find_first_not_of(" \t\r");
  size_t b = s.find_last_not_of(" \t\r");
  if (a == std::string::npos) return "";
  s = s.substr(a, b - a + 1);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

template <class F>
void forEachStat(const std::string& body, F&& f) {
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    size_t c = line.find(": ");
    if (c == std::string::npos) continue;
    if (!f(line.substr(0, c), trim(line.substr(c + 2)))) return;
  }
}

}  // namespace

std::optional<std::string> statValue(const std::string& body, const std::string& name) {
  std::optional<std::string> out;
  forEachStat(body, [&](const std::string& k, const std::string& v) {
    if (k == name) {
      out = v;
      return false;
    }
    return true;
  });
  return out;
}

int64_t statInt(const std::string& body, const std::string& name, int64_t fallback) {
  auto v = statValue(body, name);
  if (!v || v->empty()) return fallback;
  char* end = nullptr;
  long long x = strtoll(v->c_str(), &end, 10);
  return (end && *end == '\0') ? x : fallback;
}

std::vector<std::pair<std::string, std::string>> statsMatching(
    const std::string& body, const std::vector<std::string>& parts) {
  std::vector<std::pair<std::string, std::string>> out;
  forEachStat(body, [&](const std::string& k, const std::string& v) {
    bool all = std::all_of(parts.begin(), parts.end(),
                           [&](const std::string& p) { return k.find(p) != std::string::npos; });
    if (all) out.emplace_back(k, v);
    return true;
  });
  return out;
}

// ------------------------------------------------------------------------------------ data

void Hasher::update(const void* data, size_t len) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  bytes_ += len;
  while (npending_ != 0 && len > 0) {
    pending_ |= static_cast<uint64_t>(*p++) << (8 * npending_);
    --len;
    if (++npending_ == 8) {
      word(pending_);
      pending_ = 0;
      npending_ = 0;
    }
  }
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);  // little-endian host (x86-64, arm64)
    word(w);
    p += 8;
    len -= 8;
  }
  while (len > 0) {
    pending_ |= static_cast<uint64_t>(*p++) << (8 * npending_);
    ++npending_;
    --len;
  }
}

uint64_t Hasher::digest() const {
  uint64_t h = h_;
  h = (h ^ pending_ ^ (static_cast<uint64_t>(npending_) << 60)) * 0x100000001b3ULL;
  h = (h ^ bytes_) * 0x100000001b3ULL;
  return h;
}

void PatternGen::fill(void* buf, size_t len) {
  char* p = static_cast<char*>(buf);
  while (len >= 8) {
    uint64_t v = next();
    memcpy(p, &v, 8);
    p += 8;
    len -= 8;
  }
  if (len > 0) {
    uint64_t v = next();
    memcpy(p, &v, len);
  }
}

std::string PatternGen::bytes(size_t len) {
  std::string s(len, '\0');
  fill(s.data(), len);
  return s;
}

// ------------------------------------------------------------------------------------ servers

EchoServer::EchoServer(const std::string& ns, const std::string& ip, uint16_t port)
    : listen_(tcpListen(ns, ip, port)), wake_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  setNonBlocking(listen_.get());
  thread_ = std::thread([this] { loop(); });
}

EchoServer::~EchoServer() {
  uint64_t one = 1;
  (void)!write(wake_.get(), &one, sizeof one);
  if (thread_.joinable()) thread_.join();
}

void EchoServer::loop() {
  struct Conn {
    std::string out;  // bytes read, not yet written back
    size_t out_off = 0;
    bool peer_eof = false;
    uint32_t events = 0;
  };
  constexpr size_t kMaxPending = 1 << 20;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  std::unordered_map<int, Conn> conns;
  auto ctl = [&](int op, int fd, uint32_t ev) {
    epoll_event e{};
    e.events = ev;
    e.data.fd = fd;
    epoll_ctl(ep, op, fd, &e);
  };
  ctl(EPOLL_CTL_ADD, listen_.get(), EPOLLIN);
  ctl(EPOLL_CTL_ADD, wake_.get(), EPOLLIN);
  auto closeConn = [&](int fd) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    conns.erase(fd);
    active_.fetch_sub(1);
  };
  // Writes what it can; returns false if the connection failed.
  auto flush = [&](int fd, Conn& c) {
    while (c.out_off < c.out.size()) {
      ssize_t n =
          send(fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        c.out_off += static_cast<size_t>(n);
      } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        break;
      } else {
        return false;
      }
    }
    if (c.out_off == c.out.size()) {
      c.out.clear();
      c.out_off = 0;
    } else if (c.out_off > (256 << 10)) {
      c.out.erase(0, c.out_off);
      c.out_off = 0;
    }
    return true;
  };
  // Re-arms epoll, or finishes the connection; false if it was closed.
  auto update = [&](int fd, Conn& c) {
    size_t pending = c.out.size() - c.out_off;
    if (c.peer_eof && pending == 0) {
      shutdown(fd, SHUT_WR);  // half-close back, then done
      closeConn(fd);
      return false;
    }
    uint32_t ev = 0;
    if (!c.peer_eof && pending < kMaxPending) ev |= EPOLLIN;
    if (pending > 0) ev |= EPOLLOUT;
    if (ev != c.events) {
      ctl(EPOLL_CTL_MOD, fd, ev);
      c.events = ev;
    }
    return true;
  };
  std::vector<char> buf(256 * 1024);
  std::vector<epoll_event> events(256);
  bool stop = false;
  while (!stop) {
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == wake_.get()) {
        stop = true;
        continue;
      }
      if (fd == listen_.get()) {
        for (;;) {
          int c = accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;
          int one = 1;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          accepted_.fetch_add(1);
          active_.fetch_add(1);
          Conn& conn = conns[c];
          conn.events = EPOLLIN;
          ctl(EPOLL_CTL_ADD, c, EPOLLIN);
        }
        continue;
      }
      auto it = conns.find(fd);
      if (it == conns.end()) continue;
      Conn& c = it->second;
      bool ok = true;
      if (events[i].events & EPOLLOUT) ok = flush(fd, c);
      if (ok && (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c.peer_eof) {
        while (c.out.size() - c.out_off < kMaxPending) {
          ssize_t r = recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
          if (r > 0) {
            bytes_.fetch_add(static_cast<uint64_t>(r));
            c.out.append(buf.data(), static_cast<size_t>(r));
            if (!flush(fd, c)) {
              ok = false;
              break;
            }
          } else if (r == 0) {
            c.peer_eof = true;
            break;
          } else {
            if (errno != EAGAIN && errno != EINTR) ok = false;
            break;
          }
        }
      } else if (ok && (events[i].events & (EPOLLHUP | EPOLLERR)) && c.peer_eof) {
        ok = flush(fd, c);
      }
      if (!ok) {
        closeConn(fd);
        continue;
      }
      update(fd, c);
    }
  }
  for (auto& [fd, c] : conns) ::close(fd);
  active_.store(0);
  ::close(ep);
}

ThreadedServer::ThreadedServer(const std::string& ns, const std::string& ip, uint16_t port,
                               Handler handler)
    : listen_(tcpListen(ns, ip, port)),
      wake_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      handler_(std::move(handler)) {
  thread_ = std::thread([this] { loop(); });
}

ThreadedServer::~ThreadedServer() {
  uint64_t one = 1;
  (void)!write(wake_.get(), &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  std::vector<std::thread> conns;
  {
    std::lock_guard<std::mutex> lock(mu_);
    conns.swap(conns_);
  }
  for (auto& t : conns) t.join();
}

void ThreadedServer::loop() {
  // Connection fds still open; shut down on stop so blocked handlers return.
  auto open_fds = std::make_shared<std::pair<std::mutex, std::set<int>>>();
  for (;;) {
    pollfd p[2] = {{listen_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    int r = poll(p, 2, -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || (p[1].revents & POLLIN)) break;
    if (!(p[0].revents & POLLIN)) continue;
    int c = accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    accepted_.fetch_add(1);
    {
      std::lock_guard<std::mutex> lock(open_fds->first);
      open_fds->second.insert(c);
    }
    std::lock_guard<std::mutex> lock(mu_);
    conns_.emplace_back([this, c, open_fds] {
      try {
        handler_(c);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "server handler: " << e.what();
      }
      std::lock_guard<std::mutex> l(open_fds->first);
      open_fds->second.erase(c);
      ::close(c);
    });
  }
  std::lock_guard<std::mutex> lock(open_fds->first);
  for (int fd : open_fds->second) shutdown(fd, SHUT_RDWR);
}

SinkServer::SinkServer(const std::string& ns, const std::string& ip, uint16_t port) {
  server_ = std::make_unique<ThreadedServer>(ns, ip, port, [this](int fd) {
    Result res;
    Hasher h;
    auto t0 = Clock::now();
    std::vector<char> buf(512 * 1024);
    for (;;) {
      ssize_t n = recv(fd, buf.data(), buf.size(), 0);
      if (n > 0) {
        h.update(buf.data(), static_cast<size_t>(n));
      } else if (n == 0) {
        break;
      } else if (errno != EINTR) {
        res.error = errno;
        break;
      }
    }
    res.seconds = secondsSince(t0);
    res.bytes = h.bytes();
    res.hash = h.digest();
    if (res.error == 0) {
      uint64_t reply[2] = {res.bytes, res.hash};
      sendAll(fd, reply, sizeof reply);
      shutdown(fd, SHUT_WR);
      setSocketTimeouts(fd, 10s);
      char c;
      while (recv(fd, &c, 1, 0) > 0) {
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    results_.push_back(res);
  });
}

std::vector<SinkServer::Result> SinkServer::results() const {
  std::lock_guard<std::mutex> lock(mu_);
  return results_;
}

SourceServer::SourceServer(const std::string& ns, const std::string& ip, uint16_t port,
                           uint64_t bytes)
    : bytes_(bytes) {
  server_ = std::make_unique<ThreadedServer>(ns, ip, port, [this](int fd) {
    Result res;
    Hasher h;
    PatternGen gen(0x5eed0000ULL + static_cast<uint64_t>(fd));
    std::vector<char> buf(1 << 20);
    uint64_t left = bytes_;
    bool ok = true;
    while (left > 0) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(left, buf.size()));
      gen.fill(buf.data(), n);
      h.update(buf.data(), n);
      if (!sendAll(fd, buf.data(), n)) {
        ok = false;
        break;
      }
      left -= n;
    }
    shutdown(fd, SHUT_WR);
    setSocketTimeouts(fd, 30s);
    char c;
    while (recv(fd, &c, 1, 0) > 0) {
    }
    res.bytes = h.bytes();
    res.hash = h.digest();
    res.ok = ok;
    std::lock_guard<std::mutex> lock(mu_);
    results_.push_back(res);
  });
}

std::vector<SourceServer::Result> SourceServer::results() const {
  std::lock_guard<std::mutex> lock(mu_);
  return results_;
}

// ------------------------------------------------------------------------------------ rdmesh

SidecarSpec& SidecarSpec::outbound(const std::string& name, const std::string& address,
                                   const std::string& cluster_name) {
  ListenerSpec l;
  l.name = name;
  l.direction = "outbound";
  l.address = address;
  l.cluster = cluster_name;
  listeners.push_back(l);
  return *this;
}

SidecarSpec& SidecarSpec::capture(const std::string& name,
                                  std::map<std::string, std::string> options) {
  ListenerSpec l;
  l.name = name;
  l.direction = "capture";
  l.options = std::move(options);
  listeners.push_back(l);
  return *this;
}

SidecarSpec& SidecarSpec::inbound(const std::string& name, uint16_t port,
                                  const std::string& target) {
  ListenerSpec l;
  l.name = name;
  l.direction = "inbound";
  l.port = port;
  l.target = target;
  listeners.push_back(l);
  return *this;
}

SidecarSpec& SidecarSpec::cluster(const std::string& name, std::vector<EndpointSpec> endpoints,
                                  const std::string& lb_policy) {
  ClusterSpec c;
  c.name = name;
  c.lb_policy = lb_policy;
  c.endpoints = std::move(endpoints);
  clusters.push_back(c);
  return *this;
}

std::string SidecarSpec::toYaml() const {
  std::ostringstream y;
  auto q = [](const std::string& s) { return "\"" + s + "\""; };
  y << "# written by the rdmesh integration tests\n";
  y << "node:\n  name: " << node << "\n";
  if (!identity.empty()) y << "  identity: " << q(identity) << "\n";
  y << "  workers: " << workers << "\n";
  y << "admin:\n  address: " << q(admin) << "\n";
  if (!node_agent_socket.empty()) {
    y << "node_agent:\n  socket: " << q(node_agent_socket) << "\n  pod_ips:\n";
    for (auto& ip : pod_ips) y << "    - " << q(ip) << "\n";
    for (auto& [k, v] : node_agent_options) y << "  " << k << ": " << v << "\n";
    y << "transport:" << (transport_options.empty() ? " {}" : "") << "\n";
    for (auto& [k, v] : transport_options) y << "  " << k << ": " << v << "\n";
  } else {
    y << "transport:\n  backend: " << backend << "\n";
    if (!listen.empty()) y << "  listen: " << q(listen) << "\n";
    for (auto& [k, v] : transport_options) y << "  " << k << ": " << v << "\n";
    y << "  peers:" << (peers.empty() ? " []" : "") << "\n";
    for (auto& p : peers) y << "    - {name: " << p.name << ", address: " << q(p.address) << "}\n";
  }
  y << "listeners:" << (listeners.empty() ? " []" : "") << "\n";
  for (auto& l : listeners) {
    y << "  - name: " << l.name << "\n    direction: " << l.direction << "\n";
    if (l.direction == "outbound") {
      y << "    address: " << q(l.address) << "\n    cluster: " << l.cluster << "\n";
    } else if (l.direction == "capture") {
      for (auto& [k, v] : l.options) y << "    " << k << ": " << q(v) << "\n";
    } else {
      y << "    port: " << l.port << "\n";
      if (!l.target.empty()) y << "    target: " << q(l.target) << "\n";
    }
  }
  if (!clusters.empty()) {
    y << "clusters:\n";
    for (auto& c : clusters) {
      y << "  - name: " << c.name << "\n    lb_policy: " << c.lb_policy << "\n";
      if (c.connect_timeout_ms > 0) y << "    connect_timeout_ms: " << c.connect_timeout_ms << "\n";
      if (!c.service_addresses.empty()) {
        y << "    service_addresses:\n";
        for (auto& a : c.service_addresses) y << "      - " << q(a) << "\n";
      }
      y << "    endpoints:\n";
      for (auto& e : c.endpoints)
        y << "      - {node: " << e.node << ", address: " << q(e.address) << "}\n";
    }
  }
  if (drain_timeout_ms > 0) y << "drain_timeout_ms: " << drain_timeout_ms << "\n";
  y << extra_yaml;
  return y.str();
}

Sidecar::Sidecar(SidecarSpec spec, std::string ns, std::string dir)
    : spec_(std::move(spec)), ns_(std::move(ns)), dir_(std::move(dir)) {
  config_path_ = dir_ + "/" + spec_.fileName() + ".yaml";
  writeFile(config_path_, spec_.toYaml());
}

Sidecar::~Sidecar() {
  if (proc_ && proc_->running()) {
    int st = proc_->terminate(15s);
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
      ADD_FAILURE() << "rdmesh-proxy " << spec_.fileName()
                    << " did not exit 0 on SIGTERM: " << describeWaitStatus(st) << " (log "
                    << proc_->logPath() << ")";
    }
  }
  checkLogsClean();
}

void Sidecar::start() {
  if (proc_) {
    proc_->kill();
    old_.push_back(std::move(proc_));
  }
  std::string log =
      dir_ + "/" + spec_.fileName() + (starts_ ? "." + std::to_string(starts_) : "") + ".log";
  ++starts_;
  logs_.push_back(log);
  std::string level = getenv("RDMESH_IT_LOG_LEVEL") ? getenv("RDMESH_IT_LOG_LEVEL") : "info";
  std::vector<std::string> argv{proxyBinary(), "-c", config_path_, "--log-level", level};
  if (launcher_) {
    proc_ = std::make_unique<Process>("rdmesh-proxy " + spec_.fileName(),
                                      launcher_(std::move(argv)), log);
  } else {
    proc_ =
        std::make_unique<Process>("rdmesh-proxy " + spec_.fileName(), std::move(argv), log, ns_);
  }
}

bool Sidecar::waitReady(Millis timeout) {
  return waitFor(
      [&] {
        if (!running()) return false;
        return httpGet(ns_, adminUrl("/ready"), 2s).status == 200;
      },
      timeout, 25ms);
}

std::string Sidecar::adminUrl(const std::string& path) const {
  return "http://" + spec_.admin + path;
}

std::string Sidecar::stats() {
  HttpResponse r = httpGet(ns_, adminUrl("/stats"), 3s);
  return r.status == 200 ? r.body : "";
}

std::optional<std::string> Sidecar::stat(const std::string& name) {
  return statValue(stats(), name);
}

int64_t Sidecar::statInt(const std::string& name, int64_t fallback) {
  return it::statInt(stats(), name, fallback);
}

bool Sidecar::waitStat(const std::string& name, const std::string& value, Millis timeout) {
  return waitFor([&] { return stat(name) == value; }, timeout, 25ms);
}

bool Sidecar::waitSessionState(const std::string& peer, const std::string& state, Millis timeout) {
  return waitStat("rdmesh.session." + peer + ".state", state, timeout);
}

void Sidecar::kill() {
  if (proc_) proc_->kill();
}

int Sidecar::terminate(Millis grace) {
  return proc_ ? proc_->terminate(grace) : -1;
}

void Sidecar::checkLogsClean() {
  for (auto& log : logs_) {
    std::string text = readFile(log);
    for (const char* marker : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                               "runtime error:", "WARNING: ThreadSanitizer"}) {
      if (text.find(marker) != std::string::npos) {
        ADD_FAILURE() << "sanitizer report (" << marker << ") in " << log;
      }
    }
  }
}

Mesh::Mesh(std::string backend, std::vector<std::string> node_names)
    : backend_(std::move(backend)), names_(std::move(node_names)), dir_("rdmit") {
  raiseFdLimit();
  for (size_t i = 0; i < names_.size(); ++i) {
    std::string tag = names_[i];
    if (tag.rfind("node-", 0) == 0) tag = tag.substr(5);
    ns_.push_back(std::make_unique<Netns>(tag));
  }
  for (size_t i = 1; i < names_.size(); ++i) {
    std::string net = "10.77." + std::to_string(i) + ".";
    linkVeth(*ns_[0], net + "1/24", *ns_[i], net + "2/24");
    ip_[names_[i]] = net + "2";
  }
  ip_[names_[0]] = "10.77.1.1";
}

Mesh::~Mesh() {
  // Sidecars first (they run inside the namespaces), in name order (the dialer first), then the
  // namespaces, then the directory.
  for (auto& [node, sc] : sidecars_) sc.reset();
  sidecars_.clear();
  ns_.clear();
}

const std::string& Mesh::ns(const std::string& node) const {
  for (size_t i = 0; i < names_.size(); ++i) {
    if (names_[i] == node) return ns_[i]->name();
  }
  throw std::runtime_error("unknown node " + node);
}

std::string Mesh::ip(const std::string& node) const {
  return ip_.at(node);
}

SidecarSpec Mesh::baseSpec(const std::string& node) const {
  SidecarSpec s;
  s.node = node;
  s.identity = "spiffe://cluster.local/ns/default/sa/" + node;
  s.backend = backend_;
  s.drain_timeout_ms = 1000;
  s.transport_options["keepalive_interval_ms"] = "1000";
  s.transport_options["keepalive_timeout_ms"] = "5000";
  s.transport_options["connect_timeout_ms"] = "2000";
  const std::string& hub = names_[0];
  std::vector<std::string> peers;
  if (node == hub) {
    peers.assign(names_.begin() + 1, names_.end());
  } else {
    peers.push_back(hub);
  }
  // Index of a spoke node (its link to the hub is 10.77.<i>.0/24).
  auto spoke = [&](const std::string& n) {
    for (size_t i = 1; i < names_.size(); ++i) {
      if (names_[i] == n) return i;
    }
    throw std::runtime_error("unknown node " + n);
  };
  if (backend_ == "shm") {
    s.listen = dir_.file(node + ".sock");
    for (auto& p : peers) s.peers.push_back({p, dir_.file(p + ".sock")});
  } else {
    s.listen = node == hub ? "0.0.0.0:15008" : ip_.at(node) + ":15008";
    for (auto& p : peers) {
      std::string addr = p == hub ? "10.77." + std::to_string(spoke(node)) + ".1" : ip_.at(p);
      s.peers.push_back({p, addr + ":15008"});
    }
  }
  return s;
}

Sidecar& Mesh::add(SidecarSpec spec) {
  std::string node = spec.node;
  auto sc = std::make_unique<Sidecar>(std::move(spec), ns(node), dir_.path());
  Sidecar& ref = *sc;
  sidecars_[node] = std::move(sc);
  return ref;
}

Sidecar& Mesh::sidecar(const std::string& node) {
  return *sidecars_.at(node);
}

void Mesh::startAll(Millis timeout) {
  for (auto it = sidecars_.rbegin(); it != sidecars_.rend(); ++it) it->second->start();
  for (auto& [node, sc] : sidecars_) {
    if (!sc->waitReady(timeout)) {
      throw std::runtime_error(
          "rdmesh-proxy " + node + " not ready (/ready != 200) within " +
          std::to_string(timeout.count()) + " ms" +
          (sc->running()
               ? ""
               : "; it exited: " + describeWaitStatus(sc->process()->status().value_or(-1))));
    }
  }
  const std::string& hub = names_[0];
  for (size_t i = 1; i < names_.size(); ++i) {
    if (sidecars_.count(hub) && sidecars_.count(names_[i]) &&
        !waitEstablished(hub, names_[i], timeout)) {
      throw std::runtime_error("session " + hub + " <-> " + names_[i] + " not established within " +
                               std::to_string(timeout.count()) + " ms");
    }
  }
}

bool Mesh::waitEstablished(const std::string& a, const std::string& b, Millis timeout) {
  auto deadline = Clock::now() + timeout;
  auto left = [&] {
    return std::max(Millis(0), std::chrono::duration_cast<Millis>(deadline - Clock::now()));
  };
  return sidecar(a).waitSessionState(b, "established", left()) &&
         sidecar(b).waitSessionState(a, "established", left());
}

}  // namespace rdmesh::it

namespace rdmesh::it {

std::vector<std::string> inPod(const std::string& cgroup_dir, const std::string& ns,
                               std::vector<std::string> argv, int uid) {
  std::vector<std::string> out = {"/bin/sh",
                                  "-c",
                                  "echo $$ > \"$0/cgroup.procs\" && exec \"$@\"",
                                  cgroup_dir,
                                  findExecutable("nsenter"),
                                  "--net=/run/netns/" + ns};
  if (uid >= 0) {
    std::string id = std::to_string(uid);
    // Changing uid clears PR_SET_PDEATHSIG: ask setpriv to set it again.
    for (const std::string& a :
         {findExecutable("setpriv"), "--reuid=" + id, "--regid=" + id,
          std::string("--clear-groups"), std::string("--pdeathsig=KILL"), std::string("--")}) {
      out.push_back(a);
    }
  }
  for (auto& a : argv) out.push_back(std::move(a));
  return out;
}

std::string cgroupV2Root() {
  for (const char* candidate : {"/sys/fs/cgroup/unified", "/sys/fs/cgroup"}) {
    if (access((std::string(candidate) + "/cgroup.procs").c_str(), F_OK) == 0 &&
        access((std::string(candidate) + "/cgroup.subtree_control").c_str(), F_OK) == 0) {
      return candidate;
    }
  }
  return "";
}

TestCgroup::TestCgroup(const std::string& path) : path_(path) {
  if (mkdir(path_.c_str(), 0755) != 0 && errno != EEXIST)
    fail("mkdir " + path_ + ": " + errnoText(errno));
}

TestCgroup::~TestCgroup() {
  // rmdir succeeds once the cgroup is empty; processes of the test may take a moment to go.
  waitFor([&] { return rmdir(path_.c_str()) == 0 || errno == ENOENT; }, 5s, 20ms);
}

}  // namespace rdmesh::it
