// The client's incremental (delta) protocol state, without any I/O: the resources in force per
// type (name -> version, resource), the requests that open a stream (wildcard or named
// subscriptions, initial_resource_versions so a reconnect skips what the client has), and the
// candidate set each response would produce, committed only when the owner accepts it.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "rdmesh/common/status.h"
#include "rdmesh/xds/messages.h"
#include "rdmesh/xds/sotw_state.h"

namespace rdmesh::xds {

class DeltaState {
 public:
  DeltaState(ClientIdentity identity, std::vector<Subscription> subscriptions);

  std::vector<DeltaDiscoveryRequest> onStreamOpen() const;

  // The whole set of `response.type` the response would leave in force (for the handler to
  // judge), or why the response is not even applicable (NACK it).
  Result<std::vector<Resource>> candidate(const DeltaDiscoveryResponse& response) const;
  // Commits the candidate (verdict OK) or keeps the set in force, and returns the ACK or NACK.
  DeltaDiscoveryRequest onResponse(const DeltaDiscoveryResponse& response, const Status& verdict);
  DeltaDiscoveryRequest onUnreadableResponse(ResourceType type, const std::string& nonce,
                                             const std::string& why);

  bool isSubscribed(ResourceType type) const;
  const std::vector<TypeStatus>& status() const { return status_; }

 private:
  struct Entry {
    std::string version;
    Resource resource;
  };
  using Set = std::map<std::string, Entry>;
  size_t indexOf(ResourceType type) const;
  Set apply(const Set& base, const DeltaDiscoveryResponse& response) const;
  DeltaDiscoveryRequest nack(size_t index, const std::string& version, const std::string& nonce,
                             const std::string& why);

  ClientIdentity identity_;
  std::vector<Subscription> subscriptions_;
  std::vector<TypeStatus> status_;  // parallel to subscriptions_
  std::vector<Set> in_force_;       // parallel to subscriptions_
};

}  // namespace rdmesh::xds
