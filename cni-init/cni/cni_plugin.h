// The CNI commands of rdmesh-cni: ADD registers the pod with the node agent and passes the
// previous result through, DEL unregisters it (idempotent), CHECK asks the agent whether the pod
// is still in place, VERSION lists the spec versions. Effects only through NodeAgent.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "cni_node_client.h"
#include "cni_request.h"

namespace rdmesh::cni {

struct PluginOutput {
  int exit_code = 0;
  std::string stdout_text;  // a result, the VERSION answer, an error object, or nothing
  // ADD registered the pod: if stdout cannot be delivered, the caller must undo (podDel).
  bool registered = false;
};

// The error object on stdout and exit code 1.
PluginOutput errorOutput(const CniError& error, std::string_view cni_version);

// Runs one validated request against the agent.
PluginOutput execute(const CniRequest& request, NodeAgent& agent);

// What runPlugin needs from its surroundings.
struct PluginHooks {
  // Creates the agent client for a valid request (called only when the command needs one).
  std::function<std::unique_ptr<NodeAgent>(const PluginConfig&)> make_agent;
  // Runs once the request is valid (main opens the configured log file there). Optional.
  std::function<void(const CniRequest&)> on_parsed;
  // Delivers stdout; false when it could not be written.
  std::function<bool(const std::string&)> write_stdout;
};

// The whole invocation: parse environment and stdin, execute, deliver stdout. When ADD registered
// the pod but its result cannot be delivered, the runtime will consider ADD failed: the pod is
// unregistered again. Returns the process exit code.
int runPlugin(const CniEnvironment& env, std::string_view stdin_text, const PluginHooks& hooks);

}  // namespace rdmesh::cni
