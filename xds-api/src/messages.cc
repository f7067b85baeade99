#include "rdmesh/xds/messages.h"

#include <nlohmann/json.hpp>

#include "fmt/format.h"
#include "json_reader.h"

namespace rdmesh::xds {
namespace {

using detail::isDnsLabel;
using detail::isDnsSubdomain;
using detail::isToken;
using detail::Json;
using detail::ObjectReader;
using Need = ObjectReader::Need;

bool isNamespacedName(std::string_view text) {
  size_t slash = text.find('/');
  return slash != text.npos && isDnsLabel(text.substr(0, slash)) &&
         isDnsSubdomain(text.substr(slash + 1));
}

// Versions and nonces are opaque but printable; empty means "none yet".
bool isOpaque(std::string_view text) {
  return text.empty() || isToken(text);
}

void readTypeUrl(ObjectReader& reader, ResourceType* out) {
  std::string url;
  reader.string("type_url", Need::kRequired, &url);
  if (!reader.ok()) return;
  std::optional<ResourceType> type = resourceTypeFromUrl(url);
  if (!type) {
    std::string known;
    for (std::string_view name : kTypeUrls)
      known += fmt::format("{}{}", known.empty() ? "" : ", ", name);
    reader.fail("type_url", fmt::format("unknown type URL \"{}\" (known: {})",
                                        url.size() > 80 ? url.substr(0, 80) + "..." : url, known));
    return;
  }
  *out = *type;
}

Result<ClientIdentity> parseIdentity(const Json& value, const std::string& path) {
  ObjectReader reader(value, path, {"id", "role", "node_name", "workload", "namespace", "version"});
  ClientIdentity identity;
  reader.string("id", Need::kRequired, &identity.id, isToken, "a client id without spaces");
  size_t role = 0;
  reader.enumeration("role", Need::kRequired, {"sidecar", "node"}, &role);
  identity.role = static_cast<ClientRole>(role);
  reader.string("node_name", Need::kRequired, &identity.node_name, isDnsSubdomain,
                "a DNS-1123 node name");
  if (reader.ok() && identity.role == ClientRole::kSidecar) {
    reader.string("workload", Need::kRequired, &identity.workload, isNamespacedName,
                  "\"<ns>/<pod>\"");
    reader.string("namespace", Need::kRequired, &identity.namespace_name, isDnsLabel,
                  "a DNS-1123 label");
    if (reader.ok() &&
        identity.workload.substr(0, identity.workload.find('/')) != identity.namespace_name) {
      reader.fail("workload", fmt::format("must be in namespace \"{}\"", identity.namespace_name));
    }
  } else if (reader.ok()) {
    for (std::string_view key : {"workload", "namespace"}) {
      if (reader.find(key) != nullptr) reader.fail(key, "only for role \"sidecar\"");
    }
  }
  reader.string("version", Need::kOptional, &identity.version);
  if (!reader.ok()) return reader.status();
  return identity;
}

void readIdentity(ObjectReader& reader, std::optional<ClientIdentity>* out) {
  const Json* node = reader.find("node");
  if (node == nullptr || !reader.ok()) return;
  Result<ClientIdentity> identity = parseIdentity(*node, reader.fieldPath("node"));
  if (!identity.isOk()) return reader.adopt(identity.status());
  *out = std::move(identity).value();
}

void readErrorDetail(ObjectReader& reader, std::optional<ErrorDetail>* out) {
  const Json* value = reader.find("error_detail");
  if (value == nullptr || !reader.ok()) return;
  ObjectReader detail_reader(*value, reader.fieldPath("error_detail"), {"code", "message"});
  ErrorDetail detail;
  int64_t code = 0;
  detail_reader.integer("code", Need::kRequired, INT32_MIN, INT32_MAX, &code);
  detail.code = static_cast<int32_t>(code);
  detail_reader.string("message", Need::kRequired, &detail.message);
  if (!detail_reader.ok()) return reader.adopt(detail_reader.status());
  *out = std::move(detail);
}

Json identityToJson(const ClientIdentity& identity) {
  Json json = {
      {"id", identity.id}, {"role", toString(identity.role)}, {"node_name", identity.node_name}};
  if (identity.role == ClientRole::kSidecar) {
    json["workload"] = identity.workload;
    json["namespace"] = identity.namespace_name;
  }
  if (!identity.version.empty()) json["version"] = identity.version;
  return json;
}

Json errorToJson(const ErrorDetail& detail) {
  return {{"code", detail.code}, {"message", detail.message}};
}

std::string dumpCompact(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

std::string_view toString(ClientRole role) {
  return role == ClientRole::kNode ? "node" : "sidecar";
}

Result<DiscoveryRequest> parseDiscoveryRequest(std::string_view line) {
  Result<Json> json = detail::parseJsonText(line, "DiscoveryRequest");
  if (!json.isOk()) return json.status();
  ObjectReader reader(
      *json, "",
      {"version_info", "node", "resource_names", "type_url", "response_nonce", "error_detail"});
  DiscoveryRequest request;
  readTypeUrl(reader, &request.type);
  reader.string("version_info", Need::kOptional, &request.version_info, isOpaque,
                "a version without spaces");
  readIdentity(reader, &request.node);
  reader.stringList("resource_names", Need::kOptional, &request.resource_names, isToken,
                    "a resource name without spaces");
  reader.string("response_nonce", Need::kOptional, &request.response_nonce, isOpaque,
                "a nonce without spaces");
  readErrorDetail(reader, &request.error_detail);
  if (!reader.ok()) return reader.status();
  return request;
}

Result<DeltaDiscoveryRequest> parseDeltaDiscoveryRequest(std::string_view line) {
  Result<Json> json = detail::parseJsonText(line, "DeltaDiscoveryRequest");
  if (!json.isOk()) return json.status();
  ObjectReader reader(*json, "",
                      {"node", "type_url", "resource_names_subscribe", "resource_names_unsubscribe",
                       "initial_resource_versions", "response_nonce", "error_detail"});
  DeltaDiscoveryRequest request;
  readTypeUrl(reader, &request.type);
  readIdentity(reader, &request.node);
  reader.stringList("resource_names_subscribe", Need::kOptional, &request.resource_names_subscribe,
                    isToken, "a resource name without spaces");
  reader.stringList("resource_names_unsubscribe", Need::kOptional,
                    &request.resource_names_unsubscribe, isToken, "a resource name without spaces");
  reader.stringMap("initial_resource_versions", Need::kOptional, &request.initial_resource_versions,
                   isToken, "a resource name without spaces");
  reader.string("response_nonce", Need::kOptional, &request.response_nonce, isOpaque,
                "a nonce without spaces");
  readErrorDetail(reader, &request.error_detail);
  if (!reader.ok()) return reader.status();
  return request;
}

Result<DiscoveryResponse> parseDiscoveryResponse(std::string_view line) {
  Result<Json> json = detail::parseJsonText(line, "DiscoveryResponse");
  if (!json.isOk()) return json.status();
  ObjectReader reader(*json, "", {"version_info", "resources", "type_url", "nonce"});
  DiscoveryResponse response;
  readTypeUrl(reader, &response.type);
  reader.string("version_info", Need::kRequired, &response.version_info, isToken,
                "a version without spaces");
  reader.string("nonce", Need::kRequired, &response.nonce, isToken, "a nonce without spaces");
  const ResourceType type = response.type;
  reader.objectList("resources", Need::kRequired, &response.resources,
                    [type](const Json& value, const std::string& path) {
                      return parseResource(type, value, path);
                    });
  if (!reader.ok()) return reader.status();
  return response;
}

Result<DeltaDiscoveryResponse> parseDeltaDiscoveryResponse(std::string_view line) {
  Result<Json> json = detail::parseJsonText(line, "DeltaDiscoveryResponse");
  if (!json.isOk()) return json.status();
  ObjectReader reader(
      *json, "", {"system_version_info", "type_url", "nonce", "resources", "removed_resources"});
  DeltaDiscoveryResponse response;
  readTypeUrl(reader, &response.type);
  reader.string("system_version_info", Need::kOptional, &response.system_version_info, isOpaque,
                "a version without spaces");
  reader.string("nonce", Need::kRequired, &response.nonce, isToken, "a nonce without spaces");
  const ResourceType type = response.type;
  reader.objectList(
      "resources", Need::kOptional, &response.resources,
      [type](const Json& value, const std::string& path) -> Result<VersionedResource> {
        ObjectReader item(value, path, {"name", "version", "resource"});
        VersionedResource versioned{.name = {}, .version = {}, .resource = Node{}};
        item.string("name", Need::kRequired, &versioned.name, isToken, "a name without spaces");
        item.string("version", Need::kRequired, &versioned.version, isToken,
                    "a version without spaces");
        const Json* resource = item.find("resource");
        if (item.ok() && resource == nullptr) item.fail("resource", "missing (required)");
        if (!item.ok()) return item.status();
        Result<Resource> parsed = parseResource(type, *resource, item.fieldPath("resource"));
        if (!parsed.isOk()) return parsed.status();
        if (nameOf(*parsed) != versioned.name) {
          item.fail("resource", fmt::format("name \"{}\" differs from \"{}\"", nameOf(*parsed),
                                            versioned.name));
          return item.status();
        }
        versioned.resource = std::move(parsed).value();
        return versioned;
      });
  reader.stringList("removed_resources", Need::kOptional, &response.removed_resources, isToken,
                    "a resource name without spaces");
  if (!reader.ok()) return reader.status();
  return response;
}

std::optional<StreamError> parseStreamError(std::string_view line) {
  Result<Json> json = detail::parseJsonText(line, "error");
  if (!json.isOk() || !json->is_object()) return std::nullopt;
  auto it = json->find("error");
  if (it == json->end() || json->size() != 1) return std::nullopt;
  ObjectReader reader(*it, "error", {"code", "message"});
  StreamError error;
  int64_t code = 0;
  reader.integer("code", Need::kRequired, INT32_MIN, INT32_MAX, &code);
  error.code = static_cast<int32_t>(code);
  reader.string("message", Need::kRequired, &error.message);
  if (!reader.ok()) return std::nullopt;
  return error;
}

std::string serialize(const DiscoveryRequest& request) {
  Json json = {{"version_info", request.version_info},
               {"resource_names", request.resource_names},
               {"type_url", typeUrl(request.type)},
               {"response_nonce", request.response_nonce}};
  if (request.node) json["node"] = identityToJson(*request.node);
  if (request.error_detail) json["error_detail"] = errorToJson(*request.error_detail);
  return dumpCompact(json);
}

std::string serialize(const DeltaDiscoveryRequest& request) {
  Json json = {{"type_url", typeUrl(request.type)},
               {"resource_names_subscribe", request.resource_names_subscribe},
               {"resource_names_unsubscribe", request.resource_names_unsubscribe},
               {"initial_resource_versions", request.initial_resource_versions},
               {"response_nonce", request.response_nonce}};
  if (request.node) json["node"] = identityToJson(*request.node);
  if (request.error_detail) json["error_detail"] = errorToJson(*request.error_detail);
  return dumpCompact(json);
}

std::string serialize(const DiscoveryResponse& response) {
  Json resources = Json::array();
  for (const Resource& resource : response.resources) resources.push_back(toJson(resource));
  return dumpCompact({{"version_info", response.version_info},
                      {"resources", std::move(resources)},
                      {"type_url", typeUrl(response.type)},
                      {"nonce", response.nonce}});
}

std::string serialize(const DeltaDiscoveryResponse& response) {
  Json resources = Json::array();
  for (const VersionedResource& item : response.resources) {
    resources.push_back(
        {{"name", item.name}, {"version", item.version}, {"resource", toJson(item.resource)}});
  }
  return dumpCompact({{"system_version_info", response.system_version_info},
                      {"type_url", typeUrl(response.type)},
                      {"nonce", response.nonce},
                      {"resources", std::move(resources)},
                      {"removed_resources", response.removed_resources}});
}

std::string serialize(const StreamError& error) {
  return dumpCompact({{"error", {{"code", error.code}, {"message", error.message}}}});
}

}  // namespace rdmesh::xds
