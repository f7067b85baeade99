// The sidecar's admin HTTP endpoint (libevent evhttp, main thread):
// /ready, /stats, /stats/prometheus, /config_dump, /quitquitquit.
#pragma once

#include <event2/util.h>

#include <functional>
#include <memory>
#include <string>

#include "rdmesh/common/address.h"
#include "rdmesh/common/stats.h"
#include "rdmesh/common/status.h"

struct event;
struct event_base;
struct evhttp;
struct evhttp_request;

namespace rdmesh::proxy {

class AdminServer {
 public:
  struct Handlers {
    std::function<bool()> ready;               // /ready: 200 "LIVE" when true, else 503
    std::function<std::string()> config_dump;  // /config_dump body (JSON)
    std::function<void()> quit;                // /quitquitquit (POST or GET): start a drain
  };

  AdminServer(event_base* base, StatsStore& stats, Handlers handlers);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  Status listen(const InetAddress& address);
  uint16_t boundPort() const { return bound_port_; }
  // A second listener that answers GET /ready and nothing else: for the kubelet, which probes
  // the pod IP, while the full endpoint stays on loopback.
  Status listenProbe(const InetAddress& address);
  uint16_t probePort() const { return probe_port_; }

 private:
  static void onRequest(evhttp_request* request, void* arg);
  static void onProbeRequest(evhttp_request* request, void* arg);
  void replyReady(evhttp_request* request);
  Result<evhttp*> bind(const InetAddress& address, void (*callback)(evhttp_request*, void*),
                       uint16_t* bound_port);
  static void onQuitReplySent(evhttp_request* request, void* arg);
  static void onQuitTimer(evutil_socket_t, short, void* arg);
  void handle(evhttp_request* request);

  event_base* base_;
  StatsStore& stats_;
  Handlers handlers_;
  evhttp* http_ = nullptr;
  uint16_t bound_port_ = 0;
  evhttp* probe_http_ = nullptr;
  uint16_t probe_port_ = 0;
  // Calls handlers_.quit outside libevent's HTTP callbacks (quit may destroy this server).
  event* quit_timer_ = nullptr;
};

}  // namespace rdmesh::proxy
