#include "node_main.h"

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>

#include "agent.h"
#include "rdmesh/capture/bpf_capture.h"

namespace {

int run(int argc, char** argv, rdmesh::node::LinkDomainFactory link_domains) {
  CLI::App app{"rdmesh-node: rdmesh node agent (pod registry, eBPF capture, node.sock)"};
  std::string config_path;
  rdmesh::node::NodeAgentConfig flags;
  bool uninstall = false;
  std::optional<bool> bpf;
  app.add_option("-c,--config", config_path, "YAML configuration file");
  auto* name =
      app.add_option("--node-name", flags.node_name, "this node's name (default: host name)");
  auto* socket = app.add_option("--socket", flags.socket_path, "node agent socket path");
  auto* state = app.add_option("--state-file", flags.state_file, "pod registry state file");
  auto* cgroup = app.add_option("--cgroup", flags.cgroup_path,
                                "cgroup v2 directory to attach capture at (default: the root)");
  auto* pin = app.add_option("--bpf-pin-dir", flags.pin_dir, "bpffs directory for the pins");
  app.add_option("--bpf", bpf, "eBPF capture on (true) or off (false: LD_PRELOAD nodes)");
  auto* level =
      app.add_option("-l,--log-level", flags.log_level, "trace, debug, info, warn, error");
  app.add_flag("--uninstall", uninstall, "detach capture, remove the pins, and exit");
  CLI11_PARSE(app, argc, argv);

  rdmesh::node::NodeAgentConfig config;
  if (!config_path.empty()) {
    auto loaded = rdmesh::node::loadNodeConfigFile(config_path);
    if (!loaded) {
      std::cerr << "rdmesh-node: invalid configuration: " << loaded.status().message() << "\n";
      return 1;
    }
    config = std::move(*loaded);
  }
  // Flags given on the command line win over the file.
  if (*name) config.node_name = flags.node_name;
  if (*socket) config.socket_path = flags.socket_path;
  if (*state) config.state_file = flags.state_file;
  if (*cgroup) config.cgroup_path = flags.cgroup_path;
  if (*pin) config.pin_dir = flags.pin_dir;
  if (*level) config.log_level = flags.log_level;
  if (bpf) config.bpf = *bpf;
  if (auto s = rdmesh::node::finishNodeConfig(&config); !s) {
    std::cerr << "rdmesh-node: invalid configuration: " << s.message() << "\n";
    return 1;
  }
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  spdlog::set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");

  if (uninstall) {
    if (auto s = rdmesh::capture::uninstallBpfCapture({config.cgroup_path, config.pin_dir}); !s) {
      std::cerr << "rdmesh-node: uninstall: " << s.message() << "\n";
      return 1;
    }
    ::unlink(config.state_file.c_str());
    std::cout << "rdmesh-node: capture detached, pins under " << config.pin_dir << " removed\n";
    return 0;
  }

  std::signal(SIGPIPE, SIG_IGN);
  rdmesh::node::NodeAgent agent(std::move(config), std::move(link_domains));
  if (auto s = agent.start(); !s) {
    std::cerr << "rdmesh-node: cannot start: " << s.message() << "\n";
    return 1;
  }
  return agent.run();
}

}  // namespace

int rdmesh::node::nodeMain(int argc, char** argv, LinkDomainFactory link_domains) {
  // Nothing throws across the event loop; this only turns a start-up failure of a library
  // (allocation, CLI11/yaml-cpp internals) into a message.
  try {
    return run(argc, argv, std::move(link_domains));
  } catch (const std::exception& e) {
    std::cerr << "rdmesh-node: fatal: " << e.what() << "\n";
    return 1;
  }
}
