#include "cni_plugin.h"

#include <spdlog/spdlog.h>

#include "cni_result.h"

namespace rdmesh::cni {

namespace {

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ",";
    out += item;
  }
  return out;
}

// The CNI error for a failed node agent call.
CniError agentError(const Status& status, std::string_view op) {
  switch (status.code()) {
    case StatusCode::kNotFound:
    case StatusCode::kUnavailable:
    case StatusCode::kTimeout:
      return {kErrTryAgainLater, "node agent unavailable",
              std::string(op) + ": " + status.message() +
                  " (is rdmesh-node running on this node? its socket is set by \"nodeSocket\")"};
    case StatusCode::kInvalidArgument:
      return {kErrAgentRefused, "node agent refused " + std::string(op), status.message()};
    default:
      return {kErrAgentProtocol, "node agent protocol error",
              std::string(op) + ": " + status.message()};
  }
}

PluginOutput add(const CniRequest& req, NodeAgent& agent) {
  // Build the output first: nothing after the registration may fail but writing it out.
  auto result = passThroughResult(*req.prev_result, req.config.cni_version);
  if (isError(result)) return errorOutput(std::get<CniError>(result), req.config.cni_version);
  PluginOutput out;
  out.stdout_text = std::get<nlohmann::ordered_json>(result).dump(
      -1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);

  if (req.podExcluded()) {
    spdlog::info("ADD {}: namespace {} is in excludeNamespaces; pod left out of the mesh",
                 req.container_id, req.pod.pod_namespace);
    return out;
  }
  PodRegistration pod{req.container_id, req.netns,
                      req.pod_ips,      req.ifname,
                      req.pod.name,     req.pod.pod_namespace,
                      req.pod.uid,      req.config.exclude_outbound_ports};
  auto cookie = agent.podAdd(pod);
  if (!cookie) {
    const Status& status = cookie.status();
    // A lost or garbled reply may follow a registration that did happen: take it back. A refusal
    // left nothing behind (pod_add is all or nothing), and undoing it could remove an earlier
    // registration of the same container.
    if (status.code() == StatusCode::kTimeout || status.code() == StatusCode::kProtocolError ||
        status.code() == StatusCode::kUnavailable) {
      if (auto undo = agent.podDel(req.container_id); !undo) {
        spdlog::warn("ADD {}: undoing the registration failed too: {}", req.container_id,
                     undo.message());
      }
    }
    spdlog::error("ADD {}: pod_add failed: {}", req.container_id, status.message());
    return errorOutput(agentError(status, "pod_add"), req.config.cni_version);
  }
  spdlog::info("ADD {}: registered pod {}/{} ips {} netns {} (cookie {})", req.container_id,
               req.pod.pod_namespace, req.pod.name, joined(req.pod_ips), req.netns, *cookie);
  out.registered = true;
  return out;
}

PluginOutput del(const CniRequest& req, NodeAgent& agent) {
  const Status status = agent.podDel(req.container_id);
  if (status) {
    spdlog::info("DEL {}: unregistered", req.container_id);
    return {};
  }
  if (status.code() == StatusCode::kNotFound) {
    // No agent socket at all: no agent on this node, so nothing of this pod is registered.
    spdlog::info("DEL {}: no node agent ({}); nothing to remove", req.container_id,
                 status.message());
    return {};
  }
  spdlog::error("DEL {}: pod_del failed: {}", req.container_id, status.message());
  return errorOutput(agentError(status, "pod_del"), req.config.cni_version);
}

PluginOutput check(const CniRequest& req, NodeAgent& agent) {
  if (req.podExcluded()) return {};
  const Status status = agent.podCheck(req.container_id);
  if (status) return {};
  spdlog::error("CHECK {}: {}", req.container_id, status.message());
  return errorOutput(agentError(status, "pod_check"), req.config.cni_version);
}

}  // namespace

PluginOutput errorOutput(const CniError& error, std::string_view cni_version) {
  return {1, errorJson(error, cni_version), false};
}

PluginOutput execute(const CniRequest& req, NodeAgent& agent) {
  switch (req.command) {
    case CniCommand::kAdd:
      return add(req, agent);
    case CniCommand::kDel:
      return del(req, agent);
    case CniCommand::kCheck:
      return check(req, agent);
    case CniCommand::kVersion:
      return {0, versionJson(), false};
  }
  return errorOutput({kErrInvalidEnvironment, "invalid CNI_COMMAND", ""}, kNewestVersion);
}

int runPlugin(const CniEnvironment& env, std::string_view stdin_text, const PluginHooks& hooks) {
  auto parsed = parseRequest(env, stdin_text);
  if (isError(parsed)) {
    const CniError& error = std::get<CniError>(parsed);
    spdlog::error("{} {}: {}: {}", env.command, env.container_id, error.msg, error.details);
    const PluginOutput out = errorOutput(error, errorVersionFor(stdin_text));
    hooks.write_stdout(out.stdout_text);
    return out.exit_code;
  }
  const CniRequest& req = std::get<CniRequest>(parsed);
  if (hooks.on_parsed) hooks.on_parsed(req);
  if (req.command == CniCommand::kVersion) return hooks.write_stdout(versionJson()) ? 0 : 1;

  auto agent = hooks.make_agent(req.config);
  const PluginOutput out = execute(req, *agent);
  if (hooks.write_stdout(out.stdout_text)) return out.exit_code;
  if (out.registered) {
    spdlog::error("ADD {}: cannot write the result to stdout; unregistering the pod",
                  req.container_id);
    if (auto undo = agent->podDel(req.container_id); !undo) {
      spdlog::error("ADD {}: unregistering failed: {}", req.container_id, undo.message());
    }
  }
  return 1;
}

}  // namespace rdmesh::cni
