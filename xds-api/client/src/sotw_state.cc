#include "rdmesh/xds/sotw_state.h"

#include <algorithm>

namespace rdmesh::xds {

namespace {
constexpr size_t kMaxNackMessageBytes = 1024;
}  // namespace

std::string boundedNackMessage(const std::string& why) {
  return why.size() > kMaxNackMessageBytes ? why.substr(0, kMaxNackMessageBytes - 3) + "..." : why;
}

SotwState::SotwState(ClientIdentity identity, std::vector<Subscription> subscriptions)
    : identity_(std::move(identity)), subscriptions_(std::move(subscriptions)) {
  for (const Subscription& s : subscriptions_) {
    TypeStatus status;
    status.type = s.type;
    status_.push_back(std::move(status));
  }
}

std::vector<DiscoveryRequest> SotwState::onStreamOpen() const {
  std::vector<DiscoveryRequest> requests;
  for (size_t i = 0; i < subscriptions_.size(); ++i) {
    DiscoveryRequest request;
    request.type = subscriptions_[i].type;
    request.resource_names = subscriptions_[i].resource_names;
    request.version_info = status_[i].acked_version;
    if (i == 0) request.node = identity_;
    requests.push_back(std::move(request));
  }
  return requests;
}

bool SotwState::isSubscribed(ResourceType type) const {
  return std::any_of(subscriptions_.begin(), subscriptions_.end(),
                     [type](const Subscription& s) { return s.type == type; });
}

TypeStatus* SotwState::find(ResourceType type) {
  auto it = std::find_if(status_.begin(), status_.end(),
                         [type](const TypeStatus& s) { return s.type == type; });
  return it == status_.end() ? nullptr : &*it;
}

DiscoveryRequest SotwState::onResponse(const DiscoveryResponse& response, const Status& verdict) {
  TypeStatus* state = find(response.type);
  if (state == nullptr) {
    DiscoveryRequest request;
    request.type = response.type;
    request.response_nonce = response.nonce;
    request.error_detail = ErrorDetail{kNackCode, "type not subscribed"};
    return request;
  }
  ++state->updates;
  state->last_nonce = response.nonce;
  if (!verdict) return nack(*state, response.version_info, response.nonce, verdict.message());
  ++state->acks;
  state->acked_version = response.version_info;
  DiscoveryRequest ack;
  ack.type = response.type;
  ack.version_info = response.version_info;
  ack.response_nonce = response.nonce;
  ack.resource_names = subscriptions_[static_cast<size_t>(state - status_.data())].resource_names;
  return ack;
}

DiscoveryRequest SotwState::onUnreadableResponse(ResourceType type, const std::string& nonce,
                                                 const std::string& why) {
  TypeStatus* state = find(type);
  if (state == nullptr) {
    DiscoveryRequest request;
    request.type = type;
    request.response_nonce = nonce;
    request.error_detail = ErrorDetail{kNackCode, why};
    return request;
  }
  ++state->updates;
  state->last_nonce = nonce;
  return nack(*state, "", nonce, why);
}

DiscoveryRequest SotwState::nack(TypeStatus& state, const std::string& version,
                                 const std::string& nonce, const std::string& why) {
  ++state.nacks;
  state.rejected_version = version;
  state.rejected_message = boundedNackMessage(why);
  DiscoveryRequest request;
  request.type = state.type;
  request.version_info = state.acked_version;  // the last good one stays in force
  request.response_nonce = nonce;
  request.resource_names =
      subscriptions_[static_cast<size_t>(&state - status_.data())].resource_names;
  request.error_detail = ErrorDetail{kNackCode, state.rejected_message};
  return request;
}

}  // namespace rdmesh::xds
