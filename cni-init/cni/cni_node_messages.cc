#include "cni_node_messages.h"

namespace rdmesh::cni {

using Json = nlohmann::json;

namespace {

std::string encode(const Json& request) {
  return request.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Json request(const char* op) {
  Json r;
  r["v"] = kNodeProtocolVersion;
  r["op"] = op;
  return r;
}

bool stringList(const Json& value, std::vector<std::string>* out) {
  if (!value.is_array()) return false;
  for (const Json& item : value) {
    if (!item.is_string()) return false;
    out->push_back(item.get<std::string>());
  }
  return true;
}

}  // namespace

std::string encodePodAdd(const PodRegistration& pod) {
  Json r = request("pod_add");
  r["container_id"] = pod.container_id;
  r["netns"] = pod.netns;
  r["ips"] = pod.ips;
  r["interface"] = pod.interface;
  if (!pod.pod_name.empty()) r["pod_name"] = pod.pod_name;
  if (!pod.pod_namespace.empty()) r["pod_namespace"] = pod.pod_namespace;
  if (!pod.pod_uid.empty()) r["pod_uid"] = pod.pod_uid;
  if (!pod.exclude_outbound_ports.empty()) r["exclude_outbound_ports"] = pod.exclude_outbound_ports;
  return encode(r);
}

std::string encodePodDel(std::string_view container_id) {
  Json r = request("pod_del");
  r["container_id"] = container_id;
  return encode(r);
}

std::string encodePodCheck(std::string_view container_id) {
  Json r = request("pod_check");
  r["container_id"] = container_id;
  return encode(r);
}

std::string encodePodList() {
  return encode(request("pod_list"));
}

Result<Json> decodeReply(std::string_view datagram) {
  if (datagram.size() > kMaxNodeMessageBytes) {
    return protocolError("node agent reply larger than " + std::to_string(kMaxNodeMessageBytes) +
                         " bytes");
  }
  Json reply = Json::parse(datagram, nullptr, /*allow_exceptions=*/false);
  if (reply.is_discarded() || !reply.is_object()) {
    return protocolError("node agent reply is not a JSON object");
  }
  auto ok = reply.find("ok");
  if (ok == reply.end() || !ok->is_boolean()) {
    return protocolError("node agent reply has no boolean \"ok\"");
  }
  if (!ok->get<bool>()) {
    auto error = reply.find("error");
    if (error == reply.end() || !error->is_string()) {
      return protocolError("node agent refused without a string \"error\"");
    }
    return invalidArgument("node agent: " + error->get<std::string>());
  }
  return reply;
}

Result<uint64_t> decodePodAddReply(std::string_view datagram) {
  auto reply = decodeReply(datagram);
  if (!reply) return reply.status();
  auto cookie = reply->find("netns_cookie");
  if (cookie == reply->end() || !cookie->is_number_unsigned()) {
    return protocolError("pod_add reply has no unsigned integer \"netns_cookie\"");
  }
  return cookie->get<uint64_t>();
}

Result<std::vector<RegisteredPod>> decodePodListReply(std::string_view datagram) {
  auto reply = decodeReply(datagram);
  if (!reply) return reply.status();
  auto pods = reply->find("pods");
  if (pods == reply->end() || !pods->is_array()) {
    return protocolError("pod_list reply has no list \"pods\"");
  }
  std::vector<RegisteredPod> out;
  for (const Json& entry : *pods) {
    RegisteredPod pod;
    auto id = entry.is_object() ? entry.find("container_id") : entry.end();
    if (id == entry.end() || !id->is_string()) {
      return protocolError("pod_list entry without a string \"container_id\"");
    }
    pod.container_id = id->get<std::string>();
    if (auto c = entry.find("netns_cookie"); c != entry.end() && c->is_number_unsigned()) {
      pod.netns_cookie = c->get<uint64_t>();
    }
    if (auto ips = entry.find("ips"); ips != entry.end() && !stringList(*ips, &pod.ips)) {
      return protocolError("pod_list entry \"ips\" is not a list of strings");
    }
    if (auto n = entry.find("pod_name"); n != entry.end() && n->is_string()) {
      pod.pod_name = n->get<std::string>();
    }
    if (auto n = entry.find("pod_namespace"); n != entry.end() && n->is_string()) {
      pod.pod_namespace = n->get<std::string>();
    }
    out.push_back(std::move(pod));
  }
  return out;
}

}  // namespace rdmesh::cni
