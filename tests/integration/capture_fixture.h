// Shared set-up of the capture suites: two nodes (network namespaces joined by veth, node-a
// 10.77.1.1 and node-b 10.77.1.2), one pod per node (the node's namespace + a cgroup v2
// directory made for the test), a node agent per node (rdmesh-node, its own attach cgroup, pin
// dir, socket and state file), HTTP servers and redis-server in node-b, sidecars over the tcp
// backend. How apps are captured (eBPF or LD_PRELOAD) is the suite's choice.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "harness.h"

namespace rdmesh::it {

// Addresses of the scenario.
inline constexpr const char* kPodA = "10.77.1.1";
inline constexpr const char* kPodB = "10.77.1.2";
inline constexpr const char* kPodA6 = "fd77::1";
inline constexpr const char* kPodB6 = "fd77::2";
inline constexpr const char* kWebService = "10.96.0.10:80";      // -> node-b 8080
inline constexpr const char* kRedisService = "10.96.0.11:6379";  // -> node-b 6379
inline constexpr uint16_t kWebPort = 8080;
inline constexpr uint16_t kWeb6Port = 8086;      // dual-stack server, reached by IPv6
inline constexpr uint16_t kExcludedPort = 9090;  // excluded from capture in pod A
inline constexpr uint16_t kRedisPort = 6379;
inline constexpr int kSidecarUid = 1337;

// One rdmesh-node process (restartable), talking node.sock.
class NodeAgent {
 public:
  NodeAgent(std::string name, std::string dir, std::string cgroup, std::string pin_dir, bool bpf);
  ~NodeAgent();
  // Runs the agent inside `netns` ("" = the test's) with `extra_args` (e.g. --xds-server ...).
  void setLaunch(std::string netns, std::vector<std::string> extra_args) {
    netns_ = std::move(netns);
    extra_args_ = std::move(extra_args);
  }
  void start();
  int terminate();  // SIGTERM; wait status
  // One request datagram, one reply (raw JSON text); "" if the socket does not answer.
  std::string request(const std::string& json) const;
  const std::string& socketPath() const { return socket_; }
  const std::string& pinDir() const { return pin_dir_; }
  // `bpftool -j map dump pinned <pin_dir>/<map>` output ("[]" when empty).
  std::string dumpMap(const std::string& map) const;
  int64_t stat(const std::string& name) const;  // from the "stats" op; -1 if absent

 private:
  std::string name_, dir_, cgroup_, pin_dir_, socket_, state_;
  bool bpf_;
  std::string netns_;
  std::vector<std::string> extra_args_;
  int starts_ = 0;
  std::unique_ptr<Process> proc_;
};

// A command's output without the "### <argv>" line runCommand puts first.
std::string commandOutput(const CommandResult& r);

// librdmesh-preload.so: $RDMESH_PRELOAD_LIB, else the one CMake built.
std::string preloadLibrary();

// Value of "key" in a flat JSON reply (numbers/booleans/strings), textual; nullopt if absent.
std::optional<std::string> jsonField(const std::string& json, const std::string& key);

class CaptureScenario : public ::testing::Test {
 protected:
  // Returns false (after GTEST_SKIP) when this machine cannot run the scenario.
  void SetUpScenario(bool bpf);
  void TearDown() override;

  // A client command run as a process of pod A (its cgroup, its netns), optionally as `uid`,
  // with extra environment (LD_PRELOAD, ...).
  CommandResult runInPodA(std::vector<std::string> argv, int uid = -1,
                          std::vector<std::string> env = {}, Millis timeout = 30s);
  // curl -sS http://<url> from pod A; the body on success.
  CommandResult curlFromPodA(const std::string& host_port, int uid = -1,
                             std::vector<std::string> env = {});
  std::string podAddJson(const std::string& id, const std::string& node) const;
  // `path`, or a copy of it that uid 1337 can read and run.
  std::string reachableBySidecarUid(const std::string& path);

  Sidecar& sidecarA() { return mesh_->sidecar("node-a"); }
  Sidecar& sidecarB() { return mesh_->sidecar("node-b"); }
  int64_t captureStat(const std::string& name) {
    return sidecarA().statInt("rdmesh.listener.capture." + name, -1);
  }

  std::unique_ptr<Mesh> mesh_;
  std::unique_ptr<TestCgroup> cg_root_;
  std::map<std::string, std::unique_ptr<TestCgroup>> cgroups_;  // node-a, node-a/pod, ...
  std::map<std::string, std::unique_ptr<NodeAgent>> agents_;
  std::vector<std::unique_ptr<ThreadedServer>> servers_;
  std::unique_ptr<Process> redis_;
  std::string pin_prefix_;
  std::string preload_lib_;  // librdmesh-preload.so, reachable by uid 1337
};

// "HTTP/1.0 200" with body "<tag>:<port>\n" for any request.
ThreadedServer::Handler httpHandler(const std::string& tag, uint16_t port);

}  // namespace rdmesh::it
