// rdmesh-cni: chained CNI plugin. The runtime runs it with CNI_COMMAND and friends in the
// environment and the network configuration on stdin (README "rdmesh-cni").
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <exception>
#include <iostream>

#include "cni_plugin.h"
#include "cni_result.h"

namespace {

using namespace rdmesh::cni;

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

// Reads stdin up to one byte past the limit (parseRequest rejects oversized input).
std::string readStdin() {
  std::string data;
  char buf[16384];
  while (data.size() <= kMaxStdinBytes) {
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof(buf));
    if (n > 0) {
      data.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  return data;
}

bool writeStdout(const std::string& text) {
  size_t off = 0;
  while (off < text.size()) {
    const ssize_t n = ::write(STDOUT_FILENO, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// stderr gets warnings and errors (the runtime shows them); the configured log file everything.
void setUpLogging() {
  auto stderr_sink = std::make_shared<spdlog::sinks::stderr_sink_st>();
  stderr_sink->set_level(spdlog::level::warn);
  auto logger = std::make_shared<spdlog::logger>("rdmesh-cni", stderr_sink);
  logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [rdmesh-cni %P] [%l] %v");
  logger->set_level(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

void addLogFile(const CniRequest& req) {
  if (req.config.log_file.empty()) return;
  try {
    auto file_sink = std::make_shared<spdlog::sinks::basic_file_sink_st>(req.config.log_file);
    file_sink->set_level(spdlog::level::info);
    file_sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [rdmesh-cni %P] [%l] %v");
    spdlog::default_logger()->sinks().push_back(file_sink);
  } catch (const spdlog::spdlog_ex& e) {
    // A log file that cannot be opened must not fail the pod.
    spdlog::warn("cannot open logFile {}: {}", req.config.log_file, e.what());
  }
}

int run() {
  setUpLogging();
  const CniEnvironment environment{env("CNI_COMMAND"), env("CNI_CONTAINERID"), env("CNI_NETNS"),
                                   env("CNI_IFNAME"),  env("CNI_ARGS"),        env(kNodeSocketEnv)};
  PluginHooks hooks;
  hooks.make_agent = [](const PluginConfig& config) -> std::unique_ptr<NodeAgent> {
    return std::make_unique<SocketNodeAgent>(config.node_socket,
                                             std::chrono::milliseconds(config.agent_timeout_ms));
  };
  hooks.on_parsed = addLogFile;
  hooks.write_stdout = writeStdout;
  return runPlugin(environment, readStdin(), hooks);
}

}  // namespace

int main() {
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return run();
  } catch (const std::exception& e) {
    // Nothing here is meant to throw; if a library does, still answer as the spec asks.
    writeStdout(errorJson({kErrIoFailure, "internal error", e.what()}, kNewestVersion));
    return 1;
  }
}
