// The injection webhook's pure parts: AdmissionReview codec, injection.yaml, and every rule of
// the injector, checked by applying the returned JSONPatch to the pod (RFC 6902, nlohmann).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <nlohmann/json.hpp>
#include <string>

#include "admission_review.h"
#include "base64.h"
#include "config.h"
#include "injection_config.h"
#include "rdmesh/common/port_list.h"
#include "sidecar_injector.h"

namespace rdmesh::xds_server::webhook {
namespace {

using Json = nlohmann::json;

InjectionConfig testConfig() {
  Result<InjectionConfig> config = parseInjectionConfig(R"(
image: registry.example/rdmesh-proxy:0.1.0
imagePullPolicy: IfNotPresent
xdsAddress: rdmesh-xds.rdmesh-system.svc:15012
trustDomain: cluster.local
logLevel: info
drainSeconds: 5
resources:
  requests: {cpu: 100m, memory: 64Mi}
  limits: {cpu: "1", memory: 256Mi}
)",
                                                        "injection.yaml");
  EXPECT_TRUE(config.isOk()) << config.status().message();
  config->version = "0.1.0";
  config->xds_ca_pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  return *config;
}

Json basicPod() {
  return Json::parse(R"({
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"generateName": "web-7d9f-", "namespace": "shop", "labels": {"app": "web"}},
    "spec": {"serviceAccountName": "web",
             "containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 8080}]}]}
  })");
}

AdmissionRequest createRequest(Json pod, std::string api_version = std::string(kAdmissionV1)) {
  AdmissionRequest request;
  request.api_version = std::move(api_version);
  request.uid = "705ab4f5-6393-11e8-b7cc-42010a800002";
  request.kind = "Pod";
  request.resource = "pods";
  request.namespace_name = "shop";
  request.operation = "CREATE";
  request.object = std::move(pod);
  return request;
}

Json reviewJson(const Json& pod, std::string_view api_version = kAdmissionV1) {
  return {{"apiVersion", api_version},
          {"kind", "AdmissionReview"},
          {"request",
           {{"uid", "0df28fbd-5f5f-11e8-bc74-36e6bb280816"},
            {"kind", {{"group", ""}, {"version", "v1"}, {"kind", "Pod"}}},
            {"resource", {{"group", ""}, {"version", "v1"}, {"resource", "pods"}}},
            {"namespace", "shop"},
            {"operation", "CREATE"},
            {"object", pod},
            {"dryRun", false}}}};
}

const Json* envNamed(const Json& container, std::string_view name) {
  for (const Json& env : container.at("env")) {
    if (env.at("name") == name) return &env;
  }
  return nullptr;
}

TEST(SidecarInjectorTest, InjectsTheSidecarVolumeAndAnnotation) {
  SidecarInjector injector(testConfig());
  InjectionDecision decision = injector.decide(createRequest(basicPod()));
  ASSERT_TRUE(decision.inject) << decision.reason;
  Json pod = basicPod().patch(decision.patch);

  const Json& containers = pod["spec"]["containers"];
  ASSERT_EQ(containers.size(), 2U);
  const Json& sidecar = containers[0];  // first: the kubelet starts it before the app
  EXPECT_EQ(sidecar["name"], "rdmesh-proxy");
  EXPECT_EQ(containers[1]["name"], "web");
  EXPECT_EQ(sidecar["image"], "registry.example/rdmesh-proxy:0.1.0");
  EXPECT_EQ(sidecar["securityContext"]["runAsUser"], 1337);
  EXPECT_EQ(sidecar["securityContext"]["runAsNonRoot"], true);
  EXPECT_EQ(sidecar["readinessProbe"]["httpGet"]["path"], "/ready");
  EXPECT_EQ(sidecar["readinessProbe"]["httpGet"]["port"], kSidecarProbePort);
  EXPECT_EQ(sidecar["lifecycle"]["preStop"]["exec"]["command"], Json({"/bin/sleep", "5"}));
  EXPECT_EQ(sidecar["resources"]["requests"]["cpu"], "100m");
  EXPECT_EQ(sidecar["resources"]["limits"]["memory"], "256Mi");
  EXPECT_EQ(sidecar["volumeMounts"][0]["mountPath"], "/var/run/rdmesh");

  for (auto [name, field] : {std::pair{"RDMESH_POD_NAME", "metadata.name"},
                             std::pair{"RDMESH_POD_NAMESPACE", "metadata.namespace"},
                             std::pair{"RDMESH_SERVICE_ACCOUNT", "spec.serviceAccountName"},
                             std::pair{"RDMESH_NODE_NAME", "spec.nodeName"},
                             std::pair{"RDMESH_POD_IPS", "status.podIPs"}}) {
    const Json* env = envNamed(sidecar, name);
    ASSERT_NE(env, nullptr) << name;
    EXPECT_EQ((*env)["valueFrom"]["fieldRef"]["fieldPath"], field) << name;
  }
  EXPECT_EQ(envNamed(sidecar, "RDMESH_EXCLUDE_OUTBOUND_PORTS"), nullptr);

  ASSERT_EQ(pod["spec"]["volumes"].size(), 1U);
  EXPECT_EQ(pod["spec"]["volumes"][0]["name"], "rdmesh-node-socket");
  EXPECT_EQ(pod["spec"]["volumes"][0]["hostPath"]["path"], "/var/run/rdmesh");
  EXPECT_EQ(pod["metadata"]["annotations"]["rdmesh.io/injected-version"], "0.1.0");
  // Everything else is untouched.
  EXPECT_EQ(pod["metadata"]["labels"], basicPod()["metadata"]["labels"]);
  EXPECT_EQ(containers[1], basicPod()["spec"]["containers"][0]);
}

TEST(SidecarInjectorTest, TheBootstrapIsAValidProxyConfigurationForThePod) {
  SidecarInjector injector(testConfig());
  Json pod = basicPod().patch(injector.decide(createRequest(basicPod())).patch);
  const Json* bootstrap = envNamed(pod["spec"]["containers"][0], "RDMESH_PROXY_CONFIG");
  ASSERT_NE(bootstrap, nullptr);
  // What the downward API gives the sidecar at run time.
  ::setenv("RDMESH_NODE_NAME", "node-a", 1);
  ::setenv("RDMESH_POD_IPS", "10.42.1.7", 1);
  ::setenv("RDMESH_POD_NAMESPACE", "shop", 1);
  ::setenv("RDMESH_POD_NAME", "web-7d9f-x2x4z", 1);
  ::setenv("RDMESH_EXCLUDE_OUTBOUND_PORTS", "5432,6379", 1);
  Result<proxy::ProxyConfig> config =
      proxy::parseConfig((*bootstrap)["value"].get<std::string>(), "$RDMESH_PROXY_CONFIG");
  ::unsetenv("RDMESH_EXCLUDE_OUTBOUND_PORTS");
  ::unsetenv("RDMESH_POD_NAME");
  ::unsetenv("RDMESH_POD_NAMESPACE");
  ::unsetenv("RDMESH_POD_IPS");
  ::unsetenv("RDMESH_NODE_NAME");
  ASSERT_TRUE(config.isOk()) << config.status().message();
  EXPECT_EQ(config->node.name, "node-a");
  EXPECT_EQ(config->node.identity, "spiffe://cluster.local/ns/shop/sa/web");
  ASSERT_TRUE(config->node_agent.has_value());
  EXPECT_EQ(config->node_agent->pod_ips, std::vector<std::string>{"10.42.1.7"});
  // The annotation's ports reach the sidecar, which hands them to the node agent.
  EXPECT_EQ(config->node_agent->exclude_outbound_ports, (std::vector<uint16_t>{5432, 6379}));
  ASSERT_TRUE(config->xds.has_value());
  EXPECT_EQ(config->xds->workload, "shop/web-7d9f-x2x4z");
  EXPECT_EQ(config->xds->servers, std::vector<std::string>{"rdmesh-xds.rdmesh-system.svc:15012"});
  EXPECT_EQ(config->xds->server_name, "rdmesh-xds.rdmesh-system.svc");
  EXPECT_FALSE(config->xds->plaintext);
  EXPECT_NE(config->xds->ca_pem.find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_EQ(config->admin.address.toString(), "127.0.0.1:15000");
  ASSERT_TRUE(config->admin.probe_address.has_value());
  EXPECT_EQ(config->admin.probe_address->port(), kSidecarProbePort);
}

TEST(SidecarInjectorTest, ServiceAccountDefaultsToDefault) {
  SidecarInjector injector(testConfig());
  Json pod = basicPod();
  pod["spec"].erase("serviceAccountName");
  Json patched = pod.patch(injector.decide(createRequest(pod)).patch);
  const Json* bootstrap = envNamed(patched["spec"]["containers"][0], "RDMESH_PROXY_CONFIG");
  ASSERT_NE(bootstrap, nullptr);
  EXPECT_NE(
      (*bootstrap)["value"].get<std::string>().find("spiffe://cluster.local/ns/shop/sa/default"),
      std::string::npos);
}

TEST(SidecarInjectorTest, ExistingVolumesAndAnnotationsAreAppendedTo) {
  SidecarInjector injector(testConfig());
  Json pod = basicPod();
  pod["metadata"]["annotations"] = {{"team", "shop"}};
  pod["spec"]["volumes"] = Json::array({{{"name", "data"}, {"emptyDir", Json::object()}}});
  Json patched = pod.patch(injector.decide(createRequest(pod)).patch);
  ASSERT_EQ(patched["spec"]["volumes"].size(), 2U);
  EXPECT_EQ(patched["spec"]["volumes"][0]["name"], "data");
  EXPECT_EQ(patched["spec"]["volumes"][1]["name"], "rdmesh-node-socket");
  EXPECT_EQ(patched["metadata"]["annotations"]["team"], "shop");
  EXPECT_EQ(patched["metadata"]["annotations"]["rdmesh.io/injected-version"], "0.1.0");
}

TEST(SidecarInjectorTest, InjectingTwiceLeavesThePodAsIs) {
  SidecarInjector injector(testConfig());
  Json once = basicPod().patch(injector.decide(createRequest(basicPod())).patch);
  InjectionDecision again = injector.decide(createRequest(once));
  EXPECT_FALSE(again.inject);
  EXPECT_EQ(again.reason, "already injected");
  // A container named rdmesh-proxy alone (annotation stripped) also counts.
  once["metadata"].erase("annotations");
  EXPECT_FALSE(injector.decide(createRequest(once)).inject);
}

TEST(SidecarInjectorTest, OptOutHostNetworkAndOtherOperationsAreSkipped) {
  SidecarInjector injector(testConfig());
  Json opted_out = basicPod();
  opted_out["metadata"]["annotations"] = {{"rdmesh.io/inject", "false"}};
  InjectionDecision decision = injector.decide(createRequest(opted_out));
  EXPECT_FALSE(decision.inject);
  EXPECT_NE(decision.reason.find("rdmesh.io/inject"), std::string::npos);

  Json opted_in = basicPod();
  opted_in["metadata"]["annotations"] = {{"rdmesh.io/inject", "true"}};
  EXPECT_TRUE(injector.decide(createRequest(opted_in)).inject);

  Json host = basicPod();
  host["spec"]["hostNetwork"] = true;
  decision = injector.decide(createRequest(host));
  EXPECT_FALSE(decision.inject);
  EXPECT_NE(decision.reason.find("hostNetwork"), std::string::npos);

  AdmissionRequest update = createRequest(basicPod());
  update.operation = "UPDATE";
  EXPECT_FALSE(injector.decide(update).inject);

  AdmissionRequest service = createRequest(basicPod());
  service.kind = "Service";
  service.resource = "services";
  EXPECT_FALSE(injector.decide(service).inject);

  AdmissionRequest binding = createRequest(basicPod());
  binding.sub_resource = "binding";
  EXPECT_FALSE(injector.decide(binding).inject);
}

TEST(SidecarInjectorTest, ExcludedPortsPassThroughToTheSidecar) {
  SidecarInjector injector(testConfig());
  Json pod = basicPod();
  pod["metadata"]["annotations"] = {{"rdmesh.io/exclude-outbound-ports", "5432, 6379,5432"}};
  Json patched = pod.patch(injector.decide(createRequest(pod)).patch);
  const Json* ports = envNamed(patched["spec"]["containers"][0], "RDMESH_EXCLUDE_OUTBOUND_PORTS");
  ASSERT_NE(ports, nullptr);
  EXPECT_EQ((*ports)["value"], "5432,6379");

  pod["metadata"]["annotations"]["rdmesh.io/exclude-outbound-ports"] = "5432,postgres";
  InjectionDecision bad = injector.decide(createRequest(pod));
  EXPECT_FALSE(bad.inject);
  EXPECT_NE(bad.reason.find("'postgres' is not a port number"), std::string::npos) << bad.reason;
}

TEST(PortListTest, AcceptsListsAndNamesTheBadEntry) {
  EXPECT_EQ(parsePortList("80").value(), std::vector<uint16_t>{80});
  EXPECT_EQ(parsePortList("1,65535").value(), (std::vector<uint16_t>{1, 65535}));
  for (std::string_view bad : {"", "0", "65536", "80,", ",80", "80;443", "-1", "8o"}) {
    EXPECT_FALSE(parsePortList(bad).isOk()) << bad;
  }
}

TEST(AdmissionReviewTest, ParsesV1AndAnswersInKind) {
  for (std::string_view version : {kAdmissionV1, kAdmissionV1beta1}) {
    ParsedAdmissionReview parsed = parseAdmissionReview(reviewJson(basicPod(), version).dump());
    ASSERT_TRUE(parsed.request.has_value()) << parsed.error->message;
    EXPECT_EQ(parsed.request->api_version, version);
    EXPECT_EQ(parsed.request->uid, "0df28fbd-5f5f-11e8-bc74-36e6bb280816");
    EXPECT_EQ(parsed.request->operation, "CREATE");
    EXPECT_EQ(parsed.request->kind, "Pod");
    EXPECT_EQ(parsed.request->object, basicPod());

    AdmissionResponse response;
    response.patch = Json::array({{{"op", "add"}, {"path", "/x"}, {"value", 1}}});
    response.warnings = {"a warning"};
    Json rendered = Json::parse(renderAdmissionReview(version, parsed.request->uid, response));
    EXPECT_EQ(rendered["apiVersion"], version);
    EXPECT_EQ(rendered["kind"], "AdmissionReview");
    EXPECT_EQ(rendered["response"]["uid"], parsed.request->uid);
    EXPECT_EQ(rendered["response"]["allowed"], true);
    EXPECT_EQ(rendered["response"]["patchType"], "JSONPatch");
    EXPECT_EQ(Json::parse(base64Decode(rendered["response"]["patch"].get<std::string>()).value()),
              *response.patch);
    // v1beta1 has no warnings field.
    EXPECT_EQ(rendered["response"].contains("warnings"), version == kAdmissionV1);
  }
}

TEST(AdmissionReviewTest, BadRequestsNameTheProblem) {
  struct Case {
    std::string body;
    std::string expected;
  };
  Json no_uid = reviewJson(basicPod());
  no_uid["request"].erase("uid");
  Json wrong_kind = reviewJson(basicPod());
  wrong_kind["kind"] = "ConversionReview";
  Json wrong_version = reviewJson(basicPod());
  wrong_version["apiVersion"] = "admission.k8s.io/v2";
  Json object_not_object = reviewJson(basicPod());
  object_not_object["request"]["object"] = "pod";
  Json no_operation = reviewJson(basicPod());
  no_operation["request"].erase("operation");
  const std::vector<Case> cases = {
      {"not json", "not valid JSON"},
      {"[]", "must be a JSON object"},
      {"{}", "apiVersion: missing"},
      {no_uid.dump(), "request.uid: missing"},
      {wrong_kind.dump(), "is not AdmissionReview"},
      {wrong_version.dump(), "is not admission.k8s.io/v1"},
      {object_not_object.dump(), "request.object: must be an object"},
      {no_operation.dump(), "request.operation: missing"},
      {std::string(100000, '['), "nested deeper than"},
      {std::string(kMaxAdmissionReviewBytes + 1, ' '), "over the 4194304-byte limit"},
  };
  for (const Case& c : cases) {
    ParsedAdmissionReview parsed = parseAdmissionReview(c.body);
    ASSERT_FALSE(parsed.request.has_value()) << c.expected;
    ASSERT_TRUE(parsed.error.has_value());
    EXPECT_NE(parsed.error->message.find(c.expected), std::string::npos)
        << "got: " << parsed.error->message;
  }
  // The uid is echoed when it was readable, so the API server can pair the error.
  ParsedAdmissionReview parsed = parseAdmissionReview(no_operation.dump());
  EXPECT_EQ(parsed.error->uid, "0df28fbd-5f5f-11e8-bc74-36e6bb280816");
}

TEST(InjectionConfigTest, RejectsBadValuesWithTheKeyAndLine) {
  struct Case {
    std::string yaml;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"xdsAddress: a:1\n", "image: missing"},
      {"image: x\n", "xdsAddress: missing"},
      {"image: x\nxdsAddress: nohost\n", "xdsAddress: must be host:port"},
      {"image: x\nxdsAddress: a:1\nimagePullPolicy: Sometimes\n", "must be Always"},
      {"image: x\nxdsAddress: a:1\ndrainSeconds: -3\n", "drainSeconds: must be an integer"},
      {"image: x\nxdsAddress: a:1\nresources: {requests: {cpu: lots}}\n", "quantity"},
      {"image: x\nxdsAddress: a:1\nresources: {requests: {gpu: 1}}\n", "unknown resource"},
      {"image: x\nxdsAddress: a:1\nimagePulPolicy: Never\n", "imagePulPolicy: unknown key"},
      {"image: [x\n", "not valid YAML"},
  };
  for (const Case& c : cases) {
    Result<InjectionConfig> config = parseInjectionConfig(c.yaml, "injection.yaml");
    ASSERT_FALSE(config.isOk()) << c.yaml;
    EXPECT_NE(config.status().message().find(c.expected), std::string::npos)
        << "got: " << config.status().message();
    EXPECT_EQ(config.status().message().rfind("injection.yaml", 0), 0U);
  }
}

}  // namespace
}  // namespace rdmesh::xds_server::webhook
