// Resource codec. Checks follow Kubernetes' naming rules where the names come from Kubernetes
// (namespaces, pods, nodes, service accounts) so a registry entry is never less valid than what
// the API server would have accepted.
#include "rdmesh/xds/resources.h"

#include <nlohmann/json.hpp>

#include "fmt/format.h"
#include "json_reader.h"

namespace rdmesh::xds {
namespace {

using detail::isDnsLabel;
using detail::isDnsSubdomain;
using detail::isIp;
using detail::isIpPort;
using detail::isToken;
using detail::Json;
using detail::ObjectReader;
using Need = ObjectReader::Need;

constexpr uint32_t kMaxConnectTimeoutMs = 24u * 60 * 60 * 1000;

// "<ns>/<name>" keys of namespaced objects.
bool isNamespacedName(std::string_view text) {
  size_t slash = text.find('/');
  return slash != text.npos && isDnsLabel(text.substr(0, slash)) &&
         isDnsSubdomain(text.substr(slash + 1));
}

bool isLabelKey(std::string_view text) {
  return isToken(text) && text.size() <= 317;
}

void checkNamespacedName(ObjectReader& reader, const std::string& name,
                         const std::string& namespace_name, const std::string& local_name) {
  if (reader.ok() && name != namespace_name + "/" + local_name) {
    reader.fail("name",
                fmt::format("must be \"{}/{}\" (namespace/name)", namespace_name, local_name));
  }
}

// Serializes without ever throwing: strings that reached us from YAML may not be UTF-8.
std::string dumpCompact(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

ResourceType typeOf(const Resource& resource) {
  return static_cast<ResourceType>(resource.index());
}

const std::string& nameOf(const Resource& resource) {
  return std::visit([](const auto& r) -> const std::string& { return r.name; }, resource);
}

std::string_view toString(FabricKind kind) {
  switch (kind) {
    case FabricKind::kVerbs:
      return "verbs";
    case FabricKind::kShm:
      return "shm";
    case FabricKind::kTcp:
      break;
  }
  return "tcp";
}

std::string_view toString(LbPolicy policy) {
  return policy == LbPolicy::kLeastRequest ? "least_request" : "round_robin";
}

std::string_view toString(ListenerDirection direction) {
  switch (direction) {
    case ListenerDirection::kInbound:
      return "inbound";
    case ListenerDirection::kCapture:
      return "capture";
    case ListenerDirection::kOutbound:
      break;
  }
  return "outbound";
}

Result<Node> parseNode(const Json& value, const std::string& path) {
  ObjectReader reader(value, path, {"name", "addresses", "fabric", "session_address", "rdma"});
  Node node;
  reader.string("name", Need::kRequired, &node.name, isDnsSubdomain, "a DNS-1123 node name");
  reader.stringList("addresses", Need::kRequired, &node.addresses, isIp, "an IP address");
  if (reader.ok() && node.addresses.empty()) reader.fail("addresses", "needs at least one address");
  size_t fabric = 0;
  reader.enumeration("fabric", Need::kRequired, {"verbs", "tcp", "shm"}, &fabric);
  node.fabric = static_cast<FabricKind>(fabric);
  reader.string("session_address", Need::kRequired, &node.session_address, isIpPort, "\"ip:port\"");
  if (const Json* rdma = reader.find("rdma"); rdma != nullptr && reader.ok()) {
    ObjectReader rdma_reader(*rdma, reader.fieldPath("rdma"), {"gid"});
    RdmaInfo info;
    rdma_reader.optionalString("gid", &info.gid);
    if (!rdma_reader.ok()) return rdma_reader.status();
    node.rdma = std::move(info);
  }
  if (!reader.ok()) return reader.status();
  return node;
}

Result<Workload> parseWorkload(const Json& value, const std::string& path) {
  ObjectReader reader(value, path,
                      {"name", "namespace", "pod", "uid", "ip", "node", "identity",
                       "service_account", "ports", "labels"});
  Workload workload;
  reader.string("name", Need::kRequired, &workload.name, isNamespacedName, "\"<ns>/<pod>\"");
  reader.string("namespace", Need::kRequired, &workload.namespace_name, isDnsLabel,
                "a DNS-1123 label");
  reader.string("pod", Need::kRequired, &workload.pod, isDnsSubdomain, "a DNS-1123 pod name");
  checkNamespacedName(reader, workload.name, workload.namespace_name, workload.pod);
  reader.optionalString("uid", &workload.uid, isToken, "a uid without spaces");
  reader.stringList("ip", Need::kRequired, &workload.ips, isIp, "an IP address");
  if (reader.ok() && workload.ips.empty()) reader.fail("ip", "needs at least one address");
  reader.string("node", Need::kRequired, &workload.node, isDnsSubdomain, "a DNS-1123 node name");
  reader.string("service_account", Need::kRequired, &workload.service_account, isDnsSubdomain,
                "a DNS-1123 service account name");
  reader.string(
      "identity", Need::kRequired, &workload.identity,
      [](std::string_view text) { return text.rfind("spiffe://", 0) == 0 && isToken(text); },
      "\"spiffe://<trust domain>/ns/<ns>/sa/<sa>\"");
  if (reader.ok()) {
    std::string suffix =
        fmt::format("/ns/{}/sa/{}", workload.namespace_name, workload.service_account);
    const std::string& id = workload.identity;
    bool matches = id.size() > suffix.size() + 9 &&
                   id.compare(id.size() - suffix.size(), suffix.size(), suffix) == 0 &&
                   id.find('/', 9) == id.size() - suffix.size();
    if (!matches) {
      reader.fail("identity", fmt::format("expected \"spiffe://<trust domain>{}\"", suffix));
    }
  }
  if (const Json* ports = reader.find("ports"); ports != nullptr && reader.ok()) {
    if (!ports->is_array()) {
      reader.fail("ports", fmt::format("expected list, got {}", detail::describe(*ports)));
    } else if (ports->size() > 65535) {
      reader.fail("ports", "more than 65535 ports");
    } else {
      for (size_t i = 0; i < ports->size() && reader.ok(); ++i) {
        const Json& port = (*ports)[i];
        if (!port.is_number_integer() || port.get<int64_t>() < 1 || port.get<int64_t>() > 65535) {
          reader.fail(detail::indexPath("ports", i), "expected a port number 1..65535");
        } else {
          workload.ports.push_back(port.get<uint16_t>());
        }
      }
    }
  }
  reader.stringMap("labels", Need::kOptional, &workload.labels, isLabelKey, "a label key");
  if (!reader.ok()) return reader.status();
  return workload;
}

namespace {

Result<ServicePort> parseServicePort(const Json& value, const std::string& path) {
  ObjectReader reader(value, path, {"name", "port", "target_port", "protocol"});
  ServicePort port;
  reader.optionalString("name", &port.name, isDnsLabel, "a DNS-1123 label");
  reader.port("port", Need::kRequired, &port.port);
  port.target_port = port.port;
  reader.port("target_port", Need::kOptional, &port.target_port);
  reader.string(
      "protocol", Need::kOptional, &port.protocol,
      [](std::string_view text) { return text == "TCP"; }, "\"TCP\"");
  if (!reader.ok()) return reader.status();
  return port;
}

Result<ClusterEndpoint> parseEndpoint(const Json& value, const std::string& path) {
  ObjectReader reader(value, path, {"node", "address", "workload"});
  ClusterEndpoint endpoint;
  reader.string("node", Need::kRequired, &endpoint.node, isDnsSubdomain, "a DNS-1123 node name");
  reader.string("address", Need::kRequired, &endpoint.address, isIpPort, "\"ip:port\"");
  reader.string("workload", Need::kRequired, &endpoint.workload, isNamespacedName,
                "\"<ns>/<pod>\"");
  if (!reader.ok()) return reader.status();
  return endpoint;
}

}  // namespace

Result<Service> parseService(const Json& value, const std::string& path) {
  ObjectReader reader(value, path, {"name", "namespace", "cluster_ips", "ports", "selector"});
  Service service;
  reader.string("name", Need::kRequired, &service.name, isNamespacedName, "\"<ns>/<service>\"");
  reader.string("namespace", Need::kRequired, &service.namespace_name, isDnsLabel,
                "a DNS-1123 label");
  if (reader.ok()) {
    std::string local = service.name.substr(service.name.find('/') + 1);
    if (!isDnsLabel(local)) reader.fail("name", "service name must be a DNS-1123 label");
    checkNamespacedName(reader, service.name, service.namespace_name, local);
  }
  reader.stringList("cluster_ips", Need::kOptional, &service.cluster_ips, isIp, "an IP address");
  reader.objectList("ports", Need::kRequired, &service.ports, parseServicePort);
  if (reader.ok() && service.ports.empty()) reader.fail("ports", "needs at least one port");
  reader.stringMap("selector", Need::kOptional, &service.selector, isLabelKey, "a label key");
  if (!reader.ok()) return reader.status();
  return service;
}

Result<Listener> parseListener(const Json& value, const std::string& path) {
  ObjectReader reader(value, path, {"name", "direction", "address", "cluster", "port", "target"});
  Listener listener;
  reader.string("name", Need::kRequired, &listener.name, isToken, "a name without spaces");
  size_t direction = 0;
  reader.enumeration("direction", Need::kRequired, {"outbound", "inbound", "capture"}, &direction);
  listener.direction = static_cast<ListenerDirection>(direction);
  if (!reader.ok()) return reader.status();

  auto forbid = [&](std::string_view key, std::string_view which) {
    if (reader.find(key) != nullptr) reader.fail(key, fmt::format("only for {} listeners", which));
  };
  switch (listener.direction) {
    case ListenerDirection::kOutbound:
    case ListenerDirection::kCapture: {
      std::string address;
      reader.string("address", Need::kRequired, &address, isIpPort, "\"ip:port\"");
      listener.address = address;
      if (listener.direction == ListenerDirection::kOutbound) {
        std::string cluster;
        reader.string("cluster", Need::kRequired, &cluster, isToken, "a cluster name");
        listener.cluster = cluster;
      } else {
        forbid("cluster", "outbound");
      }
      forbid("port", "inbound");
      forbid("target", "inbound");
      break;
    }
    case ListenerDirection::kInbound: {
      uint16_t port = 0;
      reader.port("port", Need::kRequired, &port);
      listener.port = port;
      std::string target = fmt::format("127.0.0.1:{}", port);
      reader.string("target", Need::kOptional, &target, isIpPort, "\"ip:port\"");
      listener.target = target;
      forbid("address", "outbound and capture");
      forbid("cluster", "outbound");
      break;
    }
  }
  if (!reader.ok()) return reader.status();
  return listener;
}

Result<Cluster> parseCluster(const Json& value, const std::string& path) {
  ObjectReader reader(
      value, path, {"name", "lb_policy", "connect_timeout_ms", "service_addresses", "endpoints"});
  Cluster cluster;
  reader.string("name", Need::kRequired, &cluster.name, isToken, "a name without spaces");
  size_t policy = 0;
  reader.enumeration("lb_policy", Need::kOptional, {"round_robin", "least_request"}, &policy);
  cluster.lb_policy = static_cast<LbPolicy>(policy);
  int64_t timeout = cluster.connect_timeout_ms;
  reader.integer("connect_timeout_ms", Need::kOptional, 1, kMaxConnectTimeoutMs, &timeout);
  cluster.connect_timeout_ms = static_cast<uint32_t>(timeout);
  reader.stringList("service_addresses", Need::kOptional, &cluster.service_addresses, isIpPort,
                    "\"ip:port\"");
  reader.objectList("endpoints", Need::kOptional, &cluster.endpoints, parseEndpoint);
  if (!reader.ok()) return reader.status();
  return cluster;
}

Result<Resource> parseResource(ResourceType type, const Json& value, const std::string& path) {
  auto wrap = [](auto result) -> Result<Resource> {
    if (!result.isOk()) return result.status();
    return Resource(std::move(result).value());
  };
  switch (type) {
    case ResourceType::kNode:
      return wrap(parseNode(value, path));
    case ResourceType::kWorkload:
      return wrap(parseWorkload(value, path));
    case ResourceType::kService:
      return wrap(parseService(value, path));
    case ResourceType::kListener:
      return wrap(parseListener(value, path));
    case ResourceType::kCluster:
      return wrap(parseCluster(value, path));
  }
  return internalError("unknown resource type");
}

Result<Resource> parseResourceText(ResourceType type, std::string_view text) {
  Result<Json> json = detail::parseJsonText(text, shortName(type));
  if (!json.isOk()) return json.status();
  return parseResource(type, *json, "");
}

Json toJson(const Node& node) {
  Json json = {{"name", node.name},
               {"addresses", node.addresses},
               {"fabric", toString(node.fabric)},
               {"session_address", node.session_address}};
  if (node.rdma) {
    Json rdma = Json::object();
    if (node.rdma->gid) rdma["gid"] = *node.rdma->gid;
    json["rdma"] = std::move(rdma);
  }
  return json;
}

Json toJson(const Workload& workload) {
  Json json = {{"name", workload.name},
               {"namespace", workload.namespace_name},
               {"pod", workload.pod},
               {"ip", workload.ips},
               {"node", workload.node},
               {"identity", workload.identity},
               {"service_account", workload.service_account},
               {"ports", workload.ports},
               {"labels", workload.labels}};
  if (workload.uid) json["uid"] = *workload.uid;
  return json;
}

Json toJson(const Service& service) {
  Json ports = Json::array();
  for (const ServicePort& port : service.ports) {
    Json entry = {
        {"port", port.port}, {"target_port", port.target_port}, {"protocol", port.protocol}};
    if (port.name) entry["name"] = *port.name;
    ports.push_back(std::move(entry));
  }
  return {{"name", service.name},
          {"namespace", service.namespace_name},
          {"cluster_ips", service.cluster_ips},
          {"ports", std::move(ports)},
          {"selector", service.selector}};
}

Json toJson(const Listener& listener) {
  Json json = {{"name", listener.name}, {"direction", toString(listener.direction)}};
  if (listener.address) json["address"] = *listener.address;
  if (listener.cluster) json["cluster"] = *listener.cluster;
  if (listener.port) json["port"] = *listener.port;
  if (listener.target) json["target"] = *listener.target;
  return json;
}

Json toJson(const Cluster& cluster) {
  Json endpoints = Json::array();
  for (const ClusterEndpoint& endpoint : cluster.endpoints) {
    endpoints.push_back(
        {{"node", endpoint.node}, {"address", endpoint.address}, {"workload", endpoint.workload}});
  }
  return {{"name", cluster.name},
          {"lb_policy", toString(cluster.lb_policy)},
          {"connect_timeout_ms", cluster.connect_timeout_ms},
          {"service_addresses", cluster.service_addresses},
          {"endpoints", std::move(endpoints)}};
}

Json toJson(const Resource& resource) {
  return std::visit([](const auto& r) { return toJson(r); }, resource);
}

std::string serialize(const Resource& resource) {
  return dumpCompact(toJson(resource));
}

}  // namespace rdmesh::xds
