// The static registry file (YAML): nodes, workloads and services written by hand, for
// standalone meshes and tests. It uses the xDS resource schema (docs/xds.md) with two
// conveniences: a workload's "name" defaults to "<namespace>/<pod>" and its "identity" to
// "spiffe://<trust_domain>/ns/<namespace>/sa/<service_account>"; a service's "namespace"
// defaults to the part of its name before '/'. Errors read
// "<file>:<line>:<col>: <field path>: <what is wrong>".
#pragma once

#include <string>

#include "registry_source.h"
#include "registry_store.h"

namespace rdmesh::xds_server {

inline constexpr const char* kDefaultTrustDomain = "cluster.local";

// Everything in the file as one change of puts.
Result<RegistryChange> parseRegistryFile(const std::string& yaml_text,
                                         const std::string& source_name);
Result<RegistryChange> loadRegistryFile(const std::string& path);

class RegistryFileSource : public RegistrySource {
 public:
  explicit RegistryFileSource(std::string path) : path_(std::move(path)) {}

  std::string describe() const override { return "file " + path_; }
  // Loads and applies the file; synced as soon as it is in. A bad file fails start().
  Status start(RegistrySink& sink, std::function<void()> on_synced) override;
  void stop() override {}

 private:
  std::string path_;
};

}  // namespace rdmesh::xds_server
