#include "cni_request.h"

#include <algorithm>
#include <charconv>
#include <set>

#include "cni_version.h"
#include "rdmesh/common/address.h"

namespace rdmesh::cni {

using Json = nlohmann::ordered_json;

namespace {

// Linux limits (IFNAMSIZ - 1, sizeof(sockaddr_un::sun_path) - 1) and a generous bound on ids
// (the node socket message carries them and is limited to 64 KiB).
constexpr size_t kMaxIfnameLength = 15;
constexpr size_t kMaxSocketPathLength = 107;
constexpr size_t kMaxIdLength = 1024;
constexpr size_t kMaxPathLength = 4096;

CniError envError(std::string msg, std::string details) {
  return {kErrInvalidEnvironment, std::move(msg), std::move(details)};
}
CniError configError(std::string msg, std::string details) {
  return {kErrInvalidNetworkConfig, std::move(msg), std::move(details)};
}

std::string supportedList() {
  std::string out;
  for (auto v : kSupportedVersions) {
    if (!out.empty()) out += ", ";
    out += v;
  }
  return out;
}

// Spec 1.0.0: a container id starts with an alphanumeric character, then alphanumerics, '_',
// '.' or '-'.
bool validContainerId(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdLength || !std::isalnum(static_cast<unsigned char>(id[0]))) {
    return false;
  }
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

bool validIfname(std::string_view name) {
  if (name.empty() || name.size() > kMaxIfnameLength || name == "." || name == "..") return false;
  return std::none_of(name.begin(), name.end(), [](char c) {
    return c == '/' || c == ':' || std::isspace(static_cast<unsigned char>(c)) || c == '\0';
  });
}

bool absolutePath(std::string_view path, size_t max_length) {
  return !path.empty() && path.size() <= max_length && path.front() == '/' &&
         path.find('\0') == std::string_view::npos;
}

std::string shown(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 200)) {
    out += (static_cast<unsigned char>(c) < 0x20) ? '?' : c;
  }
  if (s.size() > 200) out += "...";
  return out + "\"";
}

// --------------------------------------------------------------------------- own config fields

CniOr<std::string> stringField(const Json& conf, const char* key, std::string fallback) {
  auto it = conf.find(key);
  if (it == conf.end() || it->is_null()) return fallback;
  if (!it->is_string()) {
    return configError(std::string("invalid \"") + key + "\"",
                       std::string("\"") + key + "\" must be a string, got " + it->dump());
  }
  return it->get<std::string>();
}

CniOr<std::vector<uint16_t>> portsField(const Json& conf, const char* key) {
  std::vector<uint16_t> ports;
  auto it = conf.find(key);
  if (it == conf.end() || it->is_null()) return ports;
  if (!it->is_array()) {
    return configError(std::string("invalid \"") + key + "\"",
                       std::string("\"") + key + "\" must be a list of port numbers, got " +
                           it->dump().substr(0, 200));
  }
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& port = (*it)[i];
    if (!port.is_number_integer() || port.get<int64_t>() < 1 || port.get<int64_t>() > 65535) {
      return configError(std::string("invalid \"") + key + "\"",
                         std::string("\"") + key + "\"[" + std::to_string(i) +
                             "] must be a port number 1-65535, got " + port.dump().substr(0, 200));
    }
    ports.push_back(static_cast<uint16_t>(port.get<int64_t>()));
  }
  std::sort(ports.begin(), ports.end());
  ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
  return ports;
}

CniOr<std::vector<std::string>> namesField(const Json& conf, const char* key) {
  std::vector<std::string> names;
  auto it = conf.find(key);
  if (it == conf.end() || it->is_null()) return names;
  const auto bad = [&](const std::string& why) {
    return configError(std::string("invalid \"") + key + "\"", why);
  };
  if (!it->is_array()) {
    return bad(std::string("\"") + key + "\" must be a list of names, got " +
               it->dump().substr(0, 200));
  }
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& name = (*it)[i];
    if (!name.is_string() || name.get_ref<const std::string&>().empty()) {
      return bad(std::string("\"") + key + "\"[" + std::to_string(i) +
                 "] must be a non-empty string, got " + name.dump().substr(0, 200));
    }
    names.push_back(name.get<std::string>());
  }
  return names;
}

CniOr<PluginConfig> parsePluginConfig(const Json& conf, const CniEnvironment& env,
                                      std::string cni_version) {
  PluginConfig config;
  config.cni_version = std::move(cni_version);

  auto name = stringField(conf, "name", "");
  if (isError(name)) return std::get<CniError>(name);
  config.network_name = std::get<std::string>(name);

  const std::string socket_default =
      env.node_socket.empty() ? std::string(kDefaultNodeSocket) : env.node_socket;
  auto socket = stringField(conf, "nodeSocket", socket_default);
  if (isError(socket)) return std::get<CniError>(socket);
  config.node_socket = std::get<std::string>(socket);
  if (!absolutePath(config.node_socket, kMaxSocketPathLength)) {
    return configError("invalid \"nodeSocket\"", "node agent socket " + shown(config.node_socket) +
                                                     " must be an absolute path of at most " +
                                                     std::to_string(kMaxSocketPathLength) +
                                                     " bytes");
  }

  auto ports = portsField(conf, "excludeOutboundPorts");
  if (isError(ports)) return std::get<CniError>(ports);
  config.exclude_outbound_ports = std::move(std::get<std::vector<uint16_t>>(ports));

  auto namespaces = namesField(conf, "excludeNamespaces");
  if (isError(namespaces)) return std::get<CniError>(namespaces);
  config.exclude_namespaces = std::move(std::get<std::vector<std::string>>(namespaces));

  auto log_file = stringField(conf, "logFile", "");
  if (isError(log_file)) return std::get<CniError>(log_file);
  config.log_file = std::get<std::string>(log_file);
  if (!config.log_file.empty() && !absolutePath(config.log_file, kMaxPathLength)) {
    return configError("invalid \"logFile\"",
                       "log file " + shown(config.log_file) + " must be an absolute path");
  }

  if (auto it = conf.find("agentTimeoutMs"); it != conf.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 1 ||
        it->get<int64_t>() > kMaxAgentTimeoutMs) {
      return configError("invalid \"agentTimeoutMs\"", "\"agentTimeoutMs\" must be an integer 1-" +
                                                           std::to_string(kMaxAgentTimeoutMs) +
                                                           ", got " + it->dump().substr(0, 200));
    }
    config.agent_timeout_ms = static_cast<int>(it->get<int64_t>());
  }
  return config;
}

// --------------------------------------------------------------------------- variables

CniOr<CniRequest> parseEnvironment(const CniEnvironment& env, CniCommand command) {
  CniRequest req;
  req.command = command;
  if (!validContainerId(env.container_id)) {
    return envError("invalid CNI_CONTAINERID",
                    "CNI_CONTAINERID " + shown(env.container_id) +
                        " must be non-empty, start with a letter or digit and hold only letters, "
                        "digits, '_', '.' and '-'");
  }
  req.container_id = env.container_id;

  if (!validIfname(env.ifname)) {
    return envError("invalid CNI_IFNAME", "CNI_IFNAME " + shown(env.ifname) +
                                              " is not a Linux interface name (1-15 bytes, no "
                                              "'/', ':' or spaces)");
  }
  req.ifname = env.ifname;

  // DEL may come after the namespace is gone (empty CNI_NETNS); ADD and CHECK need it.
  if (command != CniCommand::kDel || !env.netns.empty()) {
    if (!absolutePath(env.netns, kMaxPathLength)) {
      return envError("invalid CNI_NETNS", "CNI_NETNS " + shown(env.netns) +
                                               " must be the absolute path of the pod's network "
                                               "namespace");
    }
    req.netns = env.netns;
  }

  auto args = parseCniArgs(env.args);
  if (isError(args)) return std::get<CniError>(args);
  const auto& kv = std::get<std::map<std::string, std::string>>(args);
  const auto value = [&](const char* key) {
    auto it = kv.find(key);
    return it == kv.end() ? std::string() : it->second;
  };
  req.pod.name = value("K8S_POD_NAME");
  req.pod.pod_namespace = value("K8S_POD_NAMESPACE");
  req.pod.uid = value("K8S_POD_UID");
  return req;
}

// cniVersion: present, a string, one rdmesh-cni speaks; CHECK needs 0.4.0 or later.
CniOr<std::string> parseConfigVersion(const Json& conf, CniCommand command) {
  auto it = conf.find("cniVersion");
  if (it == conf.end() || !it->is_string()) {
    return CniError{kErrIncompatibleVersion, "incompatible CNI version",
                    "the network configuration has no string \"cniVersion\"; rdmesh-cni "
                    "supports " +
                        supportedList()};
  }
  const std::string& version = it->get_ref<const std::string&>();
  if (!isSupportedVersion(version)) {
    return CniError{kErrIncompatibleVersion, "incompatible CNI version",
                    "cniVersion " + shown(version) + " is not supported; rdmesh-cni supports " +
                        supportedList()};
  }
  if (command == CniCommand::kCheck && !versionAtLeast(version, kFirstVersionWithCheck)) {
    return CniError{kErrIncompatibleVersion, "incompatible CNI version",
                    "CHECK is defined from cniVersion 0.4.0 on; the configuration says " + version};
  }
  return version;
}

}  // namespace

size_t jsonNestingDepth(std::string_view text) {
  size_t depth = 0;
  size_t deepest = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

bool CniRequest::podExcluded() const {
  return !pod.pod_namespace.empty() &&
         std::find(config.exclude_namespaces.begin(), config.exclude_namespaces.end(),
                   pod.pod_namespace) != config.exclude_namespaces.end();
}

CniOr<CniCommand> parseCommand(std::string_view text) {
  if (text == "ADD") return CniCommand::kAdd;
  if (text == "DEL") return CniCommand::kDel;
  if (text == "CHECK") return CniCommand::kCheck;
  if (text == "VERSION") return CniCommand::kVersion;
  return envError("invalid CNI_COMMAND",
                  "CNI_COMMAND " + shown(text) + " is not one of ADD, DEL, CHECK, VERSION");
}

CniOr<std::map<std::string, std::string>> parseCniArgs(std::string_view text) {
  std::map<std::string, std::string> out;
  while (!text.empty()) {
    const size_t end = std::min(text.find(';'), text.size());
    const std::string_view pair = text.substr(0, end);
    text.remove_prefix(std::min(end + 1, text.size()));
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return envError("invalid CNI_ARGS",
                      "CNI_ARGS entry " + shown(pair) + " is not of the form KEY=VALUE");
    }
    out[std::string(pair.substr(0, eq))] = std::string(pair.substr(eq + 1));
  }
  return out;
}

CniOr<std::vector<std::string>> podIpsFromResult(const Json& result, std::string_view ifname) {
  const auto bad = [](const std::string& why) { return configError("invalid prevResult", why); };
  if (!result.is_object()) {
    return bad("prevResult must be an object, got " + result.dump(-1).substr(0, 200));
  }

  std::vector<bool> in_pod;  // per interfaces[] entry: is it the pod's side?
  if (auto it = result.find("interfaces"); it != result.end() && !it->is_null()) {
    if (!it->is_array()) return bad("prevResult.interfaces must be a list");
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& iface = (*it)[i];
      if (!iface.is_object()) {
        return bad("prevResult.interfaces[" + std::to_string(i) + "] must be an object");
      }
      const auto name = iface.find("name");
      const auto sandbox = iface.find("sandbox");
      const bool named_ours =
          name != iface.end() && name->is_string() && name->get_ref<const std::string&>() == ifname;
      const bool in_sandbox = sandbox != iface.end() && sandbox->is_string() &&
                              !sandbox->get_ref<const std::string&>().empty();
      in_pod.push_back(named_ours || in_sandbox);
    }
  }

  std::vector<std::string> ips;
  auto it = result.find("ips");
  if (it == result.end() || it->is_null()) return ips;
  if (!it->is_array()) return bad("prevResult.ips must be a list");
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& entry = (*it)[i];
    const std::string where = "prevResult.ips[" + std::to_string(i) + "]";
    if (!entry.is_object()) return bad(where + " must be an object");
    if (auto idx = entry.find("interface"); idx != entry.end() && !idx->is_null()) {
      if (!idx->is_number_integer() || idx->get<int64_t>() < 0 ||
          static_cast<uint64_t>(idx->get<int64_t>()) >= in_pod.size()) {
        return bad(where + ".interface " + idx->dump().substr(0, 50) + " is not an index into " +
                   "prevResult.interfaces (" + std::to_string(in_pod.size()) + " entries)");
      }
      if (!in_pod[static_cast<size_t>(idx->get<int64_t>())]) continue;  // host side (bridge, veth)
    }
    auto address = entry.find("address");
    if (address == entry.end() || !address->is_string()) {
      return bad(where + ".address must be a string \"ip/prefix\"");
    }
    const std::string& cidr = address->get_ref<const std::string&>();
    const size_t slash = cidr.find('/');
    if (slash == std::string::npos) {
      return bad(where + ".address " + shown(cidr) + " has no /prefix");
    }
    auto ip = InetAddress::fromIp(std::string_view(cidr).substr(0, slash), 0);
    const std::string_view prefix_text = std::string_view(cidr).substr(slash + 1);
    unsigned prefix = 0;
    const auto [ptr, ec] =
        std::from_chars(prefix_text.data(), prefix_text.data() + prefix_text.size(), prefix);
    if (!ip.isOk() || ec != std::errc() || ptr != prefix_text.data() + prefix_text.size() ||
        prefix_text.empty() || prefix > (ip->isV4() ? 32U : 128U)) {
      return bad(where + ".address " + shown(cidr) + " is not an IPv4/IPv6 address with prefix");
    }
    std::string text = ip->ipString();
    if (std::find(ips.begin(), ips.end(), text) == ips.end()) ips.push_back(std::move(text));
  }
  return ips;
}

CniOr<CniRequest> parseRequest(const CniEnvironment& env, std::string_view stdin_text) {
  auto command = parseCommand(env.command);
  if (isError(command)) return std::get<CniError>(command);
  if (std::get<CniCommand>(command) == CniCommand::kVersion) {
    CniRequest req;
    req.command = CniCommand::kVersion;
    return req;
  }

  auto parsed = parseEnvironment(env, std::get<CniCommand>(command));
  if (isError(parsed)) return parsed;
  CniRequest& req = std::get<CniRequest>(parsed);

  if (stdin_text.size() > kMaxStdinBytes || jsonNestingDepth(stdin_text) > kMaxJsonDepth) {
    return CniError{kErrDecodingFailure, "cannot decode the network configuration",
                    "stdin is larger than " + std::to_string(kMaxStdinBytes) +
                        " bytes or nested deeper than " + std::to_string(kMaxJsonDepth) +
                        " levels"};
  }
  Json conf = Json::parse(stdin_text, nullptr, /*allow_exceptions=*/false);
  if (conf.is_discarded() || !conf.is_object()) {
    return CniError{
        kErrDecodingFailure, "cannot decode the network configuration",
        conf.is_discarded()
            ? "stdin is not valid JSON (" + std::to_string(stdin_text.size()) + " bytes)"
            : "stdin must hold a JSON object, got " + conf.dump().substr(0, 200)};
  }

  auto version = parseConfigVersion(conf, req.command);
  if (isError(version)) return std::get<CniError>(version);
  auto config = parsePluginConfig(conf, env, std::get<std::string>(version));
  if (isError(config)) return std::get<CniError>(config);
  req.config = std::move(std::get<PluginConfig>(config));

  auto prev = conf.find("prevResult");
  const bool has_prev = prev != conf.end() && !prev->is_null();
  if (req.command == CniCommand::kDel) {
    // DEL must succeed even with a stale or odd cached result: it only needs the container id.
    if (has_prev && prev->is_object()) {
      auto ips = podIpsFromResult(*prev, req.ifname);
      if (!isError(ips)) req.pod_ips = std::get<std::vector<std::string>>(ips);
      req.prev_result = std::move(*prev);
    }
    return parsed;
  }
  if (!has_prev) {
    return configError("missing prevResult",
                       "rdmesh-cni is a chained plugin: list it after a plugin that creates the "
                       "pod's interface and addresses (e.g. bridge with host-local IPAM) so that "
                       "the runtime passes that plugin's result as \"prevResult\"");
  }
  auto ips = podIpsFromResult(*prev, req.ifname);
  if (isError(ips)) return std::get<CniError>(ips);
  req.pod_ips = std::move(std::get<std::vector<std::string>>(ips));
  if (req.pod_ips.empty()) {
    return configError("prevResult has no pod address",
                       "no entry of prevResult.ips belongs to interface " + shown(req.ifname) +
                           " or another interface inside the pod; the node agent needs the pod's "
                           "IP addresses");
  }
  if (auto v = prev->find("cniVersion"); v != prev->end() && !v->is_string()) {
    return configError("invalid prevResult", "prevResult.cniVersion must be a string");
  }
  req.prev_result = std::move(*prev);
  return parsed;
}

std::string errorVersionFor(std::string_view stdin_text) {
  if (stdin_text.size() > kMaxStdinBytes || jsonNestingDepth(stdin_text) > kMaxJsonDepth) {
    return std::string(kNewestVersion);
  }
  Json conf = Json::parse(stdin_text, nullptr, /*allow_exceptions=*/false);
  if (conf.is_object()) {
    auto it = conf.find("cniVersion");
    if (it != conf.end() && it->is_string() &&
        isSupportedVersion(it->get_ref<const std::string&>())) {
      return it->get<std::string>();
    }
  }
  return std::string(kNewestVersion);
}

}  // namespace rdmesh::cni
