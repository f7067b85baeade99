#include "rdmesh/xds/bootstrap.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <optional>

#include "h2_stream.h"

namespace rdmesh::xds {

namespace {

// Longer timeouts are certainly typos (the proxy's rule for every duration).
constexpr uint64_t kMaxDurationMs = 24ull * 60 * 60 * 1000;

using Position = YamlPosition;

Position positionOf(const YAML::Node& node, Position fallback) {
  return yamlPositionOf(node, fallback);
}
const char* describeType(const YAML::Node& node) {
  return describeYamlType(node);
}

bool isPrintableWithoutSpaces(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c > ' ' && c < 0x7f; });
}

// "host:port" with a port 1..65535; the host is resolved when connecting.
bool isHostPort(const std::string& text) {
  return isPrintableWithoutSpaces(text) && splitHostPort(text).isOk();
}

class SectionReader {
 public:
  SectionReader(const YAML::Node& section, std::string source, std::string path, Position at)
      : section_(section), source_(std::move(source)), path_(std::move(path)), at_(at) {}

  Status fail(Position at, std::string_view key, std::string_view what) const {
    return invalidArgument(
        fmt::format("{}:{}:{}: {}: {}", source_, at.line, at.column, field(key), what));
  }
  std::string field(std::string_view key) const {
    return key.empty() ? path_ : fmt::format("{}.{}", path_, key);
  }
  Position at() const { return at_; }

  // The key node and value of `key`, if present.
  bool find(std::string_view key, YAML::Node* key_node, YAML::Node* value) const {
    if (!section_.IsMap()) return false;
    for (auto it = section_.begin(); it != section_.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == key) {
        *key_node = it->first;
        *value = it->second;
        return true;
      }
    }
    return false;
  }
  // An empty value ("key:") carries the mark of the next token, so point at the key instead.
  Position valuePosition(const YAML::Node& key_node, const YAML::Node& value) const {
    Position key_at = positionOf(key_node, at_);
    return value.IsNull() ? key_at : positionOf(value, key_at);
  }

  // The scalar text of `key`, or nullopt when absent.
  Status scalar(std::string_view key, bool required, std::optional<std::string>* out,
                Position* where = nullptr) const {
    YAML::Node key_node;
    YAML::Node value;
    if (!find(key, &key_node, &value)) {
      if (required) return fail(at_, key, "missing required field");
      return {};
    }
    Position value_at = valuePosition(key_node, value);
    if (where != nullptr) *where = value_at;
    if (value.IsNull()) return fail(value_at, key, "no value given");
    if (!value.IsScalar()) {
      return fail(value_at, key,
                  fmt::format("expected a single value, got {}", describeType(value)));
    }
    *out = value.Scalar();
    return {};
  }

  Status boolean(std::string_view key, bool* out) const {
    std::optional<std::string> text;
    Position where;
    if (Status s = scalar(key, false, &text, &where); !s || !text) return s;
    if (*text != "true" && *text != "false") {
      return fail(where, key, fmt::format("'{}' is not true or false", *text));
    }
    *out = *text == "true";
    return {};
  }

  Status string(std::string_view key, bool required, std::string* out) const {
    std::optional<std::string> text;
    if (Status s = scalar(key, required, &text); !s) return s;
    if (text) *out = *text;
    return {};
  }

  Status durationMs(std::string_view key, uint64_t min, std::chrono::milliseconds* out) const {
    std::optional<std::string> text;
    Position where;
    if (Status s = scalar(key, false, &text, &where); !s || !text) return s;
    uint64_t ms = 0;
    auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), ms);
    if (text->empty() || ec != std::errc() || end != text->data() + text->size() || ms < min ||
        ms > kMaxDurationMs) {
      return fail(where, key,
                  fmt::format("'{}' is not an integer from {} to {}", *text, min, kMaxDurationMs));
    }
    *out = std::chrono::milliseconds(ms);
    return {};
  }

 private:
  const YAML::Node& section_;
  std::string source_;
  std::string path_;
  Position at_;
};

Status readServers(const SectionReader& r, Bootstrap* out) {
  YAML::Node key_node;
  YAML::Node servers;
  if (!r.find("servers", &key_node, &servers)) {
    return r.fail(r.at(), "servers", "missing required field");
  }
  Position list_at = r.valuePosition(key_node, servers);
  if (!servers.IsNull() && !servers.IsSequence()) {
    return r.fail(list_at, "servers",
                  fmt::format("expected a list, got {}", describeType(servers)));
  }
  size_t index = 0;
  for (auto it = servers.begin(); servers.IsSequence() && it != servers.end(); ++it, ++index) {
    const YAML::Node& item = *it;
    std::string item_path = fmt::format("servers[{}]", index);
    if (!item.IsScalar()) {
      return r.fail(positionOf(item, list_at), item_path,
                    fmt::format("expected \"host:port\", got {}", describeType(item)));
    }
    if (!isHostPort(item.Scalar())) {
      return r.fail(positionOf(item, list_at), item_path,
                    fmt::format("'{}' is not host:port", item.Scalar()));
    }
    out->servers.push_back(item.Scalar());
  }
  if (out->servers.empty()) return r.fail(list_at, "servers", "must list at least one server");
  return {};
}

Status readTls(const SectionReader& r, const std::string& source, Bootstrap* out) {
  YAML::Node key_node;
  YAML::Node tls;
  bool present = r.find("tls", &key_node, &tls);
  if (out->plaintext && present) {
    return r.fail(positionOf(key_node, r.at()), "tls", "not with plaintext: true (choose one)");
  }
  if (out->plaintext) return {};
  if (!present) {
    return r.fail(r.at(), "tls",
                  "missing (TLS needs ca_file; for plaintext h2c say plaintext: true)");
  }
  Position tls_at = r.valuePosition(key_node, tls);
  if (!tls.IsNull() && !tls.IsMap()) {
    return r.fail(tls_at, "tls", fmt::format("expected a mapping, got {}", describeType(tls)));
  }
  for (auto it = tls.begin(); tls.IsMap() && it != tls.end(); ++it) {
    std::string key = it->first.IsScalar() ? it->first.Scalar() : "?";
    if (key != "ca_file" && key != "ca_pem" && key != "server_name") {
      return r.fail(positionOf(it->first, tls_at), "tls." + key, "unknown field");
    }
  }
  SectionReader inner(tls, source, r.field("tls"), tls_at);
  if (Status s = inner.string("ca_file", false, &out->ca_file); !s) return s;
  if (Status s = inner.string("ca_pem", false, &out->ca_pem); !s) return s;
  if (out->ca_file.empty() == out->ca_pem.empty()) {
    return inner.fail(tls_at, "ca_file", "give exactly one of ca_file and ca_pem");
  }
  return inner.string("server_name", false, &out->server_name);
}

}  // namespace

YamlPosition yamlPositionOf(const YAML::Node& node, YamlPosition fallback) {
  YAML::Mark mark = node.Mark();
  if (mark.is_null() || mark.line < 0 || mark.column < 0) return fallback;
  return {mark.line + 1, mark.column + 1};
}

const char* describeYamlType(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Scalar:
      return "a single value";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Undefined:
      break;
  }
  return "an undefined node";
}

Status readBootstrap(const YAML::Node& section, const std::string& source_name,
                     const std::string& path, int line, int column, Bootstrap* out) {
  SectionReader r(section, source_name, path, {line, column});
  if (!section.IsMap()) {
    return r.fail(r.at(), "", fmt::format("expected a mapping, got {}", describeType(section)));
  }
  Bootstrap b;
  if (Status s = readServers(r, &b); !s) return s;
  if (Status s = r.boolean("plaintext", &b.plaintext); !s) return s;
  if (Status s = r.boolean("delta", &b.delta); !s) return s;
  if (Status s = readTls(r, source_name, &b); !s) return s;
  std::optional<std::string> id;
  Position id_at;
  if (Status s = r.scalar("id", false, &id, &id_at); !s) return s;
  if (id) {
    if (id->empty() || !isPrintableWithoutSpaces(*id)) {
      return r.fail(id_at, "id", "must be printable characters without spaces");
    }
    b.id = *id;
  }
  if (Status s = r.durationMs("connect_timeout_ms", 1, &b.connect_timeout); !s) return s;
  *out = std::move(b);
  return {};
}

Status checkBootstrap(const Bootstrap& b, const std::string& path) {
  if (b.servers.empty()) {
    return invalidArgument(fmt::format("{}.servers: must list at least one server", path));
  }
  for (size_t i = 0; i < b.servers.size(); ++i) {
    if (!isHostPort(b.servers[i])) {
      return invalidArgument(
          fmt::format("{}.servers[{}]: '{}' is not host:port", path, i, b.servers[i]));
    }
  }
  if (b.plaintext && (!b.ca_file.empty() || !b.ca_pem.empty() || !b.server_name.empty())) {
    return invalidArgument(fmt::format("{}.tls: not with plaintext: true (choose one)", path));
  }
  if (!b.plaintext && b.ca_file.empty() && b.ca_pem.empty()) {
    return invalidArgument(fmt::format(
        "{}.tls: missing (TLS needs ca_file; for plaintext h2c say plaintext: true)", path));
  }
  if (!isPrintableWithoutSpaces(b.id)) {
    return invalidArgument(fmt::format("{}.id: must be printable characters without spaces", path));
  }
  if (b.connect_timeout.count() < 1 ||
      static_cast<uint64_t>(b.connect_timeout.count()) > kMaxDurationMs) {
    return invalidArgument(fmt::format("{}.connect_timeout_ms: {} is not from 1 to {}", path,
                                       b.connect_timeout.count(), kMaxDurationMs));
  }
  return {};
}

void applyBootstrap(const Bootstrap& b, ClientOptions* options) {
  options->servers = b.servers;
  options->plaintext = b.plaintext;
  options->delta = b.delta;
  options->ca_file = b.ca_file;
  options->ca_pem = b.ca_pem;
  options->server_name = b.server_name;
  options->identity.id = b.id;
  options->connect_timeout = b.connect_timeout;
}

}  // namespace rdmesh::xds
