#include "xds_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

namespace rdmesh::node {

namespace {

constexpr std::array<std::string_view, 2> kNodeKeys = {"registration_token_file", "trust_domain"};

std::string locate(const std::string& source, const YAML::Node& at, int line, int column) {
  YAML::Mark m = at.Mark();
  if (!m.is_null() && m.line >= 0) {
    line = m.line + 1;
    column = m.column + 1;
  }
  return fmt::format("{}:{}:{}", source, line, column);
}

bool isKnown(const std::string& key) {
  auto in = [&](const auto& keys) {
    return std::find(keys.begin(), keys.end(), key) != keys.end();
  };
  return in(xds::kBootstrapKeys) || in(kNodeKeys);
}

// A trust domain is a DNS-like name: lowercase letters, digits, '.', '-', '_'.
bool isTrustDomain(std::string_view text) {
  return !text.empty() && text.size() <= 255 && std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
  });
}

}  // namespace

Status readNodeXdsSection(const YAML::Node& section, const std::string& source_name, int line,
                          int column, NodeXdsConfig* out) {
  if (section.IsMap()) {
    for (auto it = section.begin(); it != section.end(); ++it) {
      std::string key = it->first.IsScalar() ? it->first.Scalar() : "?";
      if (!isKnown(key)) {
        return invalidArgument(fmt::format("{}: xds.{}: unknown field",
                                           locate(source_name, it->first, line, column), key));
      }
    }
  }
  NodeXdsConfig config;
  if (Status s = xds::readBootstrap(section, source_name, "xds", line, column, &config); !s) {
    return s;
  }
  for (auto [key, target] : {std::pair{"registration_token_file", &config.registration_token_file},
                             std::pair{"trust_domain", &config.trust_domain}}) {
    YAML::Node value = section[key];
    if (!value) continue;
    if (!value.IsScalar() || value.Scalar().empty()) {
      return invalidArgument(fmt::format("{}: xds.{}: expected a non-empty value",
                                         locate(source_name, value, line, column), key));
    }
    *target = value.Scalar();
  }
  if (!isTrustDomain(config.trust_domain)) {
    return invalidArgument(fmt::format(
        "{}: xds.trust_domain: '{}' is not a trust domain (lowercase letters, digits, '.', '-')",
        locate(source_name, section["trust_domain"], line, column), config.trust_domain));
  }
  *out = std::move(config);
  return {};
}

Status finishNodeXdsConfig(const std::string& node_name, NodeXdsConfig* c) {
  if (Status s = xds::checkBootstrap(*c, "xds"); !s) return s;
  if (!c->registration_token_file.empty() && c->registration_token_file.front() != '/') {
    return invalidArgument(fmt::format("xds.registration_token_file: '{}' must be an absolute path",
                                       c->registration_token_file));
  }
  if (!isTrustDomain(c->trust_domain)) {
    return invalidArgument(
        fmt::format("xds.trust_domain: '{}' is not a trust domain", c->trust_domain));
  }
  if (c->id.empty()) c->id = "node~" + node_name;
  return {};
}

void applyNodeXdsFlags(const NodeXdsFlags& flags, std::optional<NodeXdsConfig>* config) {
  bool any = !flags.servers.empty() || flags.plaintext || flags.delta || flags.ca_file ||
             flags.server_name || flags.registration_token_file;
  if (!any) return;
  if (!config->has_value()) config->emplace();
  NodeXdsConfig& c = **config;
  if (!flags.servers.empty()) c.servers = flags.servers;
  if (flags.plaintext) c.plaintext = *flags.plaintext;
  if (flags.delta) c.delta = *flags.delta;
  if (flags.ca_file) c.ca_file = *flags.ca_file;
  if (flags.server_name) c.server_name = *flags.server_name;
  if (flags.registration_token_file) c.registration_token_file = *flags.registration_token_file;
}

}  // namespace rdmesh::node
