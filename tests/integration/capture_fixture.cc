#include "capture_fixture.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <functional>
#include <regex>

namespace rdmesh::it {

namespace {

std::string nodeBinary() {
  if (const char* env = getenv("RDMESH_NODE_BIN")) return env;
#ifdef RDMESH_NODE_BIN
  return RDMESH_NODE_BIN;
#else
  return "rdmesh-node";
#endif
}

// The first veth of a namespace ("veth0@if5" -> "veth0").
std::string vethOf(const std::string& ns, const std::string& log) {
  CommandResult r =
      runCommand({findExecutable("ip"), "-n", ns, "-o", "link", "show", "type", "veth"}, log);
  std::smatch m;
  std::regex re(R"(\n\d+: ([^@:\s]+)[@:])");
  if (!r.ok() || !std::regex_search(r.output, m, re)) {
    throw std::runtime_error("no veth in " + ns + ": " + r.output);
  }
  return m[1];
}

// Cgroups and pins named "rdmc<pid>x<n>..." by test processes that are gone (interrupted runs):
// their processes are killed (cgroup.kill), their programs detached, the directories removed.
void sweepStaleCapture(const std::string& cgroup_root, const std::string& log) {
  auto stale = [](const std::string& name) {
    if (name.rfind("rdmc", 0) != 0) return false;
    pid_t pid = static_cast<pid_t>(std::strtol(name.c_str() + 4, nullptr, 10));
    return pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH;
  };
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/sys/fs/bpf", ec)) {
    if (!stale(e.path().filename().string())) continue;
    runCommand({nodeBinary(), "--uninstall", "--bpf-pin-dir", e.path().string(), "--state-file",
                "/nonexistent/rdmesh-state"},
               log);
  }
  for (const auto& e : fs::directory_iterator(cgroup_root, ec)) {
    if (!e.is_directory() || !stale(e.path().filename().string())) continue;
    writeFile(e.path().string() + "/cgroup.kill", "1");
    std::vector<fs::path> dirs;
    for (const auto& sub : fs::recursive_directory_iterator(e.path(), ec)) {
      if (sub.is_directory()) dirs.push_back(sub.path());
    }
    std::sort(dirs.begin(), dirs.end(), std::greater<>());  // children first
    dirs.push_back(e.path());
    for (const auto& d : dirs) {
      waitFor([&] { return ::rmdir(d.c_str()) == 0 || errno == ENOENT; }, 2s);
    }
  }
}

}  // namespace

std::string preloadLibrary() {
  if (const char* env = getenv("RDMESH_PRELOAD_LIB")) return env;
#ifdef RDMESH_PRELOAD_LIB
  return RDMESH_PRELOAD_LIB;
#else
  return "librdmesh-preload.so";
#endif
}

std::string commandOutput(const CommandResult& r) {
  if (r.output.rfind("### ", 0) != 0) return r.output;
  size_t eol = r.output.find('\n');
  return eol == std::string::npos ? "" : r.output.substr(eol + 1);
}

std::optional<std::string> jsonField(const std::string& json, const std::string& key) {
  std::regex re("\"" + key + R"(\":\s*(\"[^\"]*\"|[^,}\]]+))");
  std::smatch m;
  if (!std::regex_search(json, m, re)) return std::nullopt;
  std::string v = m[1];
  if (v.size() >= 2 && v.front() == '"') v = v.substr(1, v.size() - 2);
  return v;
}

ThreadedServer::Handler httpHandler(const std::string& tag, uint16_t port) {
  return [tag, port](int fd) {
    setSocketTimeouts(fd, 5s);
    std::string request;
    char buf[4096];
    while (request.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n <= 0) return;
      request.append(buf, static_cast<size_t>(n));
    }
    std::string body = tag + ":" + std::to_string(port) + "\n";
    sendAll(fd, "HTTP/1.0 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nConnection: close\r\n\r\n" + body);
  };
}

// ------------------------------------------------------------------------------------ NodeAgent

NodeAgent::NodeAgent(std::string name, std::string dir, std::string cgroup, std::string pin_dir,
                     bool bpf)
    : name_(std::move(name)),
      dir_(std::move(dir)),
      cgroup_(std::move(cgroup)),
      pin_dir_(std::move(pin_dir)),
      socket_(dir_ + "/" + name_ + ".node.sock"),
      state_(dir_ + "/" + name_ + ".pods.json"),
      bpf_(bpf) {}

NodeAgent::~NodeAgent() {
  if (proc_ && proc_->running()) terminate();
  if (bpf_) {
    runCommand({nodeBinary(), "--uninstall", "--cgroup", cgroup_, "--bpf-pin-dir", pin_dir_,
                "--state-file", state_},
               dir_ + "/" + name_ + ".uninstall.log");
  }
}

void NodeAgent::start() {
  std::string log =
      dir_ + "/" + name_ + ".agent" + (starts_ ? "." + std::to_string(starts_) : "") + ".log";
  ++starts_;
  std::vector<std::string> argv = {nodeBinary(), "--node-name", name_,
                                   "--socket",   socket_,       "--state-file",
                                   state_,       "--log-level", "debug"};
  if (bpf_) {
    for (const std::string& a :
         {std::string("--cgroup"), cgroup_, std::string("--bpf-pin-dir"), pin_dir_}) {
      argv.push_back(a);
    }
  } else {
    argv.push_back("--bpf");
    argv.push_back("false");
  }
  argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
  proc_ = std::make_unique<Process>("rdmesh-node " + name_, argv, log, netns_);
  bool up = waitFor(
      [&] { return proc_->running() && !request(R"({"v":1,"op":"pod_list"})").empty(); }, 20s);
  if (!up) {
    proc_->printLog();
    throw std::runtime_error("rdmesh-node " + name_ + " did not come up");
  }
}

int NodeAgent::terminate() {
  return proc_->terminate(10s);
}

std::string NodeAgent::request(const std::string& json) const {
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket_.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return "";
  setSocketTimeouts(fd.get(), 5s);
  if (::send(fd.get(), json.data(), json.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(json.size())) {
    return "";
  }
  std::string reply(70000, '\0');
  ssize_t n = ::recv(fd.get(), reply.data(), reply.size(), 0);
  if (n <= 0) return "";
  reply.resize(static_cast<size_t>(n));
  return reply;
}

std::string NodeAgent::dumpMap(const std::string& map) const {
  CommandResult r =
      runCommand({findExecutable("bpftool"), "-j", "map", "dump", "pinned", pin_dir_ + "/" + map},
                 dir_ + "/bpftool.log");
  if (!r.ok()) return "error: " + r.output;
  std::string out = commandOutput(r);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

int64_t NodeAgent::stat(const std::string& name) const {
  std::optional<std::string> v = jsonField(request(R"({"v":1,"op":"stats"})"), name);
  return v ? std::stoll(*v) : -1;
}

// ------------------------------------------------------------------------------------ scenario

void CaptureScenario::SetUpScenario(bool bpf) {
  if (auto why = netnsUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  std::string root = cgroupV2Root();
  if (root.empty()) GTEST_SKIP() << "no cgroup v2 mount";
  for (const char* tool : {"curl", "redis-cli", "redis-server", "nsenter", "setpriv", "bpftool"}) {
    if (findExecutable(tool).empty()) GTEST_SKIP() << tool << " not installed";
  }
  raiseFdLimit();
  sweepStaleCapture(root, "/dev/null");
  mesh_ = std::make_unique<Mesh>("tcp", std::vector<std::string>{"node-a", "node-b"});
  std::string tag = uniqueName("rdmc");
  cg_root_ = std::make_unique<TestCgroup>(root + "/" + tag);
  for (const char* node : {"node-a", "node-b"}) {
    std::string dir = cg_root_->path() + "/" + node;
    cgroups_[node] = std::make_unique<TestCgroup>(dir);
    cgroups_[std::string(node) + "/pod"] = std::make_unique<TestCgroup>(dir + "/pod");
  }
  pin_prefix_ = "/sys/fs/bpf/" + tag;

  // IPv6 on the node link too (nodad: usable at once).
  std::string log = mesh_->logPath("ip6");
  for (auto [node, ip] : {std::pair{"node-a", kPodA6}, std::pair{"node-b", kPodB6}}) {
    std::string ns = mesh_->ns(node);
    CommandResult r = runCommand({findExecutable("ip"), "-n", ns, "addr", "add",
                                  std::string(ip) + "/64", "dev", vethOf(ns, log), "nodad"},
                                 log);
    ASSERT_TRUE(r.ok()) << r.describe();
  }

  for (const char* node : {"node-a", "node-b"}) {
    auto agent = std::make_unique<NodeAgent>(node, mesh_->dir().path(), cgroups_[node]->path(),
                                             pin_prefix_ + "-" + node, bpf);
    agent->start();
    std::string reply = agent->request(podAddJson(std::string("pod-") + node, node));
    ASSERT_EQ(jsonField(reply, "ok"), "true") << reply;
    agents_[node] = std::move(agent);
  }

  // node-b's apps: HTTP on 8080 (v4), 8086 (dual stack), 9090 (v4), redis on 6379.
  std::string ns_b = mesh_->ns("node-b");
  servers_.push_back(
      std::make_unique<ThreadedServer>(ns_b, "0.0.0.0", kWebPort, httpHandler("web", kWebPort)));
  servers_.push_back(
      std::make_unique<ThreadedServer>(ns_b, "::", kWeb6Port, httpHandler("web6", kWeb6Port)));
  servers_.push_back(std::make_unique<ThreadedServer>(ns_b, "0.0.0.0", kExcludedPort,
                                                      httpHandler("excluded", kExcludedPort)));
  redis_ = std::make_unique<Process>(
      "redis-server",
      std::vector<std::string>{findExecutable("redis-server"), "--port", std::to_string(kRedisPort),
                               "--bind", "0.0.0.0", "--save", "", "--appendonly", "no",
                               "--protected-mode", "no"},
      mesh_->logPath("redis-server"), ns_b);
  ASSERT_TRUE(waitForTcp(ns_b, "127.0.0.1", kRedisPort, 20s));

  // Sidecars: the capture listener on both; node-a knows node-b's services and endpoints;
  // node-b delivers tunnelled streams to its local apps.
  SidecarSpec a = mesh_->baseSpec("node-a");
  a.capture("capture");
  a.cluster("web", {{"node-b", std::string(kPodB) + ":8080"}});
  a.clusters.back().service_addresses = {kWebService};
  a.cluster("web6", {{"node-b", "[" + std::string(kPodB6) + "]:8086"}});
  a.cluster("redis", {{"node-b", std::string(kPodB) + ":6379"}});
  a.clusters.back().service_addresses = {kRedisService};
  SidecarSpec b = mesh_->baseSpec("node-b");
  b.capture("capture");
  for (uint16_t port : {kWebPort, kWeb6Port, kRedisPort}) {
    b.inbound("in-" + std::to_string(port), port, "127.0.0.1:" + std::to_string(port));
  }
  std::string proxy = reachableBySidecarUid(proxyBinary());
  preload_lib_ = reachableBySidecarUid(preloadLibrary());
  for (SidecarSpec* spec : {&a, &b}) {
    Sidecar& s = mesh_->add(*spec);
    if (bpf) {
      // As in a pod: in the pod's cgroup (the getsockopt hook answers there), uid 1337.
      std::string cgroup = cgroups_[spec->node + "/pod"]->path();
      std::string ns = mesh_->ns(spec->node);
      s.setLauncher([cgroup, ns, proxy](std::vector<std::string> argv) {
        argv[0] = proxy;
        return inPod(cgroup, ns, std::move(argv), kSidecarUid);
      });
    }
  }
  mesh_->startAll();
}

void CaptureScenario::TearDown() {
  if (testing::Test::HasFailure()) {
    for (auto& [name, agent] : agents_) {
      std::cerr << "[capture] " << name
                << " agent stats: " << agent->request(R"({"v":1,"op":"stats"})") << "\n";
    }
  }
  // The agents uninstall their programs and pins (logging into the mesh's directory), the
  // sidecars go with the mesh, then the cgroups (empty by now) are removed.
  redis_.reset();
  servers_.clear();
  agents_.clear();
  mesh_.reset();
  while (!cgroups_.empty()) cgroups_.erase(std::prev(cgroups_.end()));  // children first
  cg_root_.reset();
}

// uid 1337 must be able to run the proxy and load the shim: a checkout under /root is not
// reachable for it, so then a copy in the test's directory is used.
std::string CaptureScenario::reachableBySidecarUid(const std::string& path) {
  CommandResult reachable =
      runCommand({findExecutable("setpriv"), "--reuid=1337", "--regid=1337", "--clear-groups", "--",
                  "/bin/sh", "-c", "test -r \"$0\"", path},
                 mesh_->logPath("access"));
  if (reachable.ok()) return path;
  std::string copy = mesh_->dir().file(std::filesystem::path(path).filename().string());
  std::filesystem::copy_file(path, copy, std::filesystem::copy_options::overwrite_existing);
  ::chmod(copy.c_str(), 0755);
  return copy;
}

std::string CaptureScenario::podAddJson(const std::string& id, const std::string& node) const {
  bool a = node == "node-a";
  std::string ips = a ? std::string("\"") + kPodA + "\",\"" + kPodA6 + "\""
                      : std::string("\"") + kPodB + "\",\"" + kPodB6 + "\"";
  std::string excluded =
      a ? ",\"exclude_outbound_ports\":[" + std::to_string(kExcludedPort) + "]" : "";
  return R"({"v":1,"op":"pod_add","container_id":")" + id + R"(","netns":"/run/netns/)" +
         mesh_->ns(node) + R"(","ips":[)" + ips + R"(],"interface":"eth0","pod_name":")" + id +
         R"(","pod_namespace":"default")" + excluded + "}";
}

CommandResult CaptureScenario::runInPodA(std::vector<std::string> argv, int uid,
                                         std::vector<std::string> env, Millis timeout) {
  if (!env.empty()) {
    std::vector<std::string> with_env = {findExecutable("env")};
    for (auto& e : env) with_env.push_back(std::move(e));
    for (auto& a : argv) with_env.push_back(std::move(a));
    argv = std::move(with_env);
  }
  std::string log = mesh_->logPath("client");
  return runCommand(
      inPod(cgroups_["node-a/pod"]->path(), mesh_->ns("node-a"), std::move(argv), uid), log, "",
      timeout);
}

CommandResult CaptureScenario::curlFromPodA(const std::string& host_port, int uid,
                                            std::vector<std::string> env) {
  return runInPodA({findExecutable("curl"), "-sS", "-g", "--max-time", "10", "-w",
                    "|%{remote_ip}|%{remote_port}", "http://" + host_port + "/"},
                   uid, std::move(env));
}

}  // namespace rdmesh::it
