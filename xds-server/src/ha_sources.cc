#include "ha_sources.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>

#include "etcd_store.h"
#include "k8s_source.h"
#include "memory_store.h"

namespace rdmesh::xds_server {
namespace {

// Writes the Kubernetes source's changes through the etcd store's elected writer instead of
// the sink the Registry offers.
class ElectedKubernetesSource : public RegistrySource {
 public:
  ElectedKubernetesSource(std::unique_ptr<KubernetesSource> source, EtcdStore& store)
      : source_(std::move(source)),
        sink_(store.kubernetesSink([source = source_.get()] { return source->fullState(); })) {}
  std::string describe() const override { return source_->describe() + " (elected writer)"; }
  Status start(RegistrySink& /*sink*/, std::function<void()> on_synced) override {
    return source_->start(sink_, std::move(on_synced));
  }
  void stop() override { source_->stop(); }

 private:
  std::unique_ptr<KubernetesSource> source_;
  RegistrySink& sink_;
};

}  // namespace

void addHaSourcesFlags(CLI::App& app, HaSourcesOptions& o) {
  app.add_option("--etcd-endpoints", o.etcd_endpoints,
                 "share the registry with other replicas through etcd (v3), e.g. "
                 "http://etcd-0:2379,http://etcd-1:2379")
      ->delimiter(',');
  app.add_option("--etcd-ca-file", o.etcd_ca_file, "CA bundle for https etcd endpoints");
  app.add_option("--etcd-prefix", o.etcd_prefix, "key prefix of the registry in etcd");
  app.add_option("--replica-id", o.replica_id,
                 "this replica's name in the Kubernetes writer election (default: $HOSTNAME)");
  app.add_flag("--kubernetes", o.kubernetes,
               "list+watch pods, services, endpointslices and nodes of the cluster this pod "
               "runs in (service account token and CA)");
  app.add_option("--kubernetes-url", o.kubernetes_url,
                 "API server URL outside a pod (implies --kubernetes)");
  app.add_option("--kubernetes-token-file", o.kubernetes_token_file, "bearer token file");
  app.add_option("--kubernetes-ca-file", o.kubernetes_ca_file, "CA bundle of the API server");
  app.add_option("--trust-domain", o.trust_domain,
                 "SPIFFE trust domain: spiffe://<trust domain>/ns/<ns>/sa/<sa>");
}

Result<RegistrySetup> makeRegistrySetup(const HaSourcesOptions& o) {
  RegistrySetup setup;
  EtcdStore* etcd = nullptr;
  if (o.etcd_endpoints.empty()) {
    setup.store = std::make_unique<MemoryStore>();
  } else {
    EtcdStoreOptions eo;
    eo.endpoints = o.etcd_endpoints;
    eo.ca_file = o.etcd_ca_file;
    eo.prefix = o.etcd_prefix;
    eo.replica_id = o.replica_id;
    if (eo.replica_id.empty()) {
      const char* host = std::getenv("HOSTNAME");
      eo.replica_id = host != nullptr && *host ? host : "pid-" + std::to_string(getpid());
    }
    auto store = std::make_unique<EtcdStore>(std::move(eo));
    etcd = store.get();
    setup.store = std::move(store);
  }
  if (!o.kubernetes && o.kubernetes_url.empty()) return setup;
  auto api = o.kubernetes_url.empty()
                 ? xds::k8s::ApiConfig::inCluster()
                 : xds::k8s::ApiConfig::fromUrl(o.kubernetes_url, o.kubernetes_token_file,
                                                o.kubernetes_ca_file);
  if (!api) return api.status();
  KubernetesSourceOptions ko;
  ko.api = std::move(*api);
  ko.trust_domain = o.trust_domain;
  auto source = std::make_unique<KubernetesSource>(std::move(ko));
  if (etcd != nullptr) {
    setup.kubernetes = std::make_unique<ElectedKubernetesSource>(std::move(source), *etcd);
  } else {
    setup.kubernetes = std::move(source);
  }
  return setup;
}

}  // namespace rdmesh::xds_server
