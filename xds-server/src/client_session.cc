#include "client_session.h"

#include <algorithm>
#include <iterator>
#include <nlohmann/json.hpp>

#include "fmt/chrono.h"
#include "fmt/format.h"
#include "scope.h"

namespace rdmesh::xds_server {
namespace {

using xds::ResourceType;

// Clusters before the listeners that use them; nodes and workloads first.
constexpr std::array<ResourceType, xds::kResourceTypeCount> kPushOrder = {
    ResourceType::kNode, ResourceType::kWorkload, ResourceType::kService, ResourceType::kCluster,
    ResourceType::kListener};

constexpr std::string_view kWildcard = "*";

uint32_t bit(ResourceType type) {
  return 1u << static_cast<unsigned>(type);
}

std::string jsonString(std::string_view text) {
  return nlohmann::json(text).dump();
}

std::string formatTime(std::chrono::system_clock::time_point at) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}Z",
                     std::chrono::time_point_cast<std::chrono::seconds>(at));
}

// A response line up to its resources array: `{"<version_key>":"...","type_url":"...",
// "nonce":"...","resources":[`.
std::string responseHead(const char* version_key, const std::string& version, ResourceType type,
                         const std::string& nonce) {
  std::string head = R"({")";
  head += version_key;
  head += R"(":")";
  head += version;
  head += R"(","type_url":")";
  head += xds::typeUrl(type);
  head += R"(","nonce":")";
  head += nonce;
  head += R"(","resources":[)";
  return head;
}

}  // namespace

ClientSession::ClientSession(StreamMode mode, CatalogPtr catalog, SessionObserver& observer)
    : mode_(mode), catalog_(std::move(catalog)), observer_(observer) {}

Status ClientSession::checkIdentity(const std::optional<xds::ClientIdentity>& node) {
  if (!identity_) {
    if (!node) return invalidArgument("node: required in the first request of a stream");
    identity_ = *node;
    return Status::ok();
  }
  if (node && *node != *identity_) {
    return invalidArgument("node: differs from the identity of the first request");
  }
  return Status::ok();
}

Status ClientSession::handleRequest(std::string_view line, Clock::time_point now) {
  return mode_ == StreamMode::kDelta ? handleDelta(line, now) : handleSotw(line, now);
}

void ClientSession::acknowledge(ResourceType type, TypeState& state,
                                const std::optional<xds::ErrorDetail>& error,
                                Clock::time_point now) {
  if (error) {
    state.nack = NackRecord{.version = state.sent_version,
                            .message = error->message,
                            .at = std::chrono::system_clock::now()};
    ++state.nacks;
    observer_.onNack(type);
  } else {
    state.acked_version = state.sent_version;
    if (state.inflight_since) observer_.onAck(type, now - *state.inflight_since);
  }
  state.inflight_since.reset();
}

Status ClientSession::handleSotw(std::string_view line, Clock::time_point now) {
  Result<xds::DiscoveryRequest> parsed = xds::parseDiscoveryRequest(line);
  if (!parsed.isOk()) return parsed.status();
  xds::DiscoveryRequest& request = *parsed;
  if (Status status = checkIdentity(request.node); !status.isOk()) return status;
  if (request.error_detail && request.response_nonce.empty()) {
    return invalidArgument("error_detail: a NACK needs the response_nonce it rejects");
  }
  TypeState& st = state(request.type);
  std::sort(request.resource_names.begin(), request.resource_names.end());
  request.resource_names.erase(
      std::unique(request.resource_names.begin(), request.resource_names.end()),
      request.resource_names.end());

  if (!st.subscribed) {
    st.subscribed = true;
    st.names = std::move(request.resource_names);
    markAllSubscribedDirty(now);
    return Status::ok();
  }
  if (!request.response_nonce.empty()) {
    // A reply to an older response (one was sent since): xDS says ignore it.
    if (request.response_nonce != st.sent_nonce) return Status::ok();
    acknowledge(request.type, st, request.error_detail, now);
  }
  if (request.resource_names != st.names) {
    st.names = std::move(request.resource_names);
    markAllSubscribedDirty(now);  // cluster names also move the node and service scopes
  }
  return Status::ok();
}

Status ClientSession::handleDelta(std::string_view line, Clock::time_point now) {
  Result<xds::DeltaDiscoveryRequest> parsed = xds::parseDeltaDiscoveryRequest(line);
  if (!parsed.isOk()) return parsed.status();
  xds::DeltaDiscoveryRequest& request = *parsed;
  if (Status status = checkIdentity(request.node); !status.isOk()) return status;
  if (request.error_detail && request.response_nonce.empty()) {
    return invalidArgument("error_detail: a NACK needs the response_nonce it rejects");
  }
  TypeState& st = state(request.type);
  bool changed = false;
  if (!st.subscribed) {
    st.subscribed = true;
    st.wildcard = request.resource_names_subscribe.empty();
    st.client_versions = std::move(request.initial_resource_versions);
    changed = true;
  } else if (!request.initial_resource_versions.empty()) {
    return invalidArgument(
        "initial_resource_versions: only allowed in the first request for a type");
  }
  if (!request.response_nonce.empty() && request.response_nonce == st.sent_nonce) {
    acknowledge(request.type, st, request.error_detail, now);
  }
  std::set<std::string> names(st.names.begin(), st.names.end());
  for (const std::string& name : request.resource_names_subscribe) {
    if (name == kWildcard) {
      changed |= !st.wildcard;
      st.wildcard = true;
    } else {
      changed |= names.insert(name).second;
    }
  }
  for (const std::string& name : request.resource_names_unsubscribe) {
    if (name == kWildcard) {
      changed |= st.wildcard;
      st.wildcard = false;
    } else {
      changed |= names.erase(name) > 0;
      st.client_versions.erase(name);  // the client dropped it: send it again if re-subscribed
    }
  }
  st.names.assign(names.begin(), names.end());
  if (changed) markAllSubscribedDirty(now);
  return Status::ok();
}

void ClientSession::updateCatalog(CatalogPtr catalog, Clock::time_point changed_at) {
  catalog_ = std::move(catalog);
  markAllSubscribedDirty(changed_at);
}

void ClientSession::markDirty(ResourceType type, Clock::time_point since) {
  TypeState& st = state(type);
  if (!st.dirty_since) st.dirty_since = since;
  dirty_ |= bit(type);
}

void ClientSession::markAllSubscribedDirty(Clock::time_point since) {
  for (ResourceType type : xds::kAllResourceTypes) {
    if (state(type).subscribed) markDirty(type, since);
  }
}

ScopedResourcesPtr ClientSession::scope(ResourceType type) const {
  const TypeState& st = state(type);
  const TypeState& clusters = state(ResourceType::kCluster);
  static const std::vector<std::string> kNone;
  // Delta wildcard = everything in scope; delta explicit names without wildcard narrow it.
  const std::vector<std::string>& names =
      (mode_ == StreamMode::kDelta && st.wildcard) ? kNone : st.names;
  ScopeQuery query{
      .client = *identity_, .type = type, .names = names, .explicit_clusters = clusters.names};
  ScopedResourcesPtr scoped = scopedResources(*catalog_, query);
  if (mode_ == StreamMode::kDelta && !st.wildcard) {
    // Without the wildcard a delta client gets exactly the names it subscribed (if in scope).
    auto narrowed = std::make_shared<ScopedResources>();
    std::copy_if(scoped->names.begin(), scoped->names.end(), std::back_inserter(narrowed->names),
                 [&](const std::string& name) {
                   return std::binary_search(st.names.begin(), st.names.end(), name);
                 });
    narrowed->version = aggregateVersion(*catalog_, type, narrowed->names);
    return narrowed;
  }
  return scoped;
}

std::shared_ptr<const std::string> ClientSession::sharedBody(
    std::string key, const std::function<std::string()>& build) const {
  auto cached = catalog_->joined_bodies.find(key);
  if (cached != catalog_->joined_bodies.end()) {
    if (std::shared_ptr<const std::string> body = cached->second.lock()) return body;
  }
  auto body = std::make_shared<const std::string>(build());
  // Drop expired entries now and then so the map does not grow with dead keys.
  if (catalog_->joined_bodies.size() > 64) {
    std::erase_if(catalog_->joined_bodies,
                  [](const auto& entry) { return entry.second.expired(); });
  }
  catalog_->joined_bodies.insert_or_assign(std::move(key), body);
  return body;
}

ResponseLine ClientSession::nextResponse() {
  for (ResourceType type : kPushOrder) {
    if ((dirty_ & bit(type)) == 0) continue;
    dirty_ &= ~bit(type);
    TypeState& st = state(type);
    ResponseLine line =
        mode_ == StreamMode::kDelta ? deltaResponse(type, st) : sotwResponse(type, st);
    if (!line.empty()) {
      st.inflight_since = st.dirty_since;
      st.dirty_since.reset();
      observer_.onPush(type);
      return line;
    }
    st.dirty_since.reset();
  }
  return {};
}

ResponseLine ClientSession::sotwResponse(ResourceType type, TypeState& st) {
  const ScopedResourcesPtr scoped = scope(type);
  const std::string& version = scoped->version;
  if (st.sent_any && version == st.sent_version) return {};
  // The client rejected exactly this content: sending it again would only be rejected again.
  if (st.nack && st.nack->version == version) return {};
  st.sent_any = true;
  st.sent_version = version;
  st.sent_nonce = nextNonce();

  ResponseLine line;
  line.body = sharedBody(std::string(xds::shortName(type)) + "/" + version, [&] {
    const TypeCatalog& entries = catalog_->of(type);
    std::string body;
    size_t size = 0;
    for (const std::string& name : scoped->names) {
      size += entries.find(name)->second.json.size() + 1;
    }
    body.reserve(size);
    for (size_t i = 0; i < scoped->names.size(); ++i) {
      if (i > 0) body += ',';
      body += entries.find(scoped->names[i])->second.json;
    }
    return body;
  });
  line.head = responseHead("version_info", version, type, st.sent_nonce);
  line.tail = "]}\n";
  return line;
}

ResponseLine ClientSession::deltaResponse(ResourceType type, TypeState& st) {
  const ScopedResourcesPtr scoped = scope(type);
  const std::vector<std::string>& names = scoped->names;
  const std::string& version = scoped->version;
  if (st.nack && st.nack->version == version) return {};
  const TypeCatalog& entries = catalog_->of(type);

  std::vector<std::pair<const std::string*, const CatalogEntry*>> updated;
  VersionHasher updated_key;
  for (const std::string& name : names) {
    const CatalogEntry& entry = entries.find(name)->second;
    auto held = st.client_versions.find(name);
    if (held == st.client_versions.end() || held->second != entry.version) {
      updated.emplace_back(&name, &entry);
      updated_key.add(name);
      updated_key.add(entry.version);
    }
  }
  std::vector<std::string> removed;
  for (const auto& [name, held_version] : st.client_versions) {
    if (!std::binary_search(names.begin(), names.end(), name)) removed.push_back(name);
  }
  // Nothing new: no response, except the first one, which tells the client its initial state
  // (possibly "you already have everything") is complete.
  if (updated.empty() && removed.empty() && st.sent_any) return {};
  st.sent_any = true;
  st.sent_version = version;
  st.sent_nonce = nextNonce();

  ResponseLine line;
  line.head = responseHead("system_version_info", version, type, st.sent_nonce);
  // Clients that hold the same versions get the same updates (every sidecar of a namespace,
  // after a change): the resources part is built once and shared.
  line.body = sharedBody(
      fmt::format("delta/{}/{}/{}", xds::shortName(type), updated.size(), updated_key.hex()), [&] {
        std::string body;
        for (size_t i = 0; i < updated.size(); ++i) {
          const auto& [name, entry] = updated[i];
          if (i > 0) body += ',';
          body += R"({"name":)";
          body += jsonString(*name);
          body += R"(,"version":")";
          body += entry->version;
          body += R"(","resource":)";
          body += entry->json;
          body += '}';
        }
        return body;
      });
  for (const auto& [name, entry] : updated) st.client_versions[*name] = entry->version;
  line.tail = R"(],"removed_resources":[)";
  for (size_t i = 0; i < removed.size(); ++i) {
    if (i > 0) line.tail += ',';
    line.tail += jsonString(removed[i]);
    st.client_versions.erase(removed[i]);
  }
  line.tail += "]}\n";
  return line;
}

nlohmann::json ClientSession::status() const {
  nlohmann::json json = nlohmann::json::object();
  if (identity_) {
    json["id"] = identity_->id;
    json["role"] = xds::toString(identity_->role);
    json["node_name"] = identity_->node_name;
    if (identity_->role == xds::ClientRole::kSidecar) json["workload"] = identity_->workload;
    if (!identity_->version.empty()) json["version"] = identity_->version;
  }
  json["stream"] = mode_ == StreamMode::kDelta ? "delta" : "sotw";
  nlohmann::json types = nlohmann::json::object();
  for (ResourceType type : xds::kAllResourceTypes) {
    const TypeState& st = state(type);
    if (!st.subscribed) continue;
    nlohmann::json entry = {{"sent_version", st.sent_version},
                            {"sent_nonce", st.sent_nonce},
                            {"acked_version", st.acked_version},
                            {"nacks", st.nacks},
                            {"pending", (dirty_ & bit(type)) != 0}};
    if (mode_ == StreamMode::kDelta) {
      entry["wildcard"] = st.wildcard;
      entry["resources"] = st.client_versions.size();
    }
    if (!st.names.empty()) entry["resource_names"] = st.names;
    if (st.nack) {
      entry["last_nack"] = {{"version", st.nack->version},
                            {"message", st.nack->message},
                            {"time", formatTime(st.nack->at)}};
    }
    types[std::string(xds::typeUrl(type))] = std::move(entry);
  }
  json["types"] = std::move(types);
  return json;
}

}  // namespace rdmesh::xds_server
