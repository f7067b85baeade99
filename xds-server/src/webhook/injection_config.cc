#include "injection_config.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace rdmesh::xds_server::webhook {
namespace {

constexpr size_t kMaxConfigBytes = 64 * 1024;

// A Kubernetes resource quantity ("100m", "64Mi", "1", "0.5", "2G").
bool isQuantity(const std::string& text) {
  static const std::regex kQuantity(R"(^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$)");
  return std::regex_match(text, kQuantity);
}

// host:port with a DNS name or an IP literal ([v6]:port).
bool isHostPort(const std::string& text) {
  static const std::regex kHostPort(
      R"(^([a-z0-9]([-a-z0-9.]*[a-z0-9])?|\[[0-9a-fA-F:.]+\]):[0-9]{1,5}$)");
  if (!std::regex_match(text, kHostPort)) return false;
  const int port = std::stoi(text.substr(text.rfind(':') + 1));
  return port > 0 && port <= 65535;
}

class Reader {
 public:
  explicit Reader(std::string_view source) : source_(source) {}

  Status fail(const YAML::Node& node, std::string_view key, std::string_view message) const {
    const YAML::Mark mark = node.Mark();
    return invalidArgument(fmt::format("{}:{}: {}: {}", source_, mark.line + 1, key, message));
  }

  Status scalar(const YAML::Node& map, const char* key, bool required, std::string* out) const {
    const YAML::Node node = map[key];
    if (!node) {
      return required ? fail(map, key, "missing") : Status::ok();
    }
    if (!node.IsScalar() || node.Scalar().empty())
      return fail(node, key, "must be a non-empty string");
    *out = node.Scalar();
    return Status::ok();
  }

  Status resources(const YAML::Node& map, nlohmann::json* out) const {
    const YAML::Node node = map["resources"];
    if (!node) return Status::ok();
    if (!node.IsMap()) return fail(node, "resources", "must be a map with requests and/or limits");
    static const std::set<std::string> kSections = {"requests", "limits"};
    static const std::set<std::string> kNames = {"cpu", "memory", "ephemeral-storage"};
    for (const auto& section : node) {
      const std::string name = section.first.as<std::string>();
      if (!kSections.contains(name)) {
        return fail(section.first, "resources",
                    fmt::format("unknown key '{}' (requests, limits)", name));
      }
      if (!section.second.IsMap())
        return fail(section.second, "resources." + name, "must be a map");
      for (const auto& entry : section.second) {
        const std::string resource = entry.first.as<std::string>();
        const std::string path = fmt::format("resources.{}.{}", name, resource);
        if (!kNames.contains(resource)) {
          return fail(entry.first, path, "unknown resource (cpu, memory, ephemeral-storage)");
        }
        if (!entry.second.IsScalar() || !isQuantity(entry.second.Scalar())) {
          return fail(entry.second, path, "must be a Kubernetes quantity such as 100m or 64Mi");
        }
        (*out)[name][resource] = entry.second.Scalar();
      }
    }
    return Status::ok();
  }

 private:
  std::string source_;
};

}  // namespace

Result<InjectionConfig> parseInjectionConfig(std::string_view yaml_text, std::string_view source) {
  if (yaml_text.size() > kMaxConfigBytes) {
    return invalidArgument(fmt::format("{}: larger than {} bytes", source, kMaxConfigBytes));
  }
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return invalidArgument(
        fmt::format("{}:{}: not valid YAML: {}", source, e.mark.line + 1, e.msg));
  }
  if (!root.IsMap()) return invalidArgument(fmt::format("{}: must be a YAML map", source));
  Reader reader(source);
  static const std::set<std::string> kKeys = {"image",         "imagePullPolicy", "xdsAddress",
                                              "xdsServerName", "trustDomain",     "logLevel",
                                              "drainSeconds",  "resources"};
  for (const auto& entry : root) {
    const std::string key = entry.first.Scalar();
    if (!kKeys.contains(key)) {
      return reader.fail(entry.first, key,
                         "unknown key (image, imagePullPolicy, xdsAddress, xdsServerName, "
                         "trustDomain, logLevel, drainSeconds, resources)");
    }
  }
  InjectionConfig config;
  try {
    if (Status s = reader.scalar(root, "image", true, &config.image); !s) return s;
    if (Status s = reader.scalar(root, "imagePullPolicy", false, &config.image_pull_policy); !s) {
      return s;
    }
    if (config.image_pull_policy != "Always" && config.image_pull_policy != "IfNotPresent" &&
        config.image_pull_policy != "Never") {
      return reader.fail(root["imagePullPolicy"], "imagePullPolicy",
                         "must be Always, IfNotPresent or Never");
    }
    if (Status s = reader.scalar(root, "xdsAddress", true, &config.xds_address); !s) return s;
    if (!isHostPort(config.xds_address)) {
      return reader.fail(root["xdsAddress"], "xdsAddress", "must be host:port");
    }
    if (Status s = reader.scalar(root, "xdsServerName", false, &config.xds_server_name); !s) {
      return s;
    }
    if (Status s = reader.scalar(root, "trustDomain", false, &config.trust_domain); !s) return s;
    if (Status s = reader.scalar(root, "logLevel", false, &config.log_level); !s) return s;
    static const std::set<std::string> kLevels = {"trace", "debug", "info", "warn", "error"};
    if (!kLevels.contains(config.log_level)) {
      return reader.fail(root["logLevel"], "logLevel", "must be trace, debug, info, warn or error");
    }
    if (const YAML::Node drain = root["drainSeconds"]; drain) {
      int seconds = -1;
      if (!drain.IsScalar() || !YAML::convert<int>::decode(drain, seconds) || seconds < 0 ||
          seconds > 600) {
        return reader.fail(drain, "drainSeconds", "must be an integer 0..600");
      }
      config.drain_seconds = seconds;
    }
    if (Status s = reader.resources(root, &config.resources); !s) return s;
  } catch (const YAML::Exception& e) {
    return invalidArgument(fmt::format("{}:{}: {}", source, e.mark.line + 1, e.msg));
  }
  if (config.xds_server_name.empty()) {
    config.xds_server_name = config.xds_address.substr(0, config.xds_address.rfind(':'));
  }
  return config;
}

Result<InjectionConfig> loadInjectionConfig(const std::string& path) {
  std::ifstream file(path);
  if (!file) return invalidArgument(fmt::format("{}: cannot read", path));
  std::ostringstream text;
  text << file.rdbuf();
  return parseInjectionConfig(text.str(), path);
}

}  // namespace rdmesh::xds_server::webhook
