#include "sidecar_injector.h"

#include <fmt/format.h>

#include "rdmesh/common/port_list.h"

namespace rdmesh::xds_server::webhook {
namespace {

using Json = nlohmann::json;

// RFC 6901: "~" -> "~0", "/" -> "~1".
std::string pointerToken(std::string_view key) {
  std::string out;
  for (char c : key) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

const Json* member(const Json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

// metadata.annotations[key] when it is a string.
const std::string* annotation(const Json& pod, std::string_view key) {
  const Json* metadata = member(pod, "metadata");
  const Json* annotations = metadata ? member(*metadata, "annotations") : nullptr;
  const Json* value = annotations ? member(*annotations, key) : nullptr;
  return value != nullptr && value->is_string() ? &value->get_ref<const std::string&>() : nullptr;
}

bool hasContainerNamed(const Json& spec, std::string_view list, std::string_view name) {
  const Json* containers = member(spec, list);
  if (containers == nullptr || !containers->is_array()) return false;
  for (const Json& container : *containers) {
    const Json* n = member(container, "name");
    if (n != nullptr && n->is_string() && n->get_ref<const std::string&>() == name) return true;
  }
  return false;
}

Json fieldEnv(std::string_view name, std::string_view field_path) {
  return {{"name", name}, {"valueFrom", {{"fieldRef", {{"fieldPath", field_path}}}}}};
}

InjectionDecision skip(std::string reason) {
  InjectionDecision decision;
  decision.reason = std::move(reason);
  return decision;
}

}  // namespace

std::string SidecarInjector::sidecarBootstrap(std::string_view namespace_name,
                                              std::string_view service_account) const {
  Json tls = {{"server_name", config_.xds_server_name}};
  if (!config_.xds_ca_pem.empty()) tls["ca_pem"] = config_.xds_ca_pem;
  Json bootstrap = {
      {"node",
       {{"identity", fmt::format("spiffe://{}/ns/{}/sa/{}", config_.trust_domain, namespace_name,
                                 service_account)}}},
      {"admin",
       {{"address", fmt::format("127.0.0.1:{}", kSidecarAdminPort)},
        {"probe_address", fmt::format("0.0.0.0:{}", kSidecarProbePort)}}},
      // Socket and pod IPs: the defaults and the downward-API environment below.
      {"node_agent", Json::object()},
      // The workload ("<namespace>/<pod>") comes from RDMESH_POD_NAMESPACE/RDMESH_POD_NAME: the
      // pod may not have its name yet (generateName).
      {"xds", {{"servers", {config_.xds_address}}, {"tls", tls}, {"delta", true}}},
  };
  return bootstrap.dump();
}

Json SidecarInjector::sidecarContainer(const AdmissionRequest& request,
                                       std::string_view service_account,
                                       const std::vector<uint16_t>& excluded_ports) const {
  Json env = Json::array({
      {{"name", "RDMESH_PROXY_CONFIG"},
       {"value", sidecarBootstrap(request.namespace_name, service_account)}},
      fieldEnv("RDMESH_NODE_NAME", "spec.nodeName"),
      fieldEnv("RDMESH_POD_NAME", "metadata.name"),
      fieldEnv("RDMESH_POD_NAMESPACE", "metadata.namespace"),
      fieldEnv("RDMESH_SERVICE_ACCOUNT", "spec.serviceAccountName"),
      fieldEnv("RDMESH_POD_IP", "status.podIP"),
      fieldEnv("RDMESH_POD_IPS", "status.podIPs"),
  });
  if (!excluded_ports.empty()) {
    std::string list;
    for (uint16_t port : excluded_ports) list += (list.empty() ? "" : ",") + std::to_string(port);
    env.push_back({{"name", "RDMESH_EXCLUDE_OUTBOUND_PORTS"}, {"value", list}});
  }
  Json container = {
      {"name", kSidecarContainerName},
      {"image", config_.image},
      {"imagePullPolicy", config_.image_pull_policy},
      {"command", {"/usr/local/bin/rdmesh-proxy"}},
      {"args", {"--log-level", config_.log_level}},
      {"env", env},
      {"ports",
       {{{"name", "rdmesh-probe"}, {"containerPort", kSidecarProbePort}, {"protocol", "TCP"}}}},
      {"readinessProbe",
       {{"httpGet", {{"path", "/ready"}, {"port", kSidecarProbePort}}},
        {"periodSeconds", 2},
        {"timeoutSeconds", 1},
        {"failureThreshold", 3}}},
      {"securityContext",
       {{"runAsUser", kSidecarUid},
        {"runAsGroup", kSidecarUid},
        {"runAsNonRoot", true},
        {"allowPrivilegeEscalation", false},
        {"readOnlyRootFilesystem", true},
        {"capabilities", {{"drop", {"ALL"}}}}}},
      {"volumeMounts", {{{"name", kNodeSocketVolumeName}, {"mountPath", kNodeSocketDir}}}},
      {"terminationMessagePolicy", "FallbackToLogsOnError"},
  };
  if (config_.drain_seconds > 0) {
    // The kubelet sends SIGTERM to every container at once; the sidecar keeps serving the app's
    // last connections for drain_seconds before its own SIGTERM (and graceful drain) arrives.
    container["lifecycle"] = {
        {"preStop",
         {{"exec", {{"command", {"/bin/sleep", std::to_string(config_.drain_seconds)}}}}}}};
  }
  if (!config_.resources.empty()) container["resources"] = config_.resources;
  return container;
}

InjectionDecision SidecarInjector::decide(const AdmissionRequest& request) const {
  if (request.kind != "Pod" || (!request.resource.empty() && request.resource != "pods") ||
      !request.sub_resource.empty()) {
    return skip(fmt::format("not a pod ({}{}{})", request.kind,
                            request.sub_resource.empty() ? "" : "/", request.sub_resource));
  }
  if (request.operation != "CREATE") {
    return skip(fmt::format("operation {} (only CREATE is injected)", request.operation));
  }
  const Json& pod = request.object;
  if (!pod.is_object()) return skip("the request carries no pod object");
  const Json* spec = member(pod, "spec");
  if (spec == nullptr || !spec->is_object()) return skip("the pod has no spec");
  // The API server only sends typed pods; anything else is refused before it reaches a patch
  // that could not apply.
  if (const Json* metadata = member(pod, "metadata"); metadata != nullptr) {
    const Json* annotations = member(*metadata, "annotations");
    if (!metadata->is_object() || (annotations != nullptr && !annotations->is_object())) {
      return skip("malformed pod: metadata or its annotations is not an object");
    }
  }
  if (const Json* volumes = member(*spec, "volumes"); volumes != nullptr && !volumes->is_array()) {
    return skip("malformed pod: spec.volumes is not a list");
  }
  if (const std::string* opt_out = annotation(pod, kInjectAnnotation);
      opt_out != nullptr && *opt_out == "false") {
    return skip(fmt::format("annotated {}: \"false\"", kInjectAnnotation));
  }
  if (const Json* host_network = member(*spec, "hostNetwork");
      host_network != nullptr && host_network->is_boolean() && host_network->get<bool>()) {
    return skip("hostNetwork pod (it shares the node's network; nothing to capture)");
  }
  if (annotation(pod, kInjectedVersionAnnotation) != nullptr ||
      hasContainerNamed(*spec, "containers", kSidecarContainerName) ||
      hasContainerNamed(*spec, "initContainers", kSidecarContainerName)) {
    return skip("already injected");
  }
  const Json* containers = member(*spec, "containers");
  if (containers == nullptr || !containers->is_array() || containers->empty()) {
    return skip("the pod has no containers");
  }
  for (const Json& container : *containers) {
    if (!container.is_object()) return skip("malformed pod: a container is not an object");
  }

  std::vector<uint16_t> excluded_ports;
  if (const std::string* ports = annotation(pod, kExcludePortsAnnotation); ports != nullptr) {
    Result<std::vector<uint16_t>> parsed = parsePortList(*ports);
    if (!parsed) {
      // Capturing ports the user meant to exclude could break the app: leave the pod alone.
      InjectionDecision decision = skip(
          fmt::format("annotation {}: {}", kExcludePortsAnnotation, parsed.status().message()));
      return decision;
    }
    excluded_ports = std::move(*parsed);
  }
  std::string service_account = "default";
  if (const Json* sa = member(*spec, "serviceAccountName");
      sa != nullptr && sa->is_string() && !sa->get_ref<const std::string&>().empty()) {
    service_account = sa->get<std::string>();
  }

  InjectionDecision decision;
  decision.inject = true;
  Json patch = Json::array();
  // First in the list: the kubelet starts containers in order, so the sidecar is starting
  // before the app makes its first connection.
  patch.push_back({{"op", "add"},
                   {"path", "/spec/containers/0"},
                   {"value", sidecarContainer(request, service_account, excluded_ports)}});
  Json volume = {{"name", kNodeSocketVolumeName},
                 {"hostPath", {{"path", kNodeSocketDir}, {"type", "DirectoryOrCreate"}}}};
  if (member(*spec, "volumes") != nullptr) {
    patch.push_back({{"op", "add"}, {"path", "/spec/volumes/-"}, {"value", volume}});
  } else {
    patch.push_back({{"op", "add"}, {"path", "/spec/volumes"}, {"value", Json::array({volume})}});
  }
  const Json* metadata = member(pod, "metadata");
  const Json* annotations = metadata ? member(*metadata, "annotations") : nullptr;
  if (metadata == nullptr) {
    patch.push_back(
        {{"op", "add"},
         {"path", "/metadata"},
         {"value", {{"annotations", {{kInjectedVersionAnnotation, config_.version}}}}}});
  } else if (annotations == nullptr) {
    patch.push_back({{"op", "add"},
                     {"path", "/metadata/annotations"},
                     {"value", {{kInjectedVersionAnnotation, config_.version}}}});
  } else {
    patch.push_back({{"op", "add"},
                     {"path", "/metadata/annotations/" + pointerToken(kInjectedVersionAnnotation)},
                     {"value", config_.version}});
  }
  decision.patch = std::move(patch);
  return decision;
}

}  // namespace rdmesh::xds_server::webhook
