#include "k8s_translate.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <set>

namespace rdmesh::xds::k8s {
namespace {

using Json = nlohmann::json;

constexpr uint16_t kNodeSessionPort = 15008;  // ARCHITECTURE.md

Status bad(std::string_view kind, std::string_view name, std::string_view what) {
  return invalidArgument(fmt::format("Kubernetes {} '{}': {}", kind, name, what));
}

// Field access that never throws: a missing field is null, a wrong type an error.
const Json& field(const Json& object, const char* name) {
  static const Json kNull;
  if (!object.is_object()) return kNull;
  auto it = object.find(name);
  return it == object.end() ? kNull : *it;
}

std::string stringOr(const Json& value, std::string fallback = {}) {
  return value.is_string() ? value.get<std::string>() : std::move(fallback);
}

bool isIp(const std::string& text) {
  unsigned char buf[16];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

Result<Json> stringMap(const Json& value, std::string_view kind, std::string_view name,
                       std::string_view what) {
  Json out = Json::object();
  if (value.is_null()) return out;
  if (!value.is_object()) return bad(kind, name, fmt::format("{}: expected a map", what));
  for (const auto& [k, v] : value.items()) {
    if (!v.is_string()) return bad(kind, name, fmt::format("{}.{}: expected a string", what, k));
    out[k] = v;
  }
  return out;
}

bool isTcp(const Json& port) {
  const Json& protocol = field(port, "protocol");
  return protocol.is_null() || protocol == "TCP";
}

std::optional<uint16_t> portNumber(const Json& value) {
  if (!value.is_number_integer()) return std::nullopt;
  auto n = value.get<int64_t>();
  if (n < 1 || n > 65535) return std::nullopt;
  return static_cast<uint16_t>(n);
}

}  // namespace

std::string spiffeIdentity(const std::string& trust_domain, const std::string& ns,
                           const std::string& service_account) {
  return fmt::format("spiffe://{}/ns/{}/sa/{}", trust_domain, ns, service_account);
}

Result<std::optional<Json>> workloadFromPod(const Json& pod, const std::string& trust_domain) {
  const Json& metadata = field(pod, "metadata");
  std::string ns = stringOr(field(metadata, "namespace"));
  std::string name = stringOr(field(metadata, "name"));
  if (ns.empty() || name.empty()) return bad("Pod", name, "metadata.namespace/name missing");
  std::string full = ns + "/" + name;
  const Json& spec = field(pod, "spec");
  const Json& status = field(pod, "status");
  if (field(status, "phase") != "Running") return std::optional<Json>();
  if (field(spec, "hostNetwork") == true) return std::optional<Json>();
  if (!field(metadata, "deletionTimestamp").is_null()) return std::optional<Json>();

  std::vector<std::string> ips;
  const Json& pod_ips = field(status, "podIPs");
  if (pod_ips.is_array()) {
    for (const auto& entry : pod_ips) {
      std::string ip = stringOr(field(entry, "ip"));
      if (!isIp(ip)) return bad("Pod", full, fmt::format("status.podIPs: '{}' is not an IP", ip));
      if (std::find(ips.begin(), ips.end(), ip) == ips.end()) ips.push_back(ip);
    }
  }
  if (ips.empty()) {
    std::string ip = stringOr(field(status, "podIP"));
    if (ip.empty()) return std::optional<Json>();  // Running but no IP yet
    if (!isIp(ip)) return bad("Pod", full, fmt::format("status.podIP: '{}' is not an IP", ip));
    ips.push_back(ip);
  }
  std::string node = stringOr(field(spec, "nodeName"));
  if (node.empty()) return bad("Pod", full, "Running without spec.nodeName");
  std::string service_account = stringOr(field(spec, "serviceAccountName"), "default");

  std::set<uint16_t> ports;
  const Json& containers = field(spec, "containers");
  if (!containers.is_null() && !containers.is_array()) {
    return bad("Pod", full, "spec.containers: expected a list");
  }
  if (containers.is_array()) {
    for (const auto& container : containers) {
      const Json& container_ports = field(container, "ports");
      if (!container_ports.is_array()) continue;
      for (const auto& port : container_ports) {
        auto number = portNumber(field(port, "containerPort"));
        if (!number) return bad("Pod", full, "containerPort: expected 1..65535");
        if (isTcp(port)) ports.insert(*number);
      }
    }
  }
  auto labels = stringMap(field(metadata, "labels"), "Pod", full, "metadata.labels");
  if (!labels) return labels.status();

  Json workload = {{"name", full},
                   {"namespace", ns},
                   {"pod", name},
                   {"ip", ips},
                   {"node", node},
                   {"identity", spiffeIdentity(trust_domain, ns, service_account)},
                   {"service_account", service_account},
                   {"ports", std::vector<uint16_t>(ports.begin(), ports.end())},
                   {"labels", std::move(*labels)}};
  if (std::string uid = stringOr(field(metadata, "uid")); !uid.empty()) workload["uid"] = uid;
  return std::optional<Json>(std::move(workload));
}

Result<std::optional<Json>> nodeFromNode(const Json& node) {
  const Json& metadata = field(node, "metadata");
  std::string name = stringOr(field(metadata, "name"));
  if (name.empty()) return bad("Node", name, "metadata.name missing");
  std::vector<std::string> internal;
  std::vector<std::string> external;
  const Json& addresses = field(field(node, "status"), "addresses");
  if (addresses.is_array()) {
    for (const auto& address : addresses) {
      std::string type = stringOr(field(address, "type"));
      std::string ip = stringOr(field(address, "address"));
      if (type != "InternalIP" && type != "ExternalIP") continue;  // Hostname, InternalDNS...
      if (!isIp(ip))
        return bad("Node", name, fmt::format("status.addresses: '{}' is not an IP", ip));
      (type == "InternalIP" ? internal : external).push_back(ip);
    }
  }
  std::vector<std::string>& ips = internal.empty() ? external : internal;
  if (ips.empty()) return std::optional<Json>();  // not reachable yet

  const Json& annotations = field(metadata, "annotations");
  std::string fabric = stringOr(field(annotations, kFabricAnnotation.data()), "tcp");
  if (fabric != "verbs" && fabric != "tcp" && fabric != "shm") {
    return bad(
        "Node", name,
        fmt::format("annotation {}: '{}' is not verbs, tcp or shm", kFabricAnnotation, fabric));
  }
  std::string first = ips.front();
  std::string session = first.find(':') != std::string::npos
                            ? fmt::format("[{}]:{}", first, kNodeSessionPort)
                            : fmt::format("{}:{}", first, kNodeSessionPort);
  Json out = {{"name", name}, {"addresses", ips}, {"fabric", fabric}, {"session_address", session}};
  if (std::string gid = stringOr(field(annotations, kRdmaGidAnnotation.data())); !gid.empty()) {
    out["rdma"] = {{"gid", gid}};
  }
  return std::optional<Json>(std::move(out));
}

std::optional<std::string> serviceOfEndpointSlice(const Json& slice) {
  const Json& metadata = field(slice, "metadata");
  std::string ns = stringOr(field(metadata, "namespace"));
  std::string service = stringOr(field(field(metadata, "labels"), kServiceNameLabel.data()));
  if (ns.empty() || service.empty()) return std::nullopt;
  return ns + "/" + service;
}

Result<std::optional<Json>> serviceFromService(const Json& service,
                                               const std::vector<const Json*>& endpoint_slices) {
  const Json& metadata = field(service, "metadata");
  std::string ns = stringOr(field(metadata, "namespace"));
  std::string name = stringOr(field(metadata, "name"));
  if (ns.empty() || name.empty()) return bad("Service", name, "metadata.namespace/name missing");
  std::string full = ns + "/" + name;
  const Json& spec = field(service, "spec");
  if (field(spec, "type") == "ExternalName") return std::optional<Json>();  // a DNS alias

  std::vector<std::string> cluster_ips;
  auto add_ip = [&](const Json& value) -> Status {
    std::string ip = stringOr(value);
    if (ip.empty() || ip == "None") return Status::ok();  // headless
    if (!isIp(ip)) return bad("Service", full, fmt::format("clusterIP '{}' is not an IP", ip));
    if (std::find(cluster_ips.begin(), cluster_ips.end(), ip) == cluster_ips.end()) {
      cluster_ips.push_back(ip);
    }
    return Status::ok();
  };
  if (const Json& ips = field(spec, "clusterIPs"); ips.is_array()) {
    for (const auto& ip : ips) {
      if (Status s = add_ip(ip); !s) return s;
    }
  }
  if (Status s = add_ip(field(spec, "clusterIP")); !s) return s;

  Json ports = Json::array();
  const Json& spec_ports = field(spec, "ports");
  if (spec_ports.is_array()) {
    for (const auto& port : spec_ports) {
      if (!isTcp(port)) continue;  // the mesh carries TCP
      auto number = portNumber(field(port, "port"));
      if (!number) return bad("Service", full, "ports[].port: expected 1..65535");
      std::string port_name = stringOr(field(port, "name"));
      const Json& target = field(port, "targetPort");
      std::optional<uint16_t> target_port;
      if (target.is_null()) {
        target_port = number;
      } else if (target.is_number_integer()) {
        target_port = portNumber(target);
        if (!target_port) return bad("Service", full, "ports[].targetPort: expected 1..65535");
      } else if (target.is_string()) {
        // A named container port: the EndpointSlices carry the number, under the service port's
        // name. Until one does (no ready pod yet), the port cannot be routed and is left out.
        for (const Json* slice : endpoint_slices) {
          const Json& slice_ports = field(*slice, "ports");
          if (!slice_ports.is_array()) continue;
          for (const auto& sp : slice_ports) {
            if (stringOr(field(sp, "name")) == port_name && isTcp(sp)) {
              target_port = portNumber(field(sp, "port"));
            }
          }
          if (target_port) break;
        }
        if (!target_port) continue;
      } else {
        return bad("Service", full, "ports[].targetPort: expected a number or a name");
      }
      Json out = {{"port", *number}, {"target_port", *target_port}, {"protocol", "TCP"}};
      if (!port_name.empty()) out["name"] = port_name;
      ports.push_back(std::move(out));
    }
  }
  auto selector = stringMap(field(spec, "selector"), "Service", full, "spec.selector");
  if (!selector) return selector.status();
  return std::optional<Json>(Json{{"name", full},
                                  {"namespace", ns},
                                  {"cluster_ips", cluster_ips},
                                  {"ports", std::move(ports)},
                                  {"selector", std::move(*selector)}});
}

}  // namespace rdmesh::xds::k8s
