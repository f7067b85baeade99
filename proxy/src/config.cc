// Parses and validates rdmesh.yaml. Every problem is reported as
// "<source>:<line>:<column>: <field path>: <what is wrong>" so a user can jump straight to it.
// yaml-cpp throws; nothing here lets an exception out of the public functions.
#include "config.h"

#include <fcntl.h>
#include <sys/un.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string_view>
#include <vector>

#include "fmt/format.h"
#include "rdmesh/common/port_list.h"
#include "rdmesh/transport/agent_fabric.h"
#include "rdmesh/transport/agent_wire.h"
#include "rdmesh/transport/hello.h"
#include "rdmesh/xds/bootstrap.h"

namespace rdmesh::proxy {
namespace {

#define RETURN_IF_ERROR(expr)                              \
  do {                                                     \
    if (Status status_ = (expr); !status_) return status_; \
  } while (0)

// A config is a few kilobytes; the cap keeps a wrong path (/dev/zero, a core file) from eating
// memory.
constexpr size_t kMaxConfigBytes = 4u << 20;
// Longer durations are certainly typos, and the cap keeps chrono arithmetic far from overflow.
constexpr uint64_t kMaxDurationMs = 24ull * 60 * 60 * 1000;
// sockaddr_un::sun_path holds 108 bytes including the terminating NUL.
constexpr size_t kMaxUnixPathBytes = sizeof(sockaddr_un{}.sun_path) - 1;
constexpr std::string_view kDefaultAdminAddress = "127.0.0.1:15000";
constexpr std::string_view kDefaultTcpListen = "0.0.0.0:15008";
constexpr std::string_view kDefaultShmDirectory = "/var/run/rdmesh/";

// Positions (1-based, as editors count) and type names come from the shared bootstrap parser,
// so every YAML error of rdmesh reads the same.
using Position = xds::YamlPosition;
using xds::describeYamlType;

Position positionOf(const YAML::Node& node, Position fallback) {
  return xds::yamlPositionOf(node, fallback);
}
const char* describeType(const YAML::Node& node) {
  return describeYamlType(node);
}

std::optional<uint64_t> parseDecimal(std::string_view text) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

bool isNodeName(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
  });
}

// Listener and cluster names end up in stats names and log lines, so keep them plain.
bool isResourceName(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

bool isPrintableAscii(std::string_view text, bool allow_space) {
  return std::all_of(text.begin(), text.end(), [allow_space](char c) {
    return (c > ' ' && c < 0x7f) || (allow_space && c == ' ');
  });
}

// Levenshtein distance, to suggest the intended key for a typo.
size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// Sees where each document of a stream starts, building nothing.
class DocumentStarts : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  std::vector<YAML::Mark> starts;
};

// Where the text stops being one YAML document, or nothing when it is one.
// Not YAML::LoadAll: yaml-cpp 0.7 can stall on a stray flow token in block context (",\"" is
// enough), reporting the same empty document forever without consuming input, and LoadAll then
// loops until memory runs out (jbeder/yaml-cpp#1040). So count documents here, with a bound.
std::optional<YAML::Mark> findSecondDocument(const std::string& yaml_text) {
  std::istringstream input(yaml_text);
  YAML::Parser parser(input);
  DocumentStarts documents;
  for (int i = 0; i < 2 && parser.HandleNextDocument(documents); ++i) {
  }
  if (documents.starts.size() >= 2) return documents.starts[1];
  return std::nullopt;
}

using KeyList = std::initializer_list<std::string_view>;

// One key/value pair of a mapping.
struct Entry {
  std::string key;
  Position key_position;
  YAML::Node value;

  // An empty value ("key:") carries the mark of the next token, so point at the key instead.
  Position valuePosition() const {
    return value.IsNull() ? key_position : positionOf(value, key_position);
  }
};

// A mapping of the schema whose keys were checked (known, unique) when it was opened.
struct Mapping {
  std::string path;  // "" for the document, else e.g. "listeners[0]"
  Position position;
  std::vector<Entry> entries;

  const Entry* find(std::string_view key) const {
    for (const Entry& entry : entries) {
      if (entry.key == key) return &entry;
    }
    return nullptr;
  }
  std::string fieldPath(std::string_view key) const {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }
};

enum class Need { kRequired, kOptional };
// Listening may use port 0 (the kernel picks one, handy in tests); a destination may not.
enum class PortZero { kAllowed, kRejected };

class ConfigReader {
 public:
  explicit ConfigReader(std::string source_name) : source_name_(std::move(source_name)) {}

  Status read(const YAML::Node& root, ProxyConfig* config) {
    if (!root.IsMap()) {
      return fail(positionOf(root, {}), "(document)",
                  fmt::format("expected a mapping with node, transport and listeners, got {}",
                              describeType(root)));
    }
    Mapping document;
    RETURN_IF_ERROR(openMapping(root, "", {},
                                {"node", "admin", "transport", "listeners", "clusters", "xds",
                                 "node_agent", "drain_timeout_ms"},
                                &document));
    // With xds, listeners may all come from the control plane.
    const bool dynamic = document.find("xds") != nullptr;
    // Mesh mode: the node agent owns the fabric, so the transport section is optional.
    mesh_ = document.find("node_agent") != nullptr;
    for (std::string_view required : {"node", "transport", "listeners"}) {
      const Entry* entry = nullptr;
      if (required == "listeners" && dynamic) continue;
      if (required == "transport" && mesh_) continue;
      RETURN_IF_ERROR(requireEntry(document, required, &entry));
    }
    config->admin.address = InetAddress::parse(kDefaultAdminAddress).value();

    // Sections in the order the file has them, so the error reported is the first in the file;
    // checks that need another section wait in references_ until all are read.
    for (const Entry& entry : document.entries) {
      if (entry.key == "node") {
        RETURN_IF_ERROR(readNode(&entry, &config->node));
      } else if (entry.key == "admin") {
        RETURN_IF_ERROR(readAdmin(&entry, &config->admin));
      } else if (entry.key == "transport") {
        RETURN_IF_ERROR(readTransport(&entry, &config->transport));
      } else if (entry.key == "clusters") {
        RETURN_IF_ERROR(readClusters(&entry, &config->clusters));
      } else if (entry.key == "listeners") {
        RETURN_IF_ERROR(readListeners(&entry, &config->listeners, dynamic));
      } else if (entry.key == "xds") {
        RETURN_IF_ERROR(readXds(&entry, config));
      } else if (entry.key == "node_agent") {
        RETURN_IF_ERROR(readNodeAgent(&entry, config));
      } else if (entry.key == "drain_timeout_ms") {
        RETURN_IF_ERROR(readDurationMs(document, "drain_timeout_ms", 0, &config->drain_timeout));
      }
    }

    if (config->xds && config->xds->id.empty()) {
      config->xds->id = fmt::format("sidecar~{}~{}", config->xds->workload, config->node.name);
    }
    if (config->transport.backend == FabricBackend::kShm && config->transport.listen.empty()) {
      config->transport.listen = fmt::format("{}{}.sock", kDefaultShmDirectory, config->node.name);
    }
    return checkReferences(*config);
  }

  Status fail(Position at, std::string_view path, std::string_view what) const {
    return invalidArgument(
        fmt::format("{}:{}:{}: {}: {}", source_name_, at.line, at.column, path, what));
  }

 private:
  bool mesh_ = false;  // node_agent is in the file
  // Opens `node` as a mapping that may only hold `known_keys`. Null reads as an empty mapping
  // (e.g. "admin:" with nothing under it) placed at `where`.
  Status openMapping(const YAML::Node& node, std::string path, Position where, KeyList known_keys,
                     Mapping* out) {
    out->path = std::move(path);
    out->position = node.IsNull() ? where : positionOf(node, where);
    out->entries.clear();
    if (node.IsNull()) return Status::ok();
    if (!node.IsMap()) {
      return fail(out->position, out->path.empty() ? "(document)" : out->path,
                  fmt::format("expected a mapping, got {}", describeType(node)));
    }
    for (auto it = node.begin(); it != node.end(); ++it) {
      // Copies: it-> returns a temporary proxy, so a reference to it->first would dangle.
      const YAML::Node key = it->first;
      const YAML::Node value = it->second;
      Position key_position = positionOf(key, out->position);
      if (!key.IsScalar()) {
        return fail(key_position, out->path.empty() ? "(document)" : out->path,
                    fmt::format("keys must be plain names, got {}", describeType(key)));
      }
      std::string name = key.Scalar();
      std::string field = out->fieldPath(name);
      if (std::find(known_keys.begin(), known_keys.end(), name) == known_keys.end()) {
        return fail(key_position, field, unknownFieldMessage(name, known_keys));
      }
      if (const Entry* first = out->find(name)) {
        return fail(
            key_position, field,
            fmt::format("duplicate field (first set on line {})", first->key_position.line));
      }
      out->entries.push_back({std::move(name), key_position, value});
    }
    return Status::ok();
  }

  static std::string unknownFieldMessage(std::string_view name, KeyList known_keys) {
    std::string_view closest;
    size_t best = 3;  // suggest only near misses: one or two edits
    for (std::string_view known : known_keys) {
      size_t distance = editDistance(name, known);
      if (distance < best) {
        best = distance;
        closest = known;
      }
    }
    if (closest.empty()) return "unknown field";
    return fmt::format("unknown field (did you mean '{}'?)", closest);
  }

  Status requireEntry(const Mapping& mapping, std::string_view key, const Entry** out) {
    *out = mapping.find(key);
    if (*out == nullptr) {
      return fail(mapping.position, mapping.fieldPath(key), "missing required field");
    }
    return Status::ok();
  }

  // Finds a single-valued key; *out stays null when the key is absent.
  Status findScalar(const Mapping& mapping, std::string_view key, Need need, const Entry** out) {
    *out = mapping.find(key);
    if (*out == nullptr) {
      if (need == Need::kOptional) return Status::ok();
      return fail(mapping.position, mapping.fieldPath(key), "missing required field");
    }
    const YAML::Node& value = (*out)->value;
    if (value.IsNull()) {
      return fail((*out)->valuePosition(), mapping.fieldPath(key), "no value given");
    }
    if (!value.IsScalar()) {
      return fail((*out)->valuePosition(), mapping.fieldPath(key),
                  fmt::format("expected a single value, got {}", describeType(value)));
    }
    return Status::ok();
  }

  Status readString(const Mapping& mapping, std::string_view key, Need need, std::string* out,
                    const Entry** found = nullptr) {
    const Entry* entry = nullptr;
    RETURN_IF_ERROR(findScalar(mapping, key, need, &entry));
    if (found != nullptr) *found = entry;
    if (entry != nullptr) *out = entry->value.Scalar();
    return Status::ok();
  }

  // Leaves *out (the default) alone when the key is absent.
  Status readInteger(const Mapping& mapping, std::string_view key, uint64_t min, uint64_t max,
                     uint64_t* out, const Entry** found = nullptr) {
    const Entry* entry = nullptr;
    RETURN_IF_ERROR(findScalar(mapping, key, Need::kOptional, &entry));
    if (found != nullptr) *found = entry;
    if (entry == nullptr) return Status::ok();
    std::optional<uint64_t> value = parseDecimal(entry->value.Scalar());
    if (!value || *value < min || *value > max) {
      return fail(
          entry->valuePosition(), mapping.fieldPath(key),
          fmt::format("'{}' is not an integer from {} to {}", entry->value.Scalar(), min, max));
    }
    *out = *value;
    return Status::ok();
  }

  Status readDurationMs(const Mapping& mapping, std::string_view key, uint64_t min,
                        std::chrono::milliseconds* out, const Entry** found = nullptr) {
    uint64_t ms = out->count();
    RETURN_IF_ERROR(readInteger(mapping, key, min, kMaxDurationMs, &ms, found));
    *out = std::chrono::milliseconds(ms);
    return Status::ok();
  }

  Status checkAddress(const Entry& entry, const std::string& path, PortZero port_zero,
                      InetAddress* out) {
    Result<InetAddress> address = InetAddress::parse(entry.value.Scalar());
    if (!address) return fail(entry.valuePosition(), path, address.status().message());
    if (port_zero == PortZero::kRejected && address->port() == 0) {
      return fail(
          entry.valuePosition(), path,
          fmt::format("'{}' has port 0; a destination needs a real port", entry.value.Scalar()));
    }
    *out = address.value();
    return Status::ok();
  }

  Status readAddress(const Mapping& mapping, std::string_view key, Need need, PortZero port_zero,
                     InetAddress* out, const Entry** found = nullptr) {
    const Entry* entry = nullptr;
    RETURN_IF_ERROR(findScalar(mapping, key, need, &entry));
    if (found != nullptr) *found = entry;
    if (entry == nullptr) return Status::ok();
    return checkAddress(*entry, mapping.fieldPath(key), port_zero, out);
  }

  Status checkUnixPath(const Entry& entry, const std::string& path) {
    const std::string& text = entry.value.Scalar();
    if (text.empty() || text.front() != '/') {
      return fail(entry.valuePosition(), path,
                  fmt::format("'{}' is not an absolute unix socket path", text));
    }
    if (text.size() > kMaxUnixPathBytes) {
      return fail(entry.valuePosition(), path,
                  fmt::format("unix socket path is {} bytes; the limit is {}", text.size(),
                              kMaxUnixPathBytes));
    }
    if (!isPrintableAscii(text, /*allow_space=*/true)) {
      return fail(entry.valuePosition(), path,
                  "unix socket path may only hold printable ASCII characters");
    }
    return Status::ok();
  }

  // A list under `entry` (absent or empty reads as no items); calls `visit` for each item.
  template <typename Visit>
  Status forEachItem(const Entry* entry, const std::string& path, Visit visit) {
    if (entry == nullptr || entry->value.IsNull()) return Status::ok();
    if (!entry->value.IsSequence()) {
      return fail(entry->valuePosition(), path,
                  fmt::format("expected a list, got {}", describeType(entry->value)));
    }
    size_t index = 0;
    for (auto it = entry->value.begin(); it != entry->value.end(); ++it, ++index) {
      RETURN_IF_ERROR(visit(*it, fmt::format("{}[{}]", path, index), entry->valuePosition()));
    }
    return Status::ok();
  }

  Status readNode(const Entry* entry, NodeConfig* node) {
    Mapping section;
    RETURN_IF_ERROR(openMapping(entry->value, "node", entry->valuePosition(),
                                {"name", "identity", "workers"}, &section));

    const Entry* name = nullptr;
    const char* env_name = mesh_ ? std::getenv(kNodeNameEnv) : nullptr;
    const bool from_env = env_name != nullptr && *env_name != '\0';
    RETURN_IF_ERROR(readString(section, "name", from_env ? Need::kOptional : Need::kRequired,
                               &node->name, &name));
    if (from_env) {
      node->name = env_name;
      if (!isNodeName(node->name)) {
        return fail(section.position, "node.name",
                    fmt::format("${} '{}' is not a valid node name", kNodeNameEnv, node->name));
      }
    } else if (!isNodeName(node->name)) {
      return fail(
          name->valuePosition(), "node.name",
          fmt::format("'{}' is not a valid node name (1-63 characters of a-z, 0-9, '.', '-')",
                      node->name));
    }

    const Entry* identity = nullptr;
    RETURN_IF_ERROR(readString(section, "identity", Need::kOptional, &node->identity, &identity));
    constexpr std::string_view kSpiffePrefix = "spiffe://";
    // "" means no identity, as when the key is absent (and as /config_dump prints it).
    if (identity != nullptr && !node->identity.empty() &&
        (node->identity.size() <= kSpiffePrefix.size() ||
         node->identity.compare(0, kSpiffePrefix.size(), kSpiffePrefix) != 0 ||
         !isPrintableAscii(node->identity, /*allow_space=*/false))) {
      return fail(identity->valuePosition(), "node.identity",
                  fmt::format("'{}' is not a SPIFFE id (expected spiffe://<trust-domain>/...)",
                              node->identity));
    }

    uint64_t workers = node->workers;
    RETURN_IF_ERROR(readInteger(section, "workers", 1, 64, &workers));
    node->workers = static_cast<uint32_t>(workers);
    return Status::ok();
  }

  // ring_bytes (a power of two, 4 KiB..16 MiB) and max_streams (1..4096) of a section.
  Status readStreamGeometry(const Mapping& section, uint32_t* ring_bytes, uint32_t* max_streams) {
    const Entry* ring_entry = nullptr;
    uint64_t ring = *ring_bytes;
    RETURN_IF_ERROR(readInteger(section, "ring_bytes", 4096, 16u << 20, &ring, &ring_entry));
    if (ring_entry != nullptr && (ring & (ring - 1)) != 0) {
      return fail(ring_entry->valuePosition(), section.fieldPath("ring_bytes"),
                  fmt::format("{} is not a power of two", ring));
    }
    *ring_bytes = static_cast<uint32_t>(ring);
    uint64_t streams = *max_streams;
    RETURN_IF_ERROR(readInteger(section, "max_streams", 1, 4096, &streams));
    *max_streams = static_cast<uint32_t>(streams);
    return Status::ok();
  }

  Status readNodeAgent(const Entry* entry, ProxyConfig* config) {
    Mapping section;
    RETURN_IF_ERROR(openMapping(entry->value, "node_agent", entry->valuePosition(),
                                {"socket", "pod_ips", "staging_bytes", "ring_bytes", "max_streams",
                                 "exclude_outbound_ports", "idle_session_timeout_ms"},
                                &section));
    NodeAgentConfig agent;
    const Entry* socket = nullptr;
    RETURN_IF_ERROR(findScalar(section, "socket", Need::kOptional, &socket));
    if (socket != nullptr) RETURN_IF_ERROR(checkUnixPath(*socket, "node_agent.socket"));
    agent.socket = transport::nodeSocketPath(socket ? socket->value.Scalar() : std::string());

    RETURN_IF_ERROR(forEachItem(
        section.find("pod_ips"), "node_agent.pod_ips",
        [&](const YAML::Node& item, const std::string& path, Position where) -> Status {
          auto ip = transport::canonicalIp(item.IsScalar() ? item.Scalar() : "");
          if (!item.IsScalar() || !ip) {
            return fail(positionOf(item, where), path,
                        item.IsScalar() ? ip.status().message() : "expected an IP address");
          }
          if (std::find(agent.pod_ips.begin(), agent.pod_ips.end(), *ip) != agent.pod_ips.end()) {
            return fail(positionOf(item, where), path, fmt::format("{} is listed twice", *ip));
          }
          agent.pod_ips.push_back(*ip);
          return Status::ok();
        }));
    if (agent.pod_ips.empty()) {
      // The downward API: status.podIPs (dual stack) or status.podIP.
      const char* env = std::getenv(kPodIpsEnv);
      if (env == nullptr || *env == '\0') env = std::getenv(kPodIpEnv);
      std::string_view list = env ? env : "";
      for (size_t start = 0; start < list.size();) {
        size_t comma = std::min(list.find(',', start), list.size());
        std::string_view text = list.substr(start, comma - start);
        start = comma + 1;
        if (text.empty()) continue;
        auto ip = transport::canonicalIp(text);
        if (!ip) {
          return fail(section.position, "node_agent.pod_ips",
                      fmt::format("from the environment: {}", ip.status().message()));
        }
        agent.pod_ips.push_back(*ip);
      }
    }
    if (agent.pod_ips.empty()) {
      return fail(section.position, "node_agent.pod_ips",
                  fmt::format("the pod's IPs are needed in mesh mode: list them here or set ${} "
                              "(or ${}) from the downward API",
                              kPodIpsEnv, kPodIpEnv));
    }
    RETURN_IF_ERROR(forEachItem(
        section.find("exclude_outbound_ports"), "node_agent.exclude_outbound_ports",
        [&](const YAML::Node& item, const std::string& path, Position where) -> Status {
          int port = 0;
          if (!item.IsScalar() || !YAML::convert<int>::decode(item, port) || port < 1 ||
              port > 65535) {
            return fail(positionOf(item, where), path, "expected a port number 1..65535");
          }
          agent.exclude_outbound_ports.push_back(static_cast<uint16_t>(port));
          return Status::ok();
        }));
    if (section.find("exclude_outbound_ports") == nullptr) {
      // The injector passes the pod's rdmesh.io/exclude-outbound-ports this way.
      if (const char* env = std::getenv(kExcludeOutboundPortsEnv); env != nullptr && *env != '\0') {
        Result<std::vector<uint16_t>> ports = parsePortList(env);
        if (!ports) {
          return fail(section.position, "node_agent.exclude_outbound_ports",
                      fmt::format("${}: {}", kExcludeOutboundPortsEnv, ports.status().message()));
        }
        agent.exclude_outbound_ports = std::move(*ports);
      }
    }
    const Entry* staging = nullptr;
    RETURN_IF_ERROR(
        readInteger(section, "staging_bytes", 64 << 10, 64 << 20, &agent.staging_bytes, &staging));
    if (staging != nullptr && agent.staging_bytes % 4096 != 0) {
      return fail(staging->valuePosition(), "node_agent.staging_bytes",
                  "must be a multiple of 4096");
    }
    RETURN_IF_ERROR(readStreamGeometry(section, &agent.ring_bytes, &agent.max_streams));
    RETURN_IF_ERROR(
        readDurationMs(section, "idle_session_timeout_ms", 0, &agent.idle_session_timeout));
    // The agent maps and registers the whole region; it refuses one above its limit.
    transport::SessionGeometry geometry;
    geometry.ring_bytes = agent.ring_bytes;
    geometry.max_streams = agent.max_streams;
    if (uint64_t bytes = geometry.receiveAreaBytes() + agent.staging_bytes;
        bytes > wire::agent::kMaxRegionBytes) {
      return fail(section.position, "node_agent",
                  fmt::format("max_streams x ring_bytes + staging_bytes is {} bytes, above the "
                              "node agent's {} per session",
                              bytes, wire::agent::kMaxRegionBytes));
    }
    config->node_agent = std::move(agent);
    return Status::ok();
  }

  Status readAdmin(const Entry* entry, AdminConfig* admin) {
    Mapping section;
    RETURN_IF_ERROR(openMapping(entry->value, "admin", entry->valuePosition(),
                                {"address", "probe_address"}, &section));
    RETURN_IF_ERROR(
        readAddress(section, "address", Need::kOptional, PortZero::kAllowed, &admin->address));
    if (section.find("probe_address") != nullptr) {
      InetAddress probe;
      RETURN_IF_ERROR(
          readAddress(section, "probe_address", Need::kRequired, PortZero::kAllowed, &probe));
      admin->probe_address = probe;
    }
    return Status::ok();
  }

  Status readVerbsKeys(const Mapping& section, TransportConfig& transport) {
    const bool verbs = transport.backend == FabricBackend::kVerbs;
    const Entry* device = nullptr;
    RETURN_IF_ERROR(
        readString(section, "rdma_device", Need::kOptional, &transport.rdma_device, &device));
    const Entry* gid = nullptr;
    uint64_t gid_index = 0;
    RETURN_IF_ERROR(readInteger(section, "gid_index", 0, 1023, &gid_index, &gid));
    for (const Entry* e : {device, gid}) {
      if (e != nullptr && !verbs) {
        return fail(e->key_position, section.fieldPath(e->key), "only allowed with backend: verbs");
      }
    }
    if (device != nullptr) {
      const std::string& name = transport.rdma_device;
      bool ok =
          !name.empty() && name.size() <= 63 && std::all_of(name.begin(), name.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
          });
      if (!ok) {
        return fail(
            device->valuePosition(), "transport.rdma_device",
            fmt::format("'{}' is not a device name (1-63 of A-Z a-z 0-9 _ -, e.g. rxe0)", name));
      }
    }
    if (gid != nullptr) transport.gid_index = static_cast<int>(gid_index);
    return Status::ok();
  }

  Status readTransport(const Entry* entry, TransportConfig* transport) {
    Mapping section;
    RETURN_IF_ERROR(
        openMapping(entry->value, "transport", entry->valuePosition(),
                    {"backend", "listen", "ring_bytes", "max_streams", "keepalive_interval_ms",
                     "keepalive_timeout_ms", "connect_timeout_ms", "poll_budget_us", "peers",
                     "rdma_device", "gid_index"},
                    &section));

    if (mesh_) {
      for (std::string_view key : {"backend", "listen", "peers", "rdma_device", "gid_index"}) {
        if (const Entry* e = section.find(key); e != nullptr) {
          return fail(e->key_position, section.fieldPath(key),
                      "not used in mesh mode: rdmesh-node owns the fabric (node_agent is set)");
        }
      }
      for (std::string_view key : {"ring_bytes", "max_streams"}) {
        if (const Entry* e = section.find(key); e != nullptr) {
          return fail(e->key_position, section.fieldPath(key),
                      fmt::format("mesh sessions have their own geometry: set node_agent.{}", key));
        }
      }
    }
    std::string backend = "tcp";
    const Entry* backend_entry = nullptr;
    RETURN_IF_ERROR(readString(section, "backend", mesh_ ? Need::kOptional : Need::kRequired,
                               &backend, &backend_entry));
    if (backend == "tcp") {
      transport->backend = FabricBackend::kTcp;
    } else if (backend == "shm") {
      transport->backend = FabricBackend::kShm;
    } else if (backend == "verbs") {
      transport->backend = FabricBackend::kVerbs;
    } else {
      return fail(backend_entry->valuePosition(), "transport.backend",
                  fmt::format("unknown value '{}' (expected tcp, shm or verbs)", backend));
    }
    // verbs bootstraps over TCP (and falls back to it): addresses as for tcp.
    const bool tcp = transport->backend != FabricBackend::kShm;
    RETURN_IF_ERROR(readVerbsKeys(section, *transport));

    const Entry* listen = nullptr;
    RETURN_IF_ERROR(findScalar(section, "listen", Need::kOptional, &listen));
    if (listen == nullptr) {
      // The shm default names the node, which may come later in the file: read() fills it in.
      transport->listen = tcp ? std::string(kDefaultTcpListen) : std::string();
    } else if (tcp) {
      InetAddress address;
      RETURN_IF_ERROR(checkAddress(*listen, "transport.listen", PortZero::kAllowed, &address));
      transport->listen = address.toString();
    } else {
      RETURN_IF_ERROR(checkUnixPath(*listen, "transport.listen"));
      transport->listen = listen->value.Scalar();
    }

    RETURN_IF_ERROR(readStreamGeometry(section, &transport->ring_bytes, &transport->max_streams));

    const Entry* interval = nullptr;
    const Entry* timeout = nullptr;
    RETURN_IF_ERROR(readDurationMs(section, "keepalive_interval_ms", 1,
                                   &transport->keepalive_interval, &interval));
    RETURN_IF_ERROR(readDurationMs(section, "keepalive_timeout_ms", 1,
                                   &transport->keepalive_timeout, &timeout));
    if (transport->keepalive_timeout <= transport->keepalive_interval) {
      // Blame the key the user wrote; if both were written, the timeout.
      if (timeout != nullptr) {
        return fail(timeout->valuePosition(), "transport.keepalive_timeout_ms",
                    fmt::format("must be greater than keepalive_interval_ms ({})",
                                transport->keepalive_interval.count()));
      }
      return fail(interval->valuePosition(), "transport.keepalive_interval_ms",
                  fmt::format("must be less than keepalive_timeout_ms ({}, the default)",
                              transport->keepalive_timeout.count()));
    }
    RETURN_IF_ERROR(readDurationMs(section, "connect_timeout_ms", 1, &transport->connect_timeout));

    uint64_t poll_budget_us = transport->poll_budget.count();
    RETURN_IF_ERROR(readInteger(section, "poll_budget_us", 0, 10000, &poll_budget_us));
    transport->poll_budget = std::chrono::microseconds(poll_budget_us);

    transport->peers.clear();
    return forEachItem(
        section.find("peers"), "transport.peers",
        [&](const YAML::Node& item, const std::string& path, Position list_position) -> Status {
          Mapping peer_section;
          RETURN_IF_ERROR(
              openMapping(item, path, list_position, {"name", "address"}, &peer_section));
          PeerConfig peer;
          peer.line = peer_section.position.line;
          const Entry* name = nullptr;
          RETURN_IF_ERROR(readString(peer_section, "name", Need::kRequired, &peer.name, &name));
          if (!isNodeName(peer.name)) {
            return fail(name->valuePosition(), path + ".name",
                        fmt::format("'{}' is not a valid node name (1-63 characters of a-z, 0-9, "
                                    "'.', '-')",
                                    peer.name));
          }
          references_.push_back(
              {Reference::kPeerIsNotSelf, name->valuePosition(), path + ".name", peer.name});
          for (const PeerConfig& other : transport->peers) {
            if (other.name == peer.name) {
              return fail(name->valuePosition(), path + ".name",
                          fmt::format("duplicate peer '{}' (first defined on line {})", peer.name,
                                      other.line));
            }
          }
          const Entry* address = nullptr;
          RETURN_IF_ERROR(findScalar(peer_section, "address", Need::kRequired, &address));
          if (tcp) {
            InetAddress parsed;
            RETURN_IF_ERROR(
                checkAddress(*address, path + ".address", PortZero::kRejected, &parsed));
            peer.address = parsed.toString();
          } else {
            RETURN_IF_ERROR(checkUnixPath(*address, path + ".address"));
            peer.address = address->value.Scalar();
          }
          transport->peers.push_back(std::move(peer));
          return Status::ok();
        });
  }

  Status readClusters(const Entry* entry, std::vector<ClusterConfig>* clusters) {
    clusters->clear();
    return forEachItem(
        entry, "clusters",
        [&](const YAML::Node& item, const std::string& path, Position list_position) -> Status {
          Mapping section;
          RETURN_IF_ERROR(openMapping(
              item, path, list_position,
              {"name", "lb_policy", "connect_timeout_ms", "endpoints", "service_addresses"},
              &section));
          ClusterConfig cluster;
          cluster.line = section.position.line;
          const Entry* name = nullptr;
          RETURN_IF_ERROR(readString(section, "name", Need::kRequired, &cluster.name, &name));
          if (!isResourceName(cluster.name)) {
            return fail(name->valuePosition(), path + ".name",
                        fmt::format("'{}' is not a valid name (1-63 characters of A-Z, a-z, 0-9, "
                                    "'.', '_', '-')",
                                    cluster.name));
          }
          for (const ClusterConfig& other : *clusters) {
            if (other.name == cluster.name) {
              return fail(name->valuePosition(), path + ".name",
                          fmt::format("duplicate cluster '{}' (first defined on line {})",
                                      cluster.name, other.line));
            }
          }

          std::string policy;
          const Entry* policy_entry = nullptr;
          RETURN_IF_ERROR(
              readString(section, "lb_policy", Need::kOptional, &policy, &policy_entry));
          if (policy_entry == nullptr || policy == "round_robin") {
            cluster.lb_policy = LbPolicy::kRoundRobin;
          } else if (policy == "least_request") {
            cluster.lb_policy = LbPolicy::kLeastRequest;
          } else {
            return fail(
                policy_entry->valuePosition(), path + ".lb_policy",
                fmt::format("unknown value '{}' (expected round_robin or least_request)", policy));
          }

          RETURN_IF_ERROR(
              readDurationMs(section, "connect_timeout_ms", 1, &cluster.connect_timeout));

          const Entry* endpoints = nullptr;
          RETURN_IF_ERROR(requireEntry(section, "endpoints", &endpoints));
          RETURN_IF_ERROR(
              forEachItem(endpoints, path + ".endpoints",
                          [&](const YAML::Node& endpoint_item, const std::string& endpoint_path,
                              Position endpoints_position) -> Status {
                            return readEndpoint(endpoint_item, endpoint_path, endpoints_position,
                                                &cluster.endpoints);
                          }));
          if (cluster.endpoints.empty()) {
            return fail(endpoints->valuePosition(), path + ".endpoints",
                        "must list at least one endpoint");
          }
          RETURN_IF_ERROR(readServiceAddresses(section, path, *clusters, &cluster));
          clusters->push_back(std::move(cluster));
          return Status::ok();
        });
  }

  // service_addresses: ["10.96.0.10:6379", ...]; each address belongs to one cluster only.
  Status readServiceAddresses(const Mapping& section, const std::string& path,
                              const std::vector<ClusterConfig>& others, ClusterConfig* cluster) {
    const Entry* list = section.find("service_addresses");
    if (list == nullptr) return Status::ok();
    return forEachItem(
        list, path + ".service_addresses",
        [&](const YAML::Node& item, const std::string& item_path, Position at) -> Status {
          Position where = positionOf(item, at);
          if (!item.IsScalar()) {
            return fail(where, item_path,
                        fmt::format("expected an ip:port, got {}", describeType(item)));
          }
          Result<InetAddress> address = InetAddress::parse(item.Scalar());
          if (!address || address->port() == 0) {
            return fail(where, item_path,
                        fmt::format("'{}' is not an ip:port with a non-zero port", item.Scalar()));
          }
          for (const ClusterConfig& other : others) {
            for (const InetAddress& a : other.service_addresses) {
              if (a == *address) {
                return fail(where, item_path,
                            fmt::format("{} is already a service address of cluster '{}'",
                                        address->toString(), other.name));
              }
            }
          }
          for (const InetAddress& a : cluster->service_addresses) {
            if (a == *address) {
              return fail(where, item_path, fmt::format("{} is listed twice", a.toString()));
            }
          }
          cluster->service_addresses.push_back(*address);
          return Status::ok();
        });
  }

  Status readEndpoint(const YAML::Node& item, const std::string& path, Position list_position,
                      std::vector<EndpointConfig>* endpoints) {
    Mapping section;
    RETURN_IF_ERROR(openMapping(item, path, list_position, {"node", "address"}, &section));
    EndpointConfig endpoint;
    const Entry* node = nullptr;
    RETURN_IF_ERROR(readString(section, "node", Need::kRequired, &endpoint.node, &node));
    references_.push_back(
        {Reference::kEndpointNode, node->valuePosition(), path + ".node", endpoint.node});
    RETURN_IF_ERROR(
        readAddress(section, "address", Need::kRequired, PortZero::kRejected, &endpoint.address));
    endpoints->push_back(std::move(endpoint));
    return Status::ok();
  }

  Status readListeners(const Entry* entry, std::vector<ListenerConfig>* listeners, bool dynamic) {
    listeners->clear();
    RETURN_IF_ERROR(forEachItem(
        entry, "listeners",
        [&](const YAML::Node& item, const std::string& path, Position list_position) -> Status {
          return readListener(item, path, list_position, listeners);
        }));
    if (listeners->empty() && !dynamic) {
      return fail(entry->valuePosition(), "listeners", "must list at least one listener");
    }
    return Status::ok();
  }

  Status readListener(const YAML::Node& item, const std::string& path, Position list_position,
                      std::vector<ListenerConfig>* listeners) {
    Mapping section;
    RETURN_IF_ERROR(openMapping(item, path, list_position,
                                {"name", "direction", "address", "cluster", "port", "target",
                                 "address_v6", "unknown_destination", "preload_socket"},
                                &section));
    ListenerConfig listener;
    listener.line = section.position.line;
    const Entry* name = nullptr;
    RETURN_IF_ERROR(readString(section, "name", Need::kRequired, &listener.name, &name));
    if (!isResourceName(listener.name)) {
      return fail(name->valuePosition(), path + ".name",
                  fmt::format("'{}' is not a valid name (1-63 characters of A-Z, a-z, 0-9, '.', "
                              "'_', '-')",
                              listener.name));
    }
    for (const ListenerConfig& other : *listeners) {
      if (other.name == listener.name) {
        return fail(name->valuePosition(), path + ".name",
                    fmt::format("duplicate listener '{}' (first defined on line {})", listener.name,
                                other.line));
      }
    }

    std::string direction;
    const Entry* direction_entry = nullptr;
    RETURN_IF_ERROR(
        readString(section, "direction", Need::kRequired, &direction, &direction_entry));
    if (direction == "outbound") {
      listener.direction = ListenerDirection::kOutbound;
    } else if (direction == "inbound") {
      listener.direction = ListenerDirection::kInbound;
    } else if (direction == "capture") {
      listener.direction = ListenerDirection::kCapture;
    } else {
      return fail(
          direction_entry->valuePosition(), path + ".direction",
          fmt::format("unknown value '{}' (expected outbound, inbound or capture)", direction));
    }

    // A key of another direction means the user misunderstood; ignoring it would hide that.
    static constexpr std::array<std::string_view, 2> kOutboundKeys = {"address", "cluster"};
    static constexpr std::array<std::string_view, 2> kInboundKeys = {"port", "target"};
    static constexpr std::array<std::string_view, 4> kCaptureKeys = {
        "address", "address_v6", "unknown_destination", "preload_socket"};
    auto allowed = [&](std::string_view key) {
      auto in = [key](const auto& keys) {
        return std::find(keys.begin(), keys.end(), key) != keys.end();
      };
      switch (listener.direction) {
        case ListenerDirection::kOutbound:
          return in(kOutboundKeys);
        case ListenerDirection::kInbound:
          return in(kInboundKeys);
        case ListenerDirection::kCapture:
          return in(kCaptureKeys);
      }
      return false;
    };
    for (const Entry& e : section.entries) {
      if (e.key == "name" || e.key == "direction" || allowed(e.key)) continue;
      return fail(e.key_position, section.fieldPath(e.key),
                  fmt::format("not valid for {} listeners", toString(listener.direction)));
    }
    const bool outbound = listener.direction == ListenerDirection::kOutbound;
    if (listener.direction == ListenerDirection::kCapture) {
      RETURN_IF_ERROR(readCaptureListener(section, path, *listeners, &listener));
      listeners->push_back(std::move(listener));
      return Status::ok();
    }

    if (outbound) {
      const Entry* address = nullptr;
      RETURN_IF_ERROR(readAddress(section, "address", Need::kRequired, PortZero::kAllowed,
                                  &listener.address, &address));
      for (const ListenerConfig& other : *listeners) {
        if (other.direction == ListenerDirection::kOutbound && listener.address.port() != 0 &&
            other.address == listener.address) {
          return fail(address->valuePosition(), path + ".address",
                      fmt::format("{} is already used by listener '{}' (line {})",
                                  listener.address.toString(), other.name, other.line));
        }
      }
      const Entry* cluster = nullptr;
      RETURN_IF_ERROR(readString(section, "cluster", Need::kRequired, &listener.cluster, &cluster));
      references_.push_back({Reference::kListenerCluster, cluster->valuePosition(),
                             path + ".cluster", listener.cluster});
    } else {
      uint64_t port = 0;
      const Entry* port_entry = nullptr;
      RETURN_IF_ERROR(findScalar(section, "port", Need::kRequired, &port_entry));
      RETURN_IF_ERROR(readInteger(section, "port", 1, 65535, &port));
      listener.port = static_cast<uint16_t>(port);
      for (const ListenerConfig& other : *listeners) {
        if (other.direction == ListenerDirection::kInbound && other.port == listener.port) {
          return fail(port_entry->valuePosition(), path + ".port",
                      fmt::format("port {} is already used by inbound listener '{}' (line {})",
                                  listener.port, other.name, other.line));
        }
      }
      listener.target = InetAddress::fromIp("127.0.0.1", listener.port).value();
      RETURN_IF_ERROR(
          readAddress(section, "target", Need::kOptional, PortZero::kRejected, &listener.target));
    }
    listeners->push_back(std::move(listener));
    return Status::ok();
  }

  // Leaves *out (the default) alone when the key is absent.
  Status readBool(const Mapping& mapping, std::string_view key, bool* out) {
    const Entry* entry = nullptr;
    RETURN_IF_ERROR(findScalar(mapping, key, Need::kOptional, &entry));
    if (entry == nullptr) return Status::ok();
    const std::string& text = entry->value.Scalar();
    if (text != "true" && text != "false") {
      return fail(entry->valuePosition(), mapping.fieldPath(key),
                  fmt::format("'{}' is not true or false", text));
    }
    *out = text == "true";
    return Status::ok();
  }

  Status readXds(const Entry* entry, ProxyConfig* config) {
    Mapping section;
    RETURN_IF_ERROR(openMapping(entry->value, "xds", entry->valuePosition(),
                                {"servers", "plaintext", "delta", "tls", "id", "workload",
                                 "namespace", "clusters", "connect_timeout_ms"},
                                &section));
    static_assert(xds::kBootstrapKeys.size() == 6, "the shared keys are listed above");
    XdsConfig xds;
    xds.line = section.position.line;
    // The keys every xDS client shares (servers, tls, ...) have one parser (xds-api/client).
    RETURN_IF_ERROR(xds::readBootstrap(entry->value, source_name_, "xds", section.position.line,
                                       section.position.column, &xds));

    // An injected sidecar's bootstrap cannot name its pod (it may not have a name yet):
    // $RDMESH_POD_NAMESPACE/$RDMESH_POD_NAME (downward API) stand in for a missing workload.
    const char* env_namespace = std::getenv(kPodNamespaceEnv);
    const char* env_pod = std::getenv(kPodNameEnv);
    const bool workload_from_env = section.find("workload") == nullptr &&
                                   env_namespace != nullptr && *env_namespace != '\0' &&
                                   env_pod != nullptr && *env_pod != '\0';
    const Entry* workload = nullptr;
    RETURN_IF_ERROR(readString(section, "workload",
                               workload_from_env ? Need::kOptional : Need::kRequired, &xds.workload,
                               &workload));
    if (workload_from_env) xds.workload = fmt::format("{}/{}", env_namespace, env_pod);
    size_t slash = xds.workload.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == xds.workload.size() ||
        !isPrintableAscii(xds.workload, /*allow_space=*/false)) {
      return fail(
          workload != nullptr ? workload->valuePosition() : section.position, "xds.workload",
          fmt::format("'{}'{} is not <namespace>/<pod>", xds.workload,
                      workload_from_env ? " (from $RDMESH_POD_NAMESPACE/$RDMESH_POD_NAME)" : ""));
    }
    xds.namespace_name = xds.workload.substr(0, slash);
    const Entry* namespace_entry = nullptr;
    std::string namespace_name = xds.namespace_name;
    RETURN_IF_ERROR(
        readString(section, "namespace", Need::kOptional, &namespace_name, &namespace_entry));
    if (namespace_name != xds.namespace_name) {
      return fail(namespace_entry->valuePosition(), "xds.namespace",
                  fmt::format("'{}' differs from the workload's namespace '{}'", namespace_name,
                              xds.namespace_name));
    }
    RETURN_IF_ERROR(forEachItem(
        section.find("clusters"), "xds.clusters",
        [&](const YAML::Node& item, const std::string& path, Position list_position) -> Status {
          if (!item.IsScalar() || item.Scalar().empty()) {
            return fail(positionOf(item, list_position), path, "expected a cluster name");
          }
          xds.clusters.push_back(item.Scalar());
          return Status::ok();
        }));
    config->xds = std::move(xds);
    return Status::ok();
  }

  Status readCaptureListener(const Mapping& section, const std::string& path,
                             const std::vector<ListenerConfig>& others, ListenerConfig* listener) {
    for (const ListenerConfig& other : others) {
      if (other.direction == ListenerDirection::kCapture) {
        return fail(section.position, path,
                    fmt::format("only one capture listener is allowed ('{}' is one, line {})",
                                other.name, other.line));
      }
    }
    listener->address = InetAddress::parse(kDefaultCaptureAddress).value();
    RETURN_IF_ERROR(
        readAddress(section, "address", Need::kOptional, PortZero::kRejected, &listener->address));
    std::string v6;
    const Entry* v6_entry = nullptr;
    RETURN_IF_ERROR(readString(section, "address_v6", Need::kOptional, &v6, &v6_entry));
    if (v6_entry == nullptr) {
      listener->has_address_v6 = true;
      listener->address_v6 = InetAddress::parse(kDefaultCaptureAddressV6).value();
    } else if (v6 != "none") {
      RETURN_IF_ERROR(readAddress(section, "address_v6", Need::kOptional, PortZero::kRejected,
                                  &listener->address_v6));
      if (listener->address_v6.isV4()) {
        return fail(v6_entry->valuePosition(), path + ".address_v6",
                    "must be an IPv6 address (or none)");
      }
      listener->has_address_v6 = true;
    }
    for (const ListenerConfig& other : others) {
      if (other.direction == ListenerDirection::kOutbound && other.address == listener->address) {
        return fail(section.position, path + ".address",
                    fmt::format("{} is already used by listener '{}' (line {})",
                                listener->address.toString(), other.name, other.line));
      }
    }
    std::string unknown = "passthrough";
    const Entry* unknown_entry = nullptr;
    RETURN_IF_ERROR(
        readString(section, "unknown_destination", Need::kOptional, &unknown, &unknown_entry));
    if (unknown == "passthrough") {
      listener->unknown_destination = UnknownDestination::kPassthrough;
    } else if (unknown == "reject") {
      listener->unknown_destination = UnknownDestination::kReject;
    } else {
      return fail(unknown_entry->valuePosition(), path + ".unknown_destination",
                  fmt::format("unknown value '{}' (expected passthrough or reject)", unknown));
    }
    listener->preload_socket = kDefaultPreloadSocket;
    const Entry* preload = nullptr;
    RETURN_IF_ERROR(readString(section, "preload_socket", Need::kOptional,
                               &listener->preload_socket, &preload));
    if (preload != nullptr && listener->preload_socket == "none") listener->preload_socket.clear();
    if (!listener->preload_socket.empty() &&
        (listener->preload_socket.size() < 2 || listener->preload_socket.front() != '@' ||
         listener->preload_socket.size() > kMaxUnixPathBytes ||
         !isPrintableAscii(listener->preload_socket, false))) {
      return fail(preload->valuePosition(), path + ".preload_socket",
                  "expected an abstract socket name '@name' (or none)");
    }
    return Status::ok();
  }

  // Checks the names that point into other sections, in file order.
  Status checkReferences(const ProxyConfig& config) {
    std::stable_sort(references_.begin(), references_.end(),
                     [](const Reference& a, const Reference& b) {
                       return std::pair(a.position.line, a.position.column) <
                              std::pair(b.position.line, b.position.column);
                     });
    const auto& peers = config.transport.peers;
    for (const Reference& reference : references_) {
      const std::string& name = reference.name;
      switch (reference.kind) {
        case Reference::kPeerIsNotSelf:
          if (name == config.node.name) {
            return fail(
                reference.position, reference.path,
                fmt::format("'{}' is this node (node.name); a node is not its own peer", name));
          }
          break;
        case Reference::kEndpointNode: {
          // Mesh mode: any node (the agent knows the way).
          bool known = mesh_ || config.xds.has_value() || name == config.node.name ||
                       std::any_of(peers.begin(), peers.end(),
                                   [&](const PeerConfig& peer) { return peer.name == name; });
          if (!known) {
            return fail(reference.position, reference.path,
                        fmt::format("unknown node '{}' (expected node.name '{}' or a name in "
                                    "transport.peers)",
                                    name, config.node.name));
          }
          break;
        }
        case Reference::kListenerCluster: {
          // With xds the cluster may come from the control plane; until it does, the listener
          // resets its connections (and counts them).
          bool defined =
              config.xds.has_value() ||
              std::any_of(config.clusters.begin(), config.clusters.end(),
                          [&](const ClusterConfig& cluster) { return cluster.name == name; });
          if (!defined) {
            return fail(reference.position, reference.path,
                        fmt::format("no cluster named '{}' is defined", name));
          }
          break;
        }
      }
    }
    return Status::ok();
  }

  // A name that must match something in another section, checked once every section is read.
  struct Reference {
    enum Kind { kPeerIsNotSelf, kEndpointNode, kListenerCluster } kind;
    Position position;
    std::string path;
    std::string name;
  };

  std::string source_name_;
  std::vector<Reference> references_;
};

#undef RETURN_IF_ERROR

}  // namespace

const char* toString(FabricBackend b) {
  switch (b) {
    case FabricBackend::kShm:
      return "shm";
    case FabricBackend::kVerbs:
      return "verbs";
    case FabricBackend::kTcp:
      break;
  }
  return "tcp";
}

const char* toString(LbPolicy p) {
  return p == LbPolicy::kLeastRequest ? "least_request" : "round_robin";
}

const char* toString(ListenerDirection d) {
  switch (d) {
    case ListenerDirection::kInbound:
      return "inbound";
    case ListenerDirection::kCapture:
      return "capture";
    case ListenerDirection::kOutbound:
      break;
  }
  return "outbound";
}

const char* toString(UnknownDestination u) {
  return u == UnknownDestination::kReject ? "reject" : "passthrough";
}

Result<ProxyConfig> parseConfig(const std::string& yaml_text, const std::string& source_name) {
  ConfigReader reader(source_name);
  if (yaml_text.size() > kMaxConfigBytes) {
    return reader.fail(
        {}, "(document)",
        fmt::format("config is {} bytes; the limit is {}", yaml_text.size(), kMaxConfigBytes));
  }
  try {
    if (std::optional<YAML::Mark> second = findSecondDocument(yaml_text)) {
      Position at{second->line + 1, second->column + 1};
      size_t pos = second->pos >= 0 ? static_cast<size_t>(second->pos) : yaml_text.size();
      if (yaml_text.compare(std::min(pos, yaml_text.size()), 3, "---") == 0) {
        return reader.fail(at, "(document)", "only one YAML document is allowed");
      }
      // yaml-cpp ended the document early and could not go on: a syntax error it did not name.
      char c = pos < yaml_text.size() ? yaml_text[pos] : ' ';
      std::string what = c > ' ' && c < 0x7f ? fmt::format("unexpected '{}'", c)
                                             : std::string("cannot parse past this point");
      return invalidArgument(
          fmt::format("{}:{}:{}: invalid YAML: {}", source_name, at.line, at.column, what));
    }
    YAML::Node document = YAML::Load(yaml_text);
    if (document.IsNull()) {
      return reader.fail({}, "(document)",
                         "config is empty (expected a mapping with node, transport and listeners)");
    }
    ProxyConfig config;
    config.source_path = source_name;
    config.source_text = yaml_text;
    if (Status status = reader.read(document, &config); !status) return status;
    return config;
  } catch (const YAML::Exception& e) {
    Position at;
    if (!e.mark.is_null()) at = {e.mark.line + 1, e.mark.column + 1};
    return invalidArgument(
        fmt::format("{}:{}:{}: invalid YAML: {}", source_name, at.line, at.column, e.msg));
  } catch (const std::exception& e) {
    return internalError(fmt::format("{}: cannot parse config: {}", source_name, e.what()));
  }
}

Result<ProxyConfig> loadConfigFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return invalidArgument(
        fmt::format("cannot open config file '{}': {}", path, std::strerror(errno)));
  }
  std::string text;
  char buffer[64 * 1024];
  Status error;
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = invalidArgument(
          fmt::format("cannot read config file '{}': {}", path, std::strerror(errno)));
      break;
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
    if (text.size() > kMaxConfigBytes) {
      error = invalidArgument(
          fmt::format("config file '{}' is larger than the {} byte limit", path, kMaxConfigBytes));
      break;
    }
  }
  ::close(fd);
  if (!error) return error;
  return parseConfig(text, path);
}

std::string configToJson(const ProxyConfig& config) {
  try {
    using Json = nlohmann::ordered_json;
    Json peers = Json::array();
    for (const PeerConfig& peer : config.transport.peers) {
      peers.push_back({{"name", peer.name}, {"address", peer.address}});
    }
    Json listeners = Json::array();
    for (const ListenerConfig& listener : config.listeners) {
      Json json = {{"name", listener.name}, {"direction", toString(listener.direction)}};
      if (listener.direction == ListenerDirection::kOutbound) {
        json["address"] = listener.address.toString();
        json["cluster"] = listener.cluster;
      } else if (listener.direction == ListenerDirection::kCapture) {
        json["address"] = listener.address.toString();
        json["address_v6"] = listener.has_address_v6 ? listener.address_v6.toString() : "none";
        json["unknown_destination"] = toString(listener.unknown_destination);
        json["preload_socket"] = listener.preload_socket.empty() ? "none" : listener.preload_socket;
      } else {
        json["port"] = listener.port;
        json["target"] = listener.target.toString();
      }
      listeners.push_back(std::move(json));
    }
    Json clusters = Json::array();
    for (const ClusterConfig& cluster : config.clusters) {
      Json endpoints = Json::array();
      for (const EndpointConfig& endpoint : cluster.endpoints) {
        endpoints.push_back({{"node", endpoint.node}, {"address", endpoint.address.toString()}});
      }
      Json services = Json::array();
      for (const InetAddress& a : cluster.service_addresses) services.push_back(a.toString());
      clusters.push_back({{"name", cluster.name},
                          {"lb_policy", toString(cluster.lb_policy)},
                          {"connect_timeout_ms", cluster.connect_timeout.count()},
                          {"service_addresses", std::move(services)},
                          {"endpoints", std::move(endpoints)}});
    }
    const TransportConfig& transport = config.transport;
    Json json = {
        {"node",
         {{"name", config.node.name},
          {"identity", config.node.identity},
          {"workers", config.node.workers}}},
        {"admin", {{"address", config.admin.address.toString()}}},
        {"transport",
         {{"backend", toString(transport.backend)},
          {"listen", transport.listen},
          {"ring_bytes", transport.ring_bytes},
          {"max_streams", transport.max_streams},
          {"keepalive_interval_ms", transport.keepalive_interval.count()},
          {"keepalive_timeout_ms", transport.keepalive_timeout.count()},
          {"connect_timeout_ms", transport.connect_timeout.count()},
          {"poll_budget_us", transport.poll_budget.count()},
          {"peers", std::move(peers)}}},
        {"listeners", std::move(listeners)},
        {"clusters", std::move(clusters)},
        {"drain_timeout_ms", config.drain_timeout.count()},
    };
    if (config.admin.probe_address) {
      json["admin"]["probe_address"] = config.admin.probe_address->toString();
    }
    if (config.node_agent) {
      // Mesh sessions take their geometry from node_agent (the transport keys are refused).
      json["transport"].erase("ring_bytes");
      json["transport"].erase("max_streams");
      json["node_agent"] = {
          {"socket", config.node_agent->socket},
          {"pod_ips", config.node_agent->pod_ips},
          {"ring_bytes", config.node_agent->ring_bytes},
          {"max_streams", config.node_agent->max_streams},
          {"staging_bytes", config.node_agent->staging_bytes},
          {"exclude_outbound_ports", config.node_agent->exclude_outbound_ports},
          {"idle_session_timeout_ms", config.node_agent->idle_session_timeout.count()}};
    }
    if (config.xds) {
      const XdsConfig& xds = *config.xds;
      json["xds"] = {
          {"servers", xds.servers},   {"plaintext", xds.plaintext},
          {"delta", xds.delta},       {"id", xds.id},
          {"workload", xds.workload}, {"namespace", xds.namespace_name},
          {"clusters", xds.clusters}, {"connect_timeout_ms", xds.connect_timeout.count()}};
      // In the file's shape, so that the dump parses back (TLS only without plaintext).
      if (!xds.plaintext) {
        json["xds"]["tls"] =
            xds.ca_pem.empty() ? Json{{"ca_file", xds.ca_file}} : Json{{"ca_pem", xds.ca_pem}};
        if (!xds.server_name.empty()) json["xds"]["tls"]["server_name"] = xds.server_name;
      }
    }
    // Set only when chosen: the defaults (any device, GID by address) have no YAML spelling.
    if (!transport.rdma_device.empty()) json["transport"]["rdma_device"] = transport.rdma_device;
    if (transport.gid_index >= 0) json["transport"]["gid_index"] = transport.gid_index;
    // Replace rather than throw on bytes that are not UTF-8: a dump must never fail.
    return json.dump(2, ' ', false, Json::error_handler_t::replace);
  } catch (const std::exception& e) {
    return nlohmann::json{{"error", std::string("cannot render config: ") + e.what()}}.dump(
        2, ' ', false, nlohmann::json::error_handler_t::replace);
  }
}

}  // namespace rdmesh::proxy
