#include "capture_router.h"

namespace rdmesh::proxy {

CaptureRouter::CaptureRouter(const std::vector<ClusterConfig>& clusters) {
  // Service addresses are unique (config validation); an endpoint listed by several clusters
  // routes by the first, and a service address wins over an equal endpoint address.
  for (size_t c = 0; c < clusters.size(); ++c) {
    for (const InetAddress& a : clusters[c].service_addresses) {
      routes_[key(a)] = {CaptureRoute::kService, c, -1};
    }
  }
  for (size_t c = 0; c < clusters.size(); ++c) {
    const auto& endpoints = clusters[c].endpoints;
    for (size_t e = 0; e < endpoints.size(); ++e) {
      routes_.try_emplace(key(endpoints[e].address),
                          CaptureRoute{CaptureRoute::kEndpoint, c, static_cast<int>(e)});
    }
  }
}

std::string CaptureRouter::key(const InetAddress& address) {
  std::string k(address.rawIp());
  uint16_t port = address.port();
  k.push_back(static_cast<char>(port >> 8));
  k.push_back(static_cast<char>(port & 0xff));
  return k;
}

CaptureRoute CaptureRouter::route(const InetAddress& destination) const {
  auto it = routes_.find(key(destination));
  return it == routes_.end() ? CaptureRoute{} : it->second;
}

}  // namespace rdmesh::proxy
