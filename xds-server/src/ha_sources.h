// Command-line wiring for the registry's shared store (etcd) and the Kubernetes source, so
// rdmesh-xds's main() only adds the flags and takes the store and sources this builds:
//   --etcd-endpoints URL[,URL...]  share the registry through etcd (all replicas serve)
//   --etcd-ca-file, --etcd-prefix, --replica-id
//   --kubernetes                   list+watch the API server this pod runs in
//   --kubernetes-url, --kubernetes-token-file, --kubernetes-ca-file (outside a pod)
//   --trust-domain                 SPIFFE trust domain of workload identities
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "registry_source.h"
#include "registry_store.h"

namespace CLI {
class App;
}

namespace rdmesh::xds_server {

struct HaSourcesOptions {
  std::vector<std::string> etcd_endpoints;
  std::string etcd_ca_file;
  std::string etcd_prefix = "/rdmesh/v1";
  std::string replica_id;  // default: $HOSTNAME (the pod name), else the process id
  bool kubernetes = false;
  std::string kubernetes_url;
  std::string kubernetes_token_file;
  std::string kubernetes_ca_file;
  std::string trust_domain = "cluster.local";
};

void addHaSourcesFlags(CLI::App& app, HaSourcesOptions& options);

struct RegistrySetup {
  std::unique_ptr<RegistryStore> store;        // MemoryStore, or EtcdStore with --etcd-endpoints
  std::unique_ptr<RegistrySource> kubernetes;  // with --kubernetes / --kubernetes-url
};
// With etcd and Kubernetes together, the source writes through the store's elected writer.
Result<RegistrySetup> makeRegistrySetup(const HaSourcesOptions& options);

}  // namespace rdmesh::xds_server
