#include "containerd_harness.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace rdmesh::it {

namespace fs = std::filesystem;

namespace {

constexpr const char* kDebianCniDir = "/usr/lib/cni";
// Host paths that ctr reads; bind-mount targets must exist, so they are created (empty) if absent.
constexpr const char* kHostCniConfDir = "/etc/cni/net.d";
constexpr const char* kHostCniBinDir = "/opt/cni/bin";
constexpr const char* kHostCniCacheDir = "/var/lib/cni";

std::string shellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

void copyExecutableInto(const std::string& root, const std::string& host_path) {
  const fs::path target = fs::path(root) / fs::path(host_path).relative_path();
  fs::create_directories(target.parent_path());
  // copy_file follows symlinks: redis-server (a link to redis-check-rdb) lands as a file with the
  // name it is run by.
  fs::copy_file(host_path, target, fs::copy_options::overwrite_existing);
  fs::permissions(target, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec |
                              fs::perms::group_read | fs::perms::others_read);
}

// Every shared library `exe` loads, by absolute path (ldd's "=> /path" and the loader itself).
std::vector<std::string> sharedLibraries(const std::string& exe, const std::string& log) {
  CommandResult r = runCommand({"ldd", exe}, log);
  std::vector<std::string> libs;
  std::istringstream lines(r.output);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string word;
    while (words >> word) {
      if (word.front() == '/' && fs::exists(word)) libs.push_back(word);
    }
  }
  return libs;
}

void ensureDir(const char* path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (!fs::is_directory(path)) throw std::runtime_error(std::string("cannot create ") + path);
}

}  // namespace

std::string containerdUnavailableReason() {
  if (geteuid() != 0) return "containerd tests need root";
  for (const char* tool : {"containerd", "ctr", "runc", "busybox", "unshare", "nsenter", "ldd"}) {
    if (findExecutable(tool).empty()) {
      return std::string(tool) +
             " not found (scripts/install-deps.sh installs containerd, runc, "
             "containernetworking-plugins and busybox-static)";
    }
  }
  for (const char* plugin : {"bridge", "host-local", "loopback"}) {
    if (!fs::exists(fs::path(kDebianCniDir) / plugin)) {
      return std::string("CNI plugin ") + plugin + " not found in " + kDebianCniDir;
    }
  }
  return netnsUnavailableReason();
}

std::string cniBinary() {
  if (const char* e = getenv("RDMESH_CNI_BIN"); e && *e) return e;
  return RDMESH_CNI_BIN;
}

void buildRootfs(const std::string& dir, const std::vector<std::string>& executables) {
  for (const char* sub : {"bin", "proc", "sys", "dev", "tmp", "etc", "run", "data"}) {
    fs::create_directories(fs::path(dir) / sub);
  }
  fs::permissions(fs::path(dir) / "tmp", fs::perms::all | fs::perms::sticky_bit);
  fs::permissions(fs::path(dir) / "data", fs::perms::all);
  const std::string log = dir + "/../rootfs-build.log";

  std::vector<std::string> files = {findExecutable("busybox")};
  for (const auto& exe : executables) {
    std::string path = findExecutable(exe);
    if (path.empty()) throw std::runtime_error("buildRootfs: " + exe + " not found");
    files.push_back(path);
  }
  std::vector<std::string> with_libs = files;
  for (const auto& f : files) {
    for (auto& lib : sharedLibraries(f, log)) with_libs.push_back(lib);
  }
  for (const auto& f : with_libs) copyExecutableInto(dir, f);
  // busybox at /bin/busybox, every applet a relative link to it.
  const fs::path busybox_in_root = fs::path(dir) / fs::path(files[0]).relative_path();
  if (busybox_in_root != fs::path(dir) / "bin/busybox") {
    fs::copy_file(busybox_in_root, fs::path(dir) / "bin/busybox",
                  fs::copy_options::overwrite_existing);
  }
  CommandResult list = runCommand({files[0], "--list"}, log);
  std::istringstream applets(list.output);
  std::string applet;
  while (std::getline(applets, applet)) {
    if (applet.empty() || applet == "busybox" || applet.find('/') != std::string::npos ||
        applet.front() == '#') {
      continue;
    }
    const fs::path link = fs::path(dir) / "bin" / applet;
    if (!fs::exists(fs::symlink_status(link))) fs::create_symlink("busybox", link);
  }
  writeFile(dir + "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nrdmesh:x:1337:1337:rdmesh sidecar:/tmp:/bin/sh\n");
  writeFile(dir + "/etc/group", "root:x:0:\nrdmesh:x:1337:\n");
  writeFile(dir + "/etc/hosts", "127.0.0.1 localhost\n::1 localhost\n");
}

CniDirs makeCniDirs(const std::string& root, const ChainSpec& chain,
                    const std::string& rdmesh_cni_binary) {
  CniDirs d{root + "/net.d", root + "/bin", root + "/cache", root + "/ipam"};
  for (const auto* p : {&d.conf_dir, &d.bin_dir, &d.cache_dir, &d.ipam_dir}) {
    fs::create_directories(*p);
  }
  for (const auto& entry : fs::directory_iterator(kDebianCniDir)) {
    fs::create_symlink(entry.path(), fs::path(d.bin_dir) / entry.path().filename());
  }
  if (!rdmesh_cni_binary.empty()) {
    fs::create_symlink(fs::absolute(rdmesh_cni_binary), fs::path(d.bin_dir) / "rdmesh-cni");
  }

  std::ostringstream conf;
  conf << "{\n  \"cniVersion\": \"" << chain.cni_version << "\",\n  \"name\": \""
       << chain.network_name << "\",\n  \"plugins\": [\n"
       << "    {\"type\": \"bridge\", \"bridge\": \"" << chain.bridge
       << "\", \"isGateway\": true, \"ipMasq\": false,\n"
       << "     \"ipam\": {\"type\": \"host-local\", \"subnet\": \"" << chain.subnet
       << "\", \"dataDir\": \"" << d.ipam_dir << "\", \"routes\": [{\"dst\": \"0.0.0.0/0\"}]}}";
  if (!chain.rdmesh_cni_fields.empty()) {
    std::string fields = chain.rdmesh_cni_fields;  // "{...}" -> "type" first, then the fields
    const size_t open = fields.find('{');
    const std::string rest = fields.substr(open + 1);
    conf << ",\n    {\"type\": \"rdmesh-cni\""
         << (rest.find_first_not_of(" \n}") == std::string::npos ? "}" : ", " + rest);
  }
  conf << "\n  ]\n}\n";
  writeFile(d.conf_dir + "/10-" + chain.network_name + ".conflist", conf.str());
  return d;
}

// ------------------------------------------------------------------------------------ containerd

Containerd::Containerd(const std::string& dir) : dir_(dir + "/containerd") {
  fs::create_directories(dir_ + "/root");
  fs::create_directories(dir_ + "/state");
  address_ = dir_ + "/state/containerd.sock";
  // Only what `ctr run --rootfs` needs: no CRI, no image store use; every path under dir_.
  writeFile(dir_ + "/config.toml",
            "version = 2\n"
            "root = \"" +
                dir_ +
                "/root\"\n"
                "state = \"" +
                dir_ +
                "/state\"\n"
                "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n"
                "[grpc]\n  address = \"" +
                address_ +
                "\"\n"
                "[ttrpc]\n  address = \"" +
                address_ +
                ".ttrpc\"\n"
                "[debug]\n  address = \"\"\n"
                "[plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"" +
                dir_ + "/opt\"\n");
  daemon_ = std::make_unique<Process>(
      "containerd", std::vector<std::string>{"containerd", "--config", dir_ + "/config.toml"},
      dir_ + "/containerd.log");
  const bool up = waitFor(
      [&] {
        return daemon_->running() &&
               runCommand({"ctr", "--address", address_, "version"}, dir_ + "/probe.log", {}, 10s)
                   .ok();
      },
      30s, 100ms);
  if (!up) {
    daemon_->printLog();
    throw std::runtime_error("containerd did not come up (log: " + dir_ + "/containerd.log)");
  }
}

Containerd::~Containerd() {
  for (const auto& ns : namespaces_) removeAll(ns);
  daemon_->terminate(10s);
  // Empty per-namespace cgroups runc leaves behind (v1 hierarchies; v2 under "unified").
  std::error_code ec;
  for (const auto& hierarchy : fs::directory_iterator("/sys/fs/cgroup", ec)) {
    for (const auto& ns : namespaces_) ::rmdir((hierarchy.path() / ns).c_str());
  }
}

void Containerd::useNamespace(const std::string& ns) {
  if (std::find(namespaces_.begin(), namespaces_.end(), ns) == namespaces_.end()) {
    namespaces_.push_back(ns);
  }
}

CommandResult Containerd::ctr(const std::vector<std::string>& args, Millis timeout,
                              const std::string& ns) {
  std::vector<std::string> argv = {"ctr", "--address", address_, "-n", ns};
  argv.insert(argv.end(), args.begin(), args.end());
  return runCommand(argv, dir_ + "/ctr-command.log", {}, timeout);
}

std::vector<std::string> Containerd::runningTasks(const std::string& ns) {
  std::vector<std::string> ids;
  CommandResult r = ctr({"task", "ls", "-q"}, 60s, ns);
  std::istringstream lines(r.output);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.rfind("###", 0) != 0 && line.find(' ') == std::string::npos) {
      ids.push_back(line);
    }
  }
  return ids;
}

void Containerd::removeAll(const std::string& ns) {
  for (const auto& id : runningTasks(ns)) {
    ctr({"task", "kill", "-s", "SIGKILL", id}, 60s, ns);
    waitFor([&] { return ctr({"task", "delete", id}, 60s, ns).ok(); }, 10s, 100ms);
  }
  CommandResult containers = ctr({"container", "ls", "-q"}, 60s, ns);
  std::istringstream lines(containers.output);
  std::string id;
  while (std::getline(lines, id)) {
    if (!id.empty() && id.rfind("###", 0) != 0) ctr({"container", "delete", id}, 60s, ns);
  }
}

// ------------------------------------------------------------------------------------ container

Container::Container(Containerd& containerd, ContainerSpec spec, const std::string& log_dir)
    : containerd_(containerd), spec_(std::move(spec)), log_dir_(log_dir) {
  containerd_.useNamespace(spec_.ctr_namespace);
  ensureDir(kHostCniConfDir);
  ensureDir(kHostCniBinDir);
  ensureDir(kHostCniCacheDir);
  std::string script = "set -e; mount --bind " + shellQuote(spec_.cni.conf_dir) + " " +
                       kHostCniConfDir + "; mount --bind " + shellQuote(spec_.cni.bin_dir) + " " +
                       kHostCniBinDir + "; mount --bind " + shellQuote(spec_.cni.cache_dir) + " " +
                       kHostCniCacheDir + "; exec ";
  if (!spec_.node_netns.empty()) script += "nsenter --net=/run/netns/" + spec_.node_netns + " ";
  script += "ctr --address " + shellQuote(containerd_.address()) + " -n " +
            shellQuote(spec_.ctr_namespace) + " run --rm";
  script += spec_.join_netns.empty() ? " --cni" : " --with-ns " + shellQuote("network:" + spec_.join_netns);
  for (const auto& m : spec_.mounts) script += " --mount " + shellQuote(m);
  for (const auto& e : spec_.env) script += " --env " + shellQuote(e);
  script += " --rootfs " + shellQuote(spec_.rootfs) + " " + shellQuote(spec_.id);
  for (const auto& a : spec_.argv) script += " " + shellQuote(a);
  ctr_ = std::make_unique<Process>("ctr-run-" + spec_.id,
                                   std::vector<std::string>{"unshare", "--mount", "--propagation",
                                                            "private", "--", "sh", "-c", script},
                                   log_dir_ + "/ctr-run-" + spec_.id + ".log");
}

Container::~Container() {
  if (ctr_->running()) stop(30s);
}

std::string Container::cniContainerId() const {
  return spec_.ctr_namespace + "-" + spec_.id;
}

std::string Container::cgroupDir(const std::string& cgroup_root) const {
  return cgroup_root + "/" + spec_.ctr_namespace + "/" + spec_.id;
}

std::string Container::output() const {
  // Skip the "### name: argv" line Process starts its log with (it quotes the command).
  const std::string log = ctr_->output();
  const size_t eol = log.rfind("### ", 0) == 0 ? log.find('\n') : std::string::npos;
  return eol == std::string::npos ? log : log.substr(eol + 1);
}

bool Container::waitOutput(const std::string& marker, Millis timeout) {
  const auto seen = [&] { return output().find(marker) != std::string::npos; };
  waitFor([&] { return seen() || !ctr_->running(); }, timeout, 50ms);
  return seen();
}

pid_t Container::taskPid() {
  CommandResult r = containerd_.ctr({"task", "ls"}, 60s, spec_.ctr_namespace);
  std::istringstream lines(r.output);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string id;
    pid_t pid = 0;
    if (words >> id >> pid && id == spec_.id) return pid;
  }
  return 0;
}

std::string Container::netnsPath() {
  const pid_t pid = taskPid();
  return pid > 0 ? "/proc/" + std::to_string(pid) + "/ns/net" : std::string();
}

CommandResult Container::exec(const std::vector<std::string>& argv, Millis timeout,
                              const std::string& user) {
  std::vector<std::string> args = {"task", "exec", "--exec-id", "e" + std::to_string(++execs_)};
  if (!user.empty()) {
    args.push_back("--user");
    args.push_back(user);
  }
  args.push_back(spec_.id);
  args.insert(args.end(), argv.begin(), argv.end());
  return containerd_.ctr(args, timeout, spec_.ctr_namespace);
}

std::optional<int> Container::stop(Millis timeout) {
  containerd_.ctr({"task", "kill", "-s", "SIGKILL", spec_.id}, 60s, spec_.ctr_namespace);
  auto status = ctr_->wait(timeout);
  if (!status) {
    ADD_FAILURE() << "ctr run " << spec_.id << " did not exit after its task was killed";
    ctr_->kill();
  }
  return status;
}

// ------------------------------------------------------------------------------------ netns

AttachedNetns::AttachedNetns(const std::string& tag, pid_t pid) : name_(uniqueName(tag)) {
  CommandResult r = runCommand({"ip", "netns", "attach", name_, std::to_string(pid)}, "/dev/null");
  if (!r.ok()) throw std::runtime_error("ip netns attach " + name_ + ": " + r.describe());
}

AttachedNetns::~AttachedNetns() {
  runCommand({"ip", "netns", "delete", name_}, "/dev/null");
}

}  // namespace rdmesh::it
