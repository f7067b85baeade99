#include "registry_file.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "fmt/format.h"

namespace rdmesh::xds_server {
namespace {

using Json = nlohmann::json;

// A file this big is not a registry (a wrong path: /dev/zero, a core file).
constexpr size_t kMaxRegistryFileBytes = 64u << 20;
constexpr int kMaxYamlDepth = 16;

struct Position {
  int line = 1;
  int column = 1;
};

Position positionOf(const YAML::Node& node, Position fallback) {
  YAML::Mark mark = node.Mark();
  if (mark.is_null() || mark.line < 0 || mark.column < 0) return fallback;
  return {mark.line + 1, mark.column + 1};
}

// Converts YAML to the JSON the codec reads, remembering where every field path came from so a
// codec error ("workloads[2].ports[0]: ...") can point at the line.
class YamlToJson {
 public:
  explicit YamlToJson(std::string source) : source_(std::move(source)) {}

  Result<Json> convert(const YAML::Node& node, const std::string& path, Position at, int depth) {
    Position here = positionOf(node, at);
    positions_[path] = here;
    if (depth > kMaxYamlDepth) return fail(here, path, "nested too deeply");
    switch (node.Type()) {
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined:
        return Json(nullptr);
      case YAML::NodeType::Scalar:
        return scalar(node);
      case YAML::NodeType::Sequence: {
        Json list = Json::array();
        for (size_t i = 0; i < node.size(); ++i) {
          Result<Json> item = convert(node[i], fmt::format("{}[{}]", path, i), here, depth + 1);
          if (!item.isOk()) return item;
          list.push_back(std::move(item).value());
        }
        return list;
      }
      case YAML::NodeType::Map: {
        Json object = Json::object();
        for (const auto& entry : node) {
          if (!entry.first.IsScalar()) {
            return fail(positionOf(entry.first, here), path, "keys must be plain names");
          }
          const std::string key = entry.first.Scalar();
          const std::string child = path.empty() ? key : path + "." + key;
          if (object.contains(key)) {
            return fail(positionOf(entry.first, here), child, "duplicate key");
          }
          // An empty value ("key:") has the next token's mark; point at the key instead.
          Position key_position = positionOf(entry.first, here);
          Result<Json> value = convert(entry.second, child, key_position, depth + 1);
          if (entry.second.IsNull()) positions_[child] = key_position;
          if (!value.isOk()) return value;
          object[key] = std::move(value).value();
        }
        return object;
      }
    }
    return Json(nullptr);
  }

  // Codec errors start with the field path; find the deepest recorded prefix of it.
  Status locate(const Status& codec_error) const {
    const std::string& message = codec_error.message();
    std::string path = message.substr(0, message.find(": "));
    Position at{};
    while (true) {
      if (auto it = positions_.find(path); it != positions_.end()) {
        at = it->second;
        break;
      }
      size_t cut = path.find_last_of(".[");
      if (cut == std::string::npos) break;
      path.resize(cut);
    }
    return invalidArgument(fmt::format("{}:{}:{}: {}", source_, at.line, at.column, message));
  }

  Status fail(Position at, const std::string& path, std::string_view message) const {
    return invalidArgument(fmt::format("{}:{}:{}: {}: {}", source_, at.line, at.column,
                                       path.empty() ? "(document)" : path, message));
  }

  void remember(const std::string& path, Position at) { positions_.try_emplace(path, at); }
  Position positionOfPath(const std::string& path) const {
    auto it = positions_.find(path);
    return it == positions_.end() ? Position{} : it->second;
  }

 private:
  // Plain scalars that look like integers, booleans or null become those; quoted ones stay
  // strings (so `"8080"` is a string and `8080` a number, as in JSON).
  static Json scalar(const YAML::Node& node) {
    const std::string& text = node.Scalar();
    if (node.Tag() == "!") return text;  // quoted
    int64_t number = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (!text.empty() && ec == std::errc() && end == text.data() + text.size()) return number;
    if (text == "true") return true;
    if (text == "false") return false;
    if (text == "null" || text == "~") return nullptr;
    return text;
  }

  std::string source_;
  std::map<std::string, Position> positions_;
};

template <typename T, typename Parse>
Status readSection(const Json& document, const char* section, YamlToJson& converter,
                   std::vector<T>* out, Parse parse) {
  auto it = document.find(section);
  if (it == document.end() || it->is_null()) return Status::ok();
  if (!it->is_array()) {
    return converter.fail(converter.positionOfPath(section), section, "expected a list");
  }
  std::set<std::string> names;
  for (size_t i = 0; i < it->size(); ++i) {
    std::string path = fmt::format("{}[{}]", section, i);
    Result<T> item = parse((*it)[i], path);
    if (!item.isOk()) return converter.locate(item.status());
    if (!names.insert(item->name).second) {
      return converter.fail(converter.positionOfPath(path), path,
                            fmt::format("duplicate name \"{}\"", item->name));
    }
    out->push_back(std::move(item).value());
  }
  return Status::ok();
}

}  // namespace

Result<RegistryChange> parseRegistryFile(const std::string& yaml_text,
                                         const std::string& source_name) {
  YamlToJson converter(source_name);
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return invalidArgument(fmt::format("{}:{}:{}: (document): {}", source_name, e.mark.line + 1,
                                       e.mark.column + 1, e.msg));
  }
  Result<Json> document = Json::object();
  try {
    document = converter.convert(root, "", {}, 0);
  } catch (const YAML::Exception& e) {
    return invalidArgument(fmt::format("{}:{}:{}: (document): {}", source_name, e.mark.line + 1,
                                       e.mark.column + 1, e.msg));
  }
  if (!document.isOk()) return document.status();
  if (document->is_null()) return RegistryChange{};  // an empty file is an empty registry
  if (!document->is_object()) {
    return converter.fail({}, "", "expected a mapping with nodes, workloads and services");
  }
  std::string trust_domain = kDefaultTrustDomain;
  for (const auto& [key, value] : document->items()) {
    if (key != "trust_domain" && key != "nodes" && key != "workloads" && key != "services") {
      return converter.fail(converter.positionOfPath(key), key,
                            "unknown key (known: trust_domain, nodes, workloads, services)");
    }
  }
  if (auto it = document->find("trust_domain"); it != document->end()) {
    if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
      return converter.fail(converter.positionOfPath("trust_domain"), "trust_domain",
                            "expected a trust domain name");
    }
    trust_domain = *it;
  }

  RegistryChange change;
  Status status = readSection(
      *document, "nodes", converter, &change.put_nodes,
      [](const Json& value, const std::string& path) { return xds::parseNode(value, path); });
  if (!status.isOk()) return status;
  status = readSection(
      *document, "workloads", converter, &change.put_workloads,
      [&trust_domain](Json value, const std::string& path) {
        if (value.is_object()) {
          auto string_field = [&value](const char* key) -> std::string {
            auto it = value.find(key);
            return it != value.end() && it->is_string() ? it->get<std::string>() : std::string();
          };
          std::string ns = string_field("namespace");
          if (!value.contains("name")) value["name"] = ns + "/" + string_field("pod");
          if (!value.contains("identity")) {
            value["identity"] = fmt::format("spiffe://{}/ns/{}/sa/{}", trust_domain, ns,
                                            string_field("service_account"));
          }
        }
        return xds::parseWorkload(value, path);
      });
  if (!status.isOk()) return status;
  status = readSection(*document, "services", converter, &change.put_services,
                       [](Json value, const std::string& path) {
                         if (value.is_object() && !value.contains("namespace")) {
                           auto name = value.find("name");
                           if (name != value.end() && name->is_string()) {
                             std::string text = *name;
                             value["namespace"] = text.substr(0, text.find('/'));
                           }
                         }
                         return xds::parseService(value, path);
                       });
  if (!status.isOk()) return status;
  return change;
}

Result<RegistryChange> loadRegistryFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return invalidArgument(fmt::format("{}: cannot open registry file", path));
  std::string text;
  char buffer[65536];
  while (file.read(buffer, sizeof buffer) || file.gcount() > 0) {
    text.append(buffer, static_cast<size_t>(file.gcount()));
    if (text.size() > kMaxRegistryFileBytes) {
      return invalidArgument(
          fmt::format("{}: over {} bytes; not a registry file", path, kMaxRegistryFileBytes));
    }
  }
  return parseRegistryFile(text, path);
}

Status RegistryFileSource::start(RegistrySink& sink, std::function<void()> on_synced) {
  Result<RegistryChange> change = loadRegistryFile(path_);
  if (!change.isOk()) return change.status();
  Result<uint64_t> revision = sink.apply(*change);
  if (!revision.isOk()) return revision.status();
  if (on_synced) on_synced();
  return Status::ok();
}

}  // namespace rdmesh::xds_server
