#include "rdmesh/xds/delta_state.h"

#include <fmt/format.h>

#include <algorithm>

namespace rdmesh::xds {

DeltaState::DeltaState(ClientIdentity identity, std::vector<Subscription> subscriptions)
    : identity_(std::move(identity)),
      subscriptions_(std::move(subscriptions)),
      in_force_(subscriptions_.size()) {
  for (const Subscription& s : subscriptions_) {
    TypeStatus status;
    status.type = s.type;
    status_.push_back(std::move(status));
  }
}

std::vector<DeltaDiscoveryRequest> DeltaState::onStreamOpen() const {
  std::vector<DeltaDiscoveryRequest> requests;
  for (size_t i = 0; i < subscriptions_.size(); ++i) {
    DeltaDiscoveryRequest request;
    request.type = subscriptions_[i].type;
    request.resource_names_subscribe = subscriptions_[i].resource_names;  // empty = wildcard
    for (const auto& [name, entry] : in_force_[i]) {
      request.initial_resource_versions[name] = entry.version;
    }
    if (i == 0) request.node = identity_;
    requests.push_back(std::move(request));
  }
  return requests;
}

bool DeltaState::isSubscribed(ResourceType type) const {
  return indexOf(type) < subscriptions_.size();
}

size_t DeltaState::indexOf(ResourceType type) const {
  auto it = std::find_if(subscriptions_.begin(), subscriptions_.end(),
                         [type](const Subscription& s) { return s.type == type; });
  return static_cast<size_t>(it - subscriptions_.begin());
}

DeltaState::Set DeltaState::apply(const Set& base, const DeltaDiscoveryResponse& response) const {
  Set next = base;
  for (const std::string& name : response.removed_resources) next.erase(name);
  for (const VersionedResource& r : response.resources) {
    next.insert_or_assign(r.name, Entry{r.version, r.resource});
  }
  return next;
}

Result<std::vector<Resource>> DeltaState::candidate(const DeltaDiscoveryResponse& response) const {
  size_t index = indexOf(response.type);
  if (index >= subscriptions_.size()) return invalidArgument("type not subscribed");
  for (const VersionedResource& r : response.resources) {
    if (typeOf(r.resource) != response.type) {
      return invalidArgument(
          fmt::format("resource {} is not a {}", r.name, shortName(response.type)));
    }
    if (nameOf(r.resource) != r.name) {
      return invalidArgument(
          fmt::format("resource named \"{}\" carries \"{}\"", r.name, nameOf(r.resource)));
    }
  }
  std::vector<Resource> resources;
  for (auto& [name, entry] : apply(in_force_[index], response)) resources.push_back(entry.resource);
  return resources;
}

DeltaDiscoveryRequest DeltaState::onResponse(const DeltaDiscoveryResponse& response,
                                             const Status& verdict) {
  size_t index = indexOf(response.type);
  if (index >= subscriptions_.size()) {
    DeltaDiscoveryRequest request;
    request.type = response.type;
    request.response_nonce = response.nonce;
    request.error_detail = ErrorDetail{kNackCode, "type not subscribed"};
    return request;
  }
  TypeStatus& state = status_[index];
  ++state.updates;
  state.last_nonce = response.nonce;
  if (!verdict) return nack(index, response.system_version_info, response.nonce, verdict.message());
  ++state.acks;
  in_force_[index] = apply(in_force_[index], response);
  state.acked_version = response.system_version_info;
  DeltaDiscoveryRequest ack;
  ack.type = response.type;
  ack.response_nonce = response.nonce;
  return ack;
}

DeltaDiscoveryRequest DeltaState::onUnreadableResponse(ResourceType type, const std::string& nonce,
                                                       const std::string& why) {
  size_t index = indexOf(type);
  if (index >= subscriptions_.size()) {
    DeltaDiscoveryRequest request;
    request.type = type;
    request.response_nonce = nonce;
    request.error_detail = ErrorDetail{kNackCode, boundedNackMessage(why)};
    return request;
  }
  ++status_[index].updates;
  status_[index].last_nonce = nonce;
  return nack(index, "", nonce, why);
}

DeltaDiscoveryRequest DeltaState::nack(size_t index, const std::string& version,
                                       const std::string& nonce, const std::string& why) {
  TypeStatus& state = status_[index];
  ++state.nacks;
  state.rejected_version = version;
  state.rejected_message = boundedNackMessage(why);
  DeltaDiscoveryRequest request;
  request.type = state.type;
  request.response_nonce = nonce;
  request.error_detail = ErrorDetail{kNackCode, state.rejected_message};
  return request;
}

}  // namespace rdmesh::xds
