#include "node_request.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "rdmesh/common/address.h"
#include "rdmesh/common/hex.h"

namespace rdmesh::node {

namespace {

using nlohmann::json;

constexpr size_t kMaxIdLength = 256;
constexpr size_t kMaxTextLength = 1024;
constexpr size_t kMaxIps = 16;
constexpr size_t kMaxExcludedPorts = 1024;
constexpr size_t kMaxInterfaceLength = 15;  // IFNAMSIZ - 1
constexpr size_t kMaxHelloBytes = 1024;
constexpr size_t kMaxNodeNameLength = 253;
constexpr size_t kMaxLabels = 64;

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

const json* field(const json& body, const char* name) {
  auto it = body.find(name);
  return it == body.end() ? nullptr : &*it;
}

Result<std::string> requiredString(const json& body, const char* name, size_t max_len) {
  const json* f = field(body, name);
  if (f == nullptr) return invalidArgument(fmt::format("field '{}': missing", name));
  if (!f->is_string()) return invalidArgument(fmt::format("field '{}': must be a string", name));
  const auto& s = f->get_ref<const std::string&>();
  if (s.empty()) return invalidArgument(fmt::format("field '{}': must not be empty", name));
  if (s.size() > max_len) {
    return invalidArgument(fmt::format("field '{}': longer than {} bytes", name, max_len));
  }
  return s;
}

Result<std::string> optionalString(const json& body, const char* name) {
  const json* f = field(body, name);
  if (f == nullptr || f->is_null()) return std::string();
  if (!f->is_string()) return invalidArgument(fmt::format("field '{}': must be a string", name));
  const auto& s = f->get_ref<const std::string&>();
  if (s.size() > kMaxTextLength) {
    return invalidArgument(fmt::format("field '{}': longer than {} bytes", name, kMaxTextLength));
  }
  return s;
}

// Container ids as runtimes make them: letters, digits, '-', '_', '.'.
Status checkContainerId(const std::string& id) {
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok) {
      return invalidArgument(
          "field 'container_id': only letters, digits, '-', '_' and '.' are allowed");
    }
  }
  return {};
}

Result<std::string> containerId(const json& body) {
  Result<std::string> id = requiredString(body, "container_id", kMaxIdLength);
  if (!id) return id;
  if (Status s = checkContainerId(*id); !s) return s;
  return id;
}

Result<std::string> ipField(const json& e, const std::string& name) {
  if (!e.is_string()) return invalidArgument(fmt::format("field '{}': must be a string", name));
  Result<InetAddress> addr = InetAddress::fromIp(e.get_ref<const std::string&>(), 0);
  if (!addr) {
    return invalidArgument(
        fmt::format("field '{}': '{}' is not an IPv4 or IPv6 address", name, dump(e)));
  }
  return addr->ipString();
}

Result<std::vector<std::string>> ipList(const json& body, const char* name = "ips") {
  const json* f = field(body, name);
  if (f == nullptr) return invalidArgument(fmt::format("field '{}': missing", name));
  if (!f->is_array()) {
    return invalidArgument(fmt::format("field '{}': must be an array of IP addresses", name));
  }
  if (f->empty()) {
    return invalidArgument(fmt::format("field '{}': must name at least one IP address", name));
  }
  if (f->size() > kMaxIps) {
    return invalidArgument(fmt::format("field '{}': more than {} addresses", name, kMaxIps));
  }
  std::vector<std::string> ips;
  for (size_t i = 0; i < f->size(); ++i) {
    std::string element = fmt::format("{}[{}]", name, i);
    Result<std::string> canonical = ipField((*f)[i], element);
    if (!canonical) return canonical.status();
    if (std::find(ips.begin(), ips.end(), *canonical) != ips.end()) {
      return invalidArgument(fmt::format("field '{}': {} is listed twice", element, *canonical));
    }
    ips.push_back(std::move(*canonical));
  }
  return ips;
}

Result<std::string> requiredIp(const json& body, const char* name) {
  const json* f = field(body, name);
  if (f == nullptr) return invalidArgument(fmt::format("field '{}': missing", name));
  return ipField(*f, name);
}

Result<uint64_t> requiredUint(const json& body, const char* name) {
  const json* f = field(body, name);
  if (f == nullptr) return invalidArgument(fmt::format("field '{}': missing", name));
  if (!f->is_number_unsigned() && !(f->is_number_integer() && f->get<int64_t>() >= 0)) {
    return invalidArgument(fmt::format("field '{}': must be a non-negative integer", name));
  }
  return f->get<uint64_t>();
}

// A Hello as lowercase hex of transport::encodeHello, parsed.
Status helloField(const json& body, std::vector<std::byte>* bytes, transport::Hello* hello) {
  Result<std::string> text = requiredString(body, "hello", 2 * kMaxHelloBytes);
  if (!text) return text.status();
  Result<std::vector<std::byte>> raw = fromHex(*text);
  if (!raw) return invalidArgument(fmt::format("field 'hello': {}", raw.status().message()));
  Result<transport::Hello> parsed = transport::parseHello(*raw);
  if (!parsed) return invalidArgument(fmt::format("field 'hello': {}", parsed.status().message()));
  *bytes = std::move(*raw);
  *hello = std::move(*parsed);
  return {};
}

Result<std::vector<uint16_t>> portList(const json& body, const char* name) {
  const json* f = field(body, name);
  if (f == nullptr || f->is_null()) return std::vector<uint16_t>();
  if (!f->is_array()) return invalidArgument(fmt::format("field '{}': must be an array", name));
  if (f->size() > kMaxExcludedPorts) {
    return invalidArgument(fmt::format("field '{}': more than {} ports", name, kMaxExcludedPorts));
  }
  std::set<uint16_t> ports;
  for (size_t i = 0; i < f->size(); ++i) {
    const json& e = (*f)[i];
    bool integral = e.is_number_integer() || e.is_number_unsigned();
    if (!integral || e.get<int64_t>() < 1 || e.get<int64_t>() > 65535) {
      return invalidArgument(
          fmt::format("field '{}[{}]': must be a port number 1..65535 (got {})", name, i, dump(e)));
    }
    ports.insert(static_cast<uint16_t>(e.get<int64_t>()));
  }
  return std::vector<uint16_t>(ports.begin(), ports.end());
}

Result<std::map<std::string, std::string>> labelMap(const json& body) {
  std::map<std::string, std::string> labels;
  const json* f = field(body, "labels");
  if (f == nullptr) return labels;
  if (!f->is_object()) return invalidArgument("field 'labels': must be an object of strings");
  if (f->size() > kMaxLabels) {
    return invalidArgument(fmt::format("field 'labels': more than {} labels", kMaxLabels));
  }
  for (const auto& [key, value] : f->items()) {
    if (key.empty() || key.size() > kMaxTextLength) {
      return invalidArgument(
          fmt::format("field 'labels': a key must be 1..{} bytes", kMaxTextLength));
    }
    if (!value.is_string() || value.get_ref<const std::string&>().size() > kMaxTextLength) {
      return invalidArgument(fmt::format("field 'labels.{}': must be a string of at most {} bytes",
                                         key, kMaxTextLength));
    }
    labels[key] = value.get<std::string>();
  }
  return labels;
}

}  // namespace

Result<RequestEnvelope> parseEnvelope(std::string_view datagram) {
  if (datagram.size() > kMaxRequestBytes) {
    return invalidArgument(fmt::format("request larger than {} bytes", kMaxRequestBytes));
  }
  json body = json::parse(datagram.begin(), datagram.end(), nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return invalidArgument("request is not valid JSON");
  if (!body.is_object()) return invalidArgument("request must be a JSON object");
  const json* v = field(body, "v");
  if (v == nullptr) return invalidArgument("field 'v': missing (protocol version, 1)");
  if (!v->is_number_integer() && !v->is_number_unsigned()) {
    return invalidArgument("field 'v': must be the integer 1");
  }
  if (v->get<int64_t>() != kNodeProtocolVersion) {
    return invalidArgument(
        fmt::format("field 'v': version {} is not supported (this agent speaks {})", dump(*v),
                    kNodeProtocolVersion));
  }
  Result<std::string> op = requiredString(body, "op", 64);
  if (!op) return op.status();
  return RequestEnvelope{std::move(*op), std::move(body)};
}

Result<PodAddRequest> parsePodAdd(const json& body) {
  PodAddRequest r;
  Result<std::string> id = containerId(body);
  if (!id) return id.status();
  r.container_id = std::move(*id);
  Result<std::string> netns = requiredString(body, "netns", kMaxTextLength);
  if (!netns) return netns.status();
  if (netns->front() != '/') return invalidArgument("field 'netns': must be an absolute path");
  r.netns = std::move(*netns);
  Result<std::vector<std::string>> ips = ipList(body);
  if (!ips) return ips.status();
  r.ips = std::move(*ips);
  Result<std::string> interface = requiredString(body, "interface", kMaxInterfaceLength);
  if (!interface) return interface.status();
  r.interface = std::move(*interface);
  for (auto [name, out] :
       {std::pair{"pod_name", &r.pod_name}, std::pair{"pod_namespace", &r.pod_namespace},
        std::pair{"pod_uid", &r.pod_uid}, std::pair{"service_account", &r.service_account}}) {
    Result<std::string> s = optionalString(body, name);
    if (!s) return s.status();
    *out = std::move(*s);
  }
  Result<std::vector<uint16_t>> ports = portList(body, "exclude_outbound_ports");
  if (!ports) return ports.status();
  r.exclude_outbound_ports = std::move(*ports);
  Result<std::vector<uint16_t>> workload_ports = portList(body, "ports");
  if (!workload_ports) return workload_ports.status();
  r.ports = std::move(*workload_ports);
  Result<std::map<std::string, std::string>> labels = labelMap(body);
  if (!labels) return labels.status();
  r.labels = std::move(*labels);
  return r;
}

Result<std::string> parseContainerIdOnly(const json& body) {
  return containerId(body);
}

Result<SessionListenRequest> parseSessionListen(const json& body) {
  Result<std::vector<std::string>> ips = ipList(body, "pod_ips");
  if (!ips) return ips.status();
  Result<std::vector<uint16_t>> ports = portList(body, "exclude_outbound_ports");
  if (!ports) return ports.status();
  return SessionListenRequest{std::move(*ips), std::move(*ports)};
}

Result<std::vector<uint16_t>> parsePortField(const json& body, const char* name) {
  return portList(body, name);
}

Result<SessionOpenRequest> parseSessionOpen(const json& body) {
  SessionOpenRequest r;
  Result<std::string> ip = requiredIp(body, "destination_ip");
  if (!ip) return ip.status();
  r.destination_ip = std::move(*ip);
  Result<std::string> node = requiredString(body, "node", kMaxNodeNameLength);
  if (!node) return node.status();
  if (!transport::isValidNodeName(*node)) {
    return invalidArgument(
        fmt::format("field 'node': '{}' is not a node name (a DNS subdomain)", dump(*node)));
  }
  r.node = std::move(*node);
  if (Status s = helloField(body, &r.hello, &r.parsed_hello); !s) return s;
  return r;
}

Result<SessionAcceptRequest> parseSessionAccept(const json& body) {
  SessionAcceptRequest r;
  Result<uint64_t> id = requiredUint(body, "offer_id");
  if (!id) return id.status();
  r.offer_id = *id;
  if (Status s = helloField(body, &r.hello, &r.parsed_hello); !s) return s;
  return r;
}

Result<SessionRefuseRequest> parseSessionRefuse(const json& body) {
  SessionRefuseRequest r;
  Result<uint64_t> id = requiredUint(body, "offer_id");
  if (!id) return id.status();
  r.offer_id = *id;
  Result<std::string> reason = optionalString(body, "reason");
  if (!reason) return reason.status();
  r.reason = reason->empty() ? "no reason given" : std::move(*reason);
  return r;
}

std::string okReply(json fields) {
  if (!fields.is_object()) fields = json::object();
  fields["ok"] = true;
  return dump(fields);
}

std::string errorReply(std::string_view message) {
  json reply = json::object();
  reply["ok"] = false;
  reply["error"] = std::string(message);
  return dump(reply);
}

}  // namespace rdmesh::node
