// The sidecar's dynamic configuration from rdmesh-xds: subscribes to Nodes, Clusters and
// Listeners, turns each response into a whole new configuration (the file's static resources
// plus the latest accepted dynamic ones), and proposes it to the server. The server's verdict
// is the ACK or the NACK; on a NACK nothing changes and the last good configuration stays.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "config_update.h"
#include "rdmesh/common/stats.h"
#include "rdmesh/xds/client.h"
#include "rdmesh/xds/resources.h"

struct event_base;

namespace rdmesh::proxy {

class XdsConfigSource {
 public:
  // `boot` is the configuration the proxy started with (its static resources and xds section).
  static Result<std::unique_ptr<XdsConfigSource>> create(event_base* base, const ProxyConfig& boot,
                                                         ConfigUpdater& updater, StatsStore& stats);
  void start() { client_->start(); }

  // The "dynamic" section of /config_dump: connection, per-type versions, NACKs, and which
  // listeners, clusters and peers came from xDS.
  std::string dumpJson() const;

  // Exposed for tests: judge (and apply) one response as the client would.
  Status onResources(xds::ResourceType type, const std::string& version,
                     const std::vector<xds::Resource>& resources);

 private:
  XdsConfigSource(const ProxyConfig& boot, ConfigUpdater& updater, StatsStore& stats);

  // The dynamic part in force, as translated from the last accepted responses.
  struct Dynamic {
    std::vector<ListenerConfig> listeners;
    std::vector<ClusterConfig> clusters;
    std::vector<PeerConfig> peers;
  };
  ProxyConfig compose(const Dynamic& dynamic) const;

  ProxyConfig static_;  // the file's resources, with no dynamic ones
  ConfigUpdater& updater_;
  Dynamic dynamic_;
  std::unique_ptr<xds::Client> client_;
};

}  // namespace rdmesh::proxy
