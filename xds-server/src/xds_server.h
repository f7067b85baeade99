// rdmesh-xds's application: routes HTTP/2 requests (discovery streams, registration API,
// status endpoints), follows the registry, and pushes to every client what changed for it.
// Everything runs on one event loop thread.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <unordered_set>

#include "catalog.h"
#include "discovery_handler.h"
#include "h2_connection.h"
#include "histogram.h"
#include "rdmesh/common/stats.h"
#include "registry.h"
#include "unary_handler.h"

struct event;
struct event_base;

namespace rdmesh::xds_server {

struct XdsServerOptions {
  // Bearer token of the registration API; empty disables the API (403).
  std::string registration_token;
  // Registry changes arriving within this window after the first are pushed together.
  std::chrono::milliseconds push_delay{100};
};

class XdsServer : public H2Router, public DiscoveryHost, public SessionObserver {
 public:
  XdsServer(event_base* base, Registry& registry, StatsStore& stats, XdsServerOptions options);
  ~XdsServer() override;
  XdsServer(const XdsServer&) = delete;
  XdsServer& operator=(const XdsServer&) = delete;

  // After registry.start(): publishes the current registry and follows its changes.
  void start();
  // /ready turns 503 and every discovery stream ends (clients move to another replica).
  void drain();
  bool ready() const { return started_ && !draining_ && registry_.ready(); }
  size_t clientCount() const { return handlers_.size(); }

  std::unique_ptr<H2StreamHandler> route(H2Stream& stream) override;

  // DiscoveryHost
  void attach(DiscoveryHandler* handler) override;
  void detach(DiscoveryHandler* handler) override;
  void onBadRequest(const DiscoveryHandler& handler, const Status& error) override;
  // SessionObserver
  void onPush(xds::ResourceType type) override;
  void onAck(xds::ResourceType type, Clock::duration change_to_ack) override;
  void onNack(xds::ResourceType type) override;

  std::string syncz() const;
  std::string metrics() const;
  std::string registryDump() const;

 private:
  static void onPushTimer(int fd, short what, void* arg);
  static void onTrimTimer(int fd, short what, void* arg);
  void onRegistryChange();
  void publish();
  HttpReply handleRegistration(const H2Request& request, std::string_view body);
  HttpReply handleStatus(const H2Request& request);

  event_base* base_;
  Registry& registry_;
  StatsStore& stats_;
  XdsServerOptions options_;
  CatalogPtr catalog_;
  std::unordered_set<DiscoveryHandler*> handlers_;
  event* push_timer_ = nullptr;
  // Gives memory of finished pushes back to the kernel (glibc keeps freed heap otherwise: a
  // push of 100 KB to each of 1,000 clients would stay in RSS).
  event* trim_timer_ = nullptr;
  uint64_t pushes_at_last_trim_ = 0;
  std::optional<Clock::time_point> first_unpublished_change_;
  bool started_ = false;
  bool draining_ = false;
  LatencyHistogram push_latency_;

  Stat& connected_clients_;
  Stat& pushes_total_;
  Stat& acks_total_;
  Stat& nacks_total_;
  Stat& bad_requests_total_;
  Stat& registrations_total_;
  Stat& registry_revision_;
};

}  // namespace rdmesh::xds_server
