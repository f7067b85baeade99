// rdmesh-proxy: the rdmesh sidecar. Standalone: `rdmesh-proxy -c rdmesh.yaml`; with an `xds:`
// section in that file, listeners, clusters and peers also come live from rdmesh-xds.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdlib>
#include <iostream>

#include "config.h"
#include "server.h"
#include "xds_source.h"

namespace {

int run(int argc, char** argv) {
  CLI::App app{"rdmesh-proxy: sidecar that tunnels application TCP between nodes over RDMA"};
  std::string config_path;
  std::string log_level = "info";
  bool check_only = false;
  app.add_option("-c,--config", config_path,
                 "YAML configuration file (default: the YAML text in $RDMESH_PROXY_CONFIG, as "
                 "the injection webhook sets it)");
  app.add_option("-l,--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_flag("--check", check_only, "validate the configuration and exit");
  CLI11_PARSE(app, argc, argv);  // CLI11 reports bad arguments itself and returns its exit code

  spdlog::set_level(spdlog::level::from_str(log_level));
  spdlog::set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");

  const char* config_text = std::getenv(rdmesh::proxy::kProxyConfigEnv);
  if (config_path.empty() && (config_text == nullptr || *config_text == '\0')) {
    std::cerr << "rdmesh-proxy: no configuration: give -c FILE or set $"
              << rdmesh::proxy::kProxyConfigEnv << "\n";
    return 1;
  }
  const std::string source =
      config_path.empty() ? std::string("$") + rdmesh::proxy::kProxyConfigEnv : config_path;
  auto config = config_path.empty() ? rdmesh::proxy::parseConfig(config_text, source)
                                    : rdmesh::proxy::loadConfigFile(config_path);
  if (!config) {
    std::cerr << "rdmesh-proxy: invalid configuration: " << config.status().message() << "\n";
    return 1;
  }
  if (check_only) {
    std::cout << source << ": configuration is valid\n";
    return 0;
  }
  std::signal(SIGPIPE, SIG_IGN);
  rdmesh::proxy::Server server(std::move(config.value()));
  if (auto s = server.start(); !s) {
    std::cerr << "rdmesh-proxy: cannot start: " << s.message() << "\n";
    return 1;
  }
  // Declared after the server: destroyed first, while the server's event loop still exists.
  std::unique_ptr<rdmesh::proxy::XdsConfigSource> xds;
  if (server.currentConfig().xds) {
    auto source = rdmesh::proxy::XdsConfigSource::create(server.base(), server.currentConfig(),
                                                         server, server.stats());
    if (!source) {
      std::cerr << "rdmesh-proxy: xds: " << source.status().message() << "\n";
      return 1;
    }
    xds = std::move(source.value());
    server.setConfigDumpExtra([source = xds.get()] { return source->dumpJson(); });
    xds->start();
  }
  return server.run();
}

}  // namespace

int main(int argc, char** argv) {
  // Nothing throws across the event loops; this only catches start-up failures of the libraries
  // (allocation, CLI11/yaml-cpp internals) so that they end in a message, not an abort.
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "rdmesh-proxy: fatal: " << e.what() << "\n";
    return 1;
  }
}
