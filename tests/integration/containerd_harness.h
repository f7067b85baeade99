// A real container runtime for integration tests: a private containerd (own root, state and
// socket under a test directory), unpacked root filesystems made from host binaries (no image
// registry), CNI configuration lists chaining Debian's plugins with rdmesh-cni, and containers
// started with `ctr run --cni --rootfs DIR` exactly as an operator would.
//
// `ctr run --cni` reads /etc/cni/net.d and /opt/cni/bin and caches results in /var/lib/cni, with
// no flag to change them (containerd 1.6). Each ctr therefore runs in a private mount namespace
// where the test's own directories are bind-mounted over those three paths: the host's stay
// untouched, and several "nodes" with different chains can run side by side. ctr (and so every
// CNI plugin) runs inside the node's network namespace, so bridges and veth host ends live there.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "harness.h"

namespace rdmesh::it {

// Empty when containerd, ctr, runc, busybox and the Debian CNI plugins are all present and we are
// root; otherwise the reason, for GTEST_SKIP.
std::string containerdUnavailableReason();

// Builds an unpacked root filesystem at `dir`: busybox (static) with its applets linked in /bin,
// the given host executables at their host paths (symlinks resolved) with every shared library
// they load, /etc/passwd and /etc/group with root and the sidecar user (uid 1337), and empty
// /proc /sys /dev /tmp for the runtime to mount over.
void buildRootfs(const std::string& dir, const std::vector<std::string>& executables);

// Where the CNI pieces of one node live; see the file comment.
struct CniDirs {
  std::string conf_dir;   // bind-mounted over /etc/cni/net.d (holds the one conflist)
  std::string bin_dir;    // over /opt/cni/bin: Debian's plugins plus rdmesh-cni
  std::string cache_dir;  // over /var/lib/cni
  std::string ipam_dir;   // host-local's lease files
};

// Options of the chain: bridge (+ host-local IPAM) then rdmesh-cni.
struct ChainSpec {
  std::string network_name = "rdmesh-it";
  std::string bridge;  // bridge device name (inside the node namespace)
  std::string subnet;  // pod subnet, e.g. "10.88.1.0/24" (the bridge takes .1)
  // rdmesh-cni's entry, without "type" (e.g. {"nodeSocket": ..., "logFile": ...}) as JSON text;
  // empty = no rdmesh-cni in the chain.
  std::string rdmesh_cni_fields;
  std::string cni_version = "1.0.0";
};

// Creates the directories under `root`, fills bin_dir (Debian plugins + `rdmesh_cni_binary`) and
// writes the conflist.
CniDirs makeCniDirs(const std::string& root, const ChainSpec& chain,
                    const std::string& rdmesh_cni_binary);

// Path of the rdmesh-cni binary: $RDMESH_CNI_BIN, else the one CMake built.
std::string cniBinary();

// A containerd daemon of the test's own; the destructor removes every container it still runs,
// stops it and its shims.
class Containerd {
 public:
  explicit Containerd(const std::string& dir);
  ~Containerd();
  Containerd(const Containerd&) = delete;
  Containerd& operator=(const Containerd&) = delete;

  const std::string& address() const { return address_; }
  // Default ctr namespace. CNI_CONTAINERID is "<namespace>-<id>", and runc puts a container in
  // the cgroup "/<namespace>/<id>", so a namespace per emulated node gives each node its own
  // cgroup subtree (where that node's agent attaches its capture programs).
  static constexpr const char* kNamespace = "rdmeshit";
  // `ctr --address A -n NS <args...>` to completion.
  CommandResult ctr(const std::vector<std::string>& args, Millis timeout = 60s,
                    const std::string& ns = kNamespace);
  std::vector<std::string> runningTasks(const std::string& ns = kNamespace);
  // Namespaces containers were started in (the destructor cleans each).
  void useNamespace(const std::string& ns);

 private:
  void removeAll(const std::string& ns);
  std::vector<std::string> namespaces_ = {kNamespace};
  std::string dir_;
  std::string address_;
  std::unique_ptr<Process> daemon_;
};

// What to run in a container.
struct ContainerSpec {
  std::string id;
  std::string rootfs;
  std::vector<std::string> argv;
  std::vector<std::string> env;  // "K=V"
  std::string node_netns;        // namespace ctr (and the CNI plugins) run in; "" = the test's
  CniDirs cni;
  std::string ctr_namespace = Containerd::kNamespace;
  // A further container of a pod: join this network namespace (e.g. /proc/<pid>/ns/net of the
  // pod's first container) instead of running CNI, as the kubelet's containers join the pod's.
  std::string join_netns;
  // Extra `ctr run --mount` values ("type=bind,src=...,dst=...,options=rbind:rw").
  std::vector<std::string> mounts;
};

// One `ctr run --rm --cni` in the foreground: CNI ADD happens before the task starts; when the
// task ends (stop(), or its command exits) ctr runs CNI DEL and removes the container.
class Container {
 public:
  Container(Containerd& containerd, ContainerSpec spec, const std::string& log_dir);
  ~Container();
  Container(const Container&) = delete;
  Container& operator=(const Container&) = delete;

  const std::string& id() const { return spec_.id; }
  // CNI_CONTAINERID as the runtime passes it.
  std::string cniContainerId() const;
  // Waits until the container printed `marker` on stdout/stderr (a readiness line its command
  // prints) or ctr exited.
  bool waitOutput(const std::string& marker, Millis timeout = 60s);
  std::string output() const;  // what ctr and the container printed
  bool ctrRunning() { return ctr_->running(); }
  // The task's init pid on the host (0 if unknown) and its network namespace path.
  pid_t taskPid();
  std::string netnsPath();
  // Its cgroup v2 directory under `cgroup_root` ("/<ctr namespace>/<id>").
  std::string cgroupDir(const std::string& cgroup_root) const;
  // `ctr task exec` in the container (its cgroup and namespaces), as root or as `user` ("1337").
  // The exec'd process gets no PATH: name programs by absolute path.
  CommandResult exec(const std::vector<std::string>& argv, Millis timeout = 60s,
                     const std::string& user = "");
  // Kills the task and waits for ctr to run DEL and exit; ctr's wait status.
  std::optional<int> stop(Millis timeout = 60s);

 private:
  Containerd& containerd_;
  ContainerSpec spec_;
  std::string log_dir_;
  int execs_ = 0;
  std::unique_ptr<Process> ctr_;
};

// A name under /run/netns for a running process's network namespace (`ip netns attach`), so
// the harness's namespace helpers (inNetns, httpGet, Sidecar, inPod) work on a container's
// namespace. Removing the name leaves the namespace to its process.
class AttachedNetns {
 public:
  AttachedNetns(const std::string& tag, pid_t pid);
  ~AttachedNetns();
  AttachedNetns(const AttachedNetns&) = delete;
  AttachedNetns& operator=(const AttachedNetns&) = delete;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

}  // namespace rdmesh::it
