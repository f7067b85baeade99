#include "node_config.h"

#include <fmt/format.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <array>
#include <fstream>
#include <set>
#include <sstream>

#include "rdmesh/common/address.h"
#include "rdmesh/transport/hello.h"

namespace rdmesh::node {

namespace {

constexpr std::array<const char*, 5> kLogLevels = {"trace", "debug", "info", "warn", "error"};

class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}
  const std::string& source() const { return source_; }

  Status fail(const YAML::Node& at, const std::string& field, const std::string& what) const {
    YAML::Mark m = at.Mark();
    int line = m.is_null() ? 1 : m.line + 1;
    int col = m.is_null() ? 1 : m.column + 1;
    return invalidArgument(fmt::format("{}:{}:{}: {}: {}", source_, line, col, field, what));
  }

  // Every key of `map` must be in `known`.
  Status keys(const YAML::Node& map, const std::string& path,
              const std::set<std::string>& known) const {
    if (!map.IsMap()) return fail(map, path.empty() ? "(document)" : path, "expected a mapping");
    for (auto it = map.begin(); it != map.end(); ++it) {
      std::string key = it->first.IsScalar() ? it->first.Scalar() : "?";
      if (known.count(key) == 0) {
        return fail(it->first, path.empty() ? key : fmt::format("{}.{}", path, key),
                    "unknown field");
      }
    }
    return {};
  }

  Status string(const YAML::Node& map, const char* key, const std::string& path,
                std::string* out) const {
    YAML::Node v = map[key];
    if (!v) return {};
    std::string field = path.empty() ? key : path + "." + key;
    if (!v.IsScalar() || v.Scalar().empty()) return fail(v, field, "expected a non-empty value");
    *out = v.Scalar();
    return {};
  }

  Status boolean(const YAML::Node& map, const char* key, const std::string& path, bool* out) const {
    YAML::Node v = map[key];
    if (!v) return {};
    std::string field = path + "." + key;
    if (!v.IsScalar()) return fail(v, field, "expected true or false");
    const std::string& s = v.Scalar();
    if (s == "true") {
      *out = true;
    } else if (s == "false") {
      *out = false;
    } else {
      return fail(v, field, fmt::format("expected true or false, got '{}'", s));
    }
    return {};
  }

 private:
  std::string source_;
};

Status readFabric(const YAML::Node& f, const Reader& r, FabricConfig* c) {
  c->enabled = true;
  if (f.IsNull()) return {};  // `fabric:` alone: the defaults
  if (Status s =
          r.keys(f, "fabric",
                 {"listen", "rdma", "on_demand_paging", "verbs", "verify_caller_netns", "peers"});
      !s) {
    return s;
  }
  if (Status s = r.string(f, "listen", "fabric", &c->listen); !s) return s;
  if (Status s = r.boolean(f, "rdma", "fabric", &c->rdma); !s) return s;
  if (Status s = r.boolean(f, "on_demand_paging", "fabric", &c->on_demand_paging); !s) return s;
  if (Status s = r.boolean(f, "verify_caller_netns", "fabric", &c->verify_caller_netns); !s) {
    return s;
  }
  if (YAML::Node verbs = f["verbs"]) {
    if (Status s = r.keys(verbs, "fabric.verbs", {"device", "gid_index", "port"}); !s) return s;
    if (Status s = r.string(verbs, "device", "fabric.verbs", &c->verbs.device); !s) return s;
    for (const char* key : {"gid_index", "port"}) {
      YAML::Node v = verbs[key];
      if (!v) continue;
      std::string field = std::string("fabric.verbs.") + key;
      int value = 0;
      if (!v.IsScalar() || !YAML::convert<int>::decode(v, value) || value < 0 || value > 255) {
        return r.fail(v, field, "expected an integer 0..255");
      }
      if (std::string(key) == "port") {
        c->verbs.port = static_cast<uint8_t>(value);
      } else {
        c->verbs.gid_index = value;
      }
    }
  }
  if (YAML::Node peers = f["peers"]) {
    if (!peers.IsSequence()) return r.fail(peers, "fabric.peers", "expected a list");
    for (size_t i = 0; i < peers.size(); ++i) {
      std::string path = fmt::format("fabric.peers[{}]", i);
      transport::PeerSpec peer;
      if (Status s = r.keys(peers[i], path, {"name", "address"}); !s) return s;
      if (Status s = r.string(peers[i], "name", path, &peer.name); !s) return s;
      if (Status s = r.string(peers[i], "address", path, &peer.address); !s) return s;
      if (peer.name.empty() || !transport::isValidNodeName(peer.name)) {
        return r.fail(peers[i], path + ".name", "expected a node name (a DNS subdomain)");
      }
      if (!InetAddress::parse(peer.address)) {
        return r.fail(peers[i], path + ".address",
                      fmt::format("'{}' is not IP:PORT", peer.address));
      }
      c->peers.push_back(std::move(peer));
    }
  }
  if (!InetAddress::parse(c->listen)) {
    return r.fail(f, "fabric.listen", fmt::format("'{}' is not IP:PORT", c->listen));
  }
  return {};
}

Status read(const YAML::Node& root, const Reader& r, NodeAgentConfig* c) {
  if (root.IsNull()) return {};
  if (Status s = r.keys(root, "",
                        {"node", "socket", "state_file", "capture", "log_level", "fabric", "xds"});
      !s) {
    return s;
  }
  if (YAML::Node node = root["node"]) {
    if (Status s = r.keys(node, "node", {"name"}); !s) return s;
    if (Status s = r.string(node, "name", "node", &c->node_name); !s) return s;
  }
  if (Status s = r.string(root, "socket", "", &c->socket_path); !s) return s;
  if (Status s = r.string(root, "state_file", "", &c->state_file); !s) return s;
  if (Status s = r.string(root, "log_level", "", &c->log_level); !s) return s;
  if (YAML::Node capture = root["capture"]) {
    if (Status s = r.keys(capture, "capture", {"bpf", "cgroup", "pin_dir"}); !s) return s;
    if (Status s = r.boolean(capture, "bpf", "capture", &c->bpf); !s) return s;
    if (Status s = r.string(capture, "cgroup", "capture", &c->cgroup_path); !s) return s;
    if (Status s = r.string(capture, "pin_dir", "capture", &c->pin_dir); !s) return s;
  }
  if (YAML::Node xds = root["xds"]) {
    YAML::Mark m = xds.Mark();
    NodeXdsConfig section;
    if (Status s = readNodeXdsSection(xds, r.source(), m.is_null() ? 1 : m.line + 1,
                                      m.is_null() ? 1 : m.column + 1, &section);
        !s) {
      return s;
    }
    c->xds = std::move(section);
  }
  if (YAML::Node fabric = root["fabric"]) return readFabric(fabric, r, &c->fabric);
  return {};
}

}  // namespace

Result<NodeAgentConfig> parseNodeConfig(const std::string& yaml_text,
                                        const std::string& source_name) {
  NodeAgentConfig config;
  Reader reader(source_name);
  try {  // yaml-cpp reports syntax errors by throwing; start-up only, never on the loop
    YAML::Node root = YAML::Load(yaml_text);
    if (Status s = read(root, reader, &config); !s) return s;
  } catch (const YAML::Exception& e) {
    return invalidArgument(
        fmt::format("{}:{}:{}: {}", source_name, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  return config;
}

Result<NodeAgentConfig> loadNodeConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return invalidArgument(fmt::format("{}: cannot read", path));
  std::stringstream text;
  text << in.rdbuf();
  return parseNodeConfig(text.str(), path);
}

Status finishNodeConfig(NodeAgentConfig* c) {
  if (c->node_name.empty()) {
    std::array<char, 256> host{};
    if (::gethostname(host.data(), host.size() - 1) != 0) {
      return invalidArgument("node name: not set and the host name is unknown");
    }
    c->node_name = host.data();
  }
  if (c->fabric.enabled && !transport::isValidNodeName(c->node_name)) {
    return invalidArgument(fmt::format(
        "node name: '{}' is not usable on the fabric (1..253 bytes of a-z, 0-9, '.', '-')",
        c->node_name));
  }
  if (std::find(kLogLevels.begin(), kLogLevels.end(), c->log_level) == kLogLevels.end()) {
    return invalidArgument(
        fmt::format("log_level: '{}' is not one of trace, debug, info, warn, error", c->log_level));
  }
  for (const auto& [name, path] :
       {std::pair{"socket", &c->socket_path}, std::pair{"capture.pin_dir", &c->pin_dir}}) {
    if (path->empty() || path->front() != '/') {
      return invalidArgument(fmt::format("{}: '{}' must be an absolute path", name, *path));
    }
  }
  if (!c->cgroup_path.empty() && c->cgroup_path.front() != '/') {
    return invalidArgument(
        fmt::format("capture.cgroup: '{}' must be an absolute path", c->cgroup_path));
  }
  if (c->xds) return finishNodeXdsConfig(c->node_name, &*c->xds);
  return {};
}

}  // namespace rdmesh::node
