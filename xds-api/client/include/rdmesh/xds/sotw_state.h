// The client's state-of-the-world protocol state, without any I/O: which requests open a
// stream, and the ACK or NACK that answers each response. Kept apart from the transport so the
// rules (docs/xds.md) are tested on their own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rdmesh/common/status.h"
#include "rdmesh/xds/messages.h"

namespace rdmesh::xds {

struct Subscription {
  ResourceType type = ResourceType::kNode;
  std::vector<std::string> resource_names;  // empty: everything in the client's scope
};

// What the client knows about one subscribed type (also what /config_dump shows).
struct TypeStatus {
  ResourceType type = ResourceType::kNode;
  std::string acked_version;  // last version accepted (the config in force); "" = none yet
  std::string last_nonce;     // of the last response, accepted or not
  std::string rejected_version;
  std::string rejected_message;  // why it was rejected
  uint64_t updates = 0;          // responses received
  uint64_t acks = 0;
  uint64_t nacks = 0;
};

// The error code a NACK carries (google.rpc.Code INVALID_ARGUMENT, as Envoy sends).
inline constexpr int32_t kNackCode = 3;
// A NACK's message, cut to a size that fits one string field of the contract.
std::string boundedNackMessage(const std::string& why);

class SotwState {
 public:
  SotwState(ClientIdentity identity, std::vector<Subscription> subscriptions);

  // The requests that open a new stream, one per type in subscription order. The first carries
  // the identity; each names the version in force, so a server may skip what the client has.
  std::vector<DiscoveryRequest> onStreamOpen() const;

  // The answer to a response the handler judged with `verdict`: an ACK (version_info = the new
  // version) or a NACK (version_info = the last good version, error_detail = why). A response
  // for a type not subscribed is NACKed without asking the handler (see isSubscribed).
  DiscoveryRequest onResponse(const DiscoveryResponse& response, const Status& verdict);
  // The NACK for a response that could not even be parsed (its nonce and type read leniently).
  DiscoveryRequest onUnreadableResponse(ResourceType type, const std::string& nonce,
                                        const std::string& why);

  bool isSubscribed(ResourceType type) const;
  const std::vector<TypeStatus>& status() const { return status_; }

 private:
  TypeStatus* find(ResourceType type);
  DiscoveryRequest nack(TypeStatus& state, const std::string& version, const std::string& nonce,
                        const std::string& why);

  ClientIdentity identity_;
  std::vector<Subscription> subscriptions_;
  std::vector<TypeStatus> status_;  // parallel to subscriptions_
};

}  // namespace rdmesh::xds
