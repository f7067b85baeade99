// Tells rdmesh-xds which pods run on this node (docs/node-agent.md, "Joining the control
// plane"). The pod registry is the source of truth; the registrar keeps rdmesh-xds in step with
// it through the registration API, never on the pod_add path: a change is queued, sent in the
// background, retried with backoff while rdmesh-xds is down, and re-checked against what
// rdmesh-xds actually has (this node's Workloads, from the agent's subscription) after every
// (re)connect: missing pods are registered again, stale ones the agent registered are deleted.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "pod_registry.h"
#include "rdmesh/common/stats.h"
#include "rdmesh/xds/registration_client.h"
#include "rdmesh/xds/resources.h"

struct event;
struct event_base;

namespace rdmesh::node {

// Labels the agent puts on the Workloads it registers: ownership (it deletes only its own) and
// the container id of the pod's sandbox.
inline constexpr const char* kRegisteredByLabel = "rdmesh.io/registered-by";
inline constexpr const char* kRegisteredByValue = "rdmesh-node";
inline constexpr const char* kContainerIdLabel = "rdmesh.io/container-id";

// The Workload a registered pod becomes, or nullopt when the pod has no name/namespace (a
// runtime without Kubernetes arguments: nothing to name it by). The service account defaults
// to "default", as in Kubernetes.
std::optional<xds::Workload> workloadOf(const PodAddRequest& pod, const std::string& node_name,
                                        const std::string& trust_domain);

// Whether rdmesh-node registered this Workload (and so may delete it).
bool isRegisteredByNode(const xds::Workload& workload);

// What to send to bring the server in step: pure, so the rules are unit-tested.
struct RegistrationPlan {
  std::vector<xds::Workload> put;   // missing at the server or different there
  std::vector<std::string> remove;  // owned by the agent at the server, no longer a pod here
  bool operator==(const RegistrationPlan&) const = default;
};
// `desired` and `at_server` are keyed by Workload name; `at_server` holds only the Workloads
// the agent owns. Names in `busy` (a call in flight) and desired Workloads equal to one the
// server refused (`refused`, name -> that Workload) are left alone.
RegistrationPlan planRegistrations(const std::map<std::string, xds::Workload>& desired,
                                   const std::map<std::string, xds::Workload>& at_server,
                                   const std::set<std::string>& busy,
                                   const std::map<std::string, xds::Workload>& refused);

class WorkloadRegistrar {
 public:
  struct Options {
    std::string node_name;
    std::string trust_domain = "cluster.local";
    std::chrono::milliseconds initial_backoff{250};
    std::chrono::milliseconds max_backoff{15000};
  };
  // Stats (scope "node.registrar"): put_total, delete_total, failures_total, refused_total,
  // pending (changes not yet confirmed), registered (Workloads the server has from us),
  // unnamed_pods (pods without name/namespace, not registered).
  WorkloadRegistrar(event_base* base, Options options,
                    std::unique_ptr<xds::RegistrationClient> client, StatsStore& stats);
  ~WorkloadRegistrar();
  WorkloadRegistrar(const WorkloadRegistrar&) = delete;
  WorkloadRegistrar& operator=(const WorkloadRegistrar&) = delete;

  // The registry changed (or the agent started): recompute what the server should have.
  void onPodsChanged(const std::map<std::string, PodRecord>& pods);
  // This node's Workloads as the server has them (each accepted Workload response): the
  // truth to reconcile against; also ends any backoff (the server is evidently back).
  void onServerWorkloads(const std::vector<xds::Workload>& workloads);
  // The discovery stream's server: registrations go there first.
  void preferServer(const std::string& server) { client_->preferServer(server); }

  nlohmann::json statusJson() const;

 private:
  void reconcile();
  void onCallDone(const std::string& name, std::optional<xds::Workload> put, const Status& result);
  void startBackoff();
  static void onBackoffTimer(int, short, void* arg);
  void updateGauges(const RegistrationPlan& plan);

  event_base* base_;
  Options options_;
  std::unique_ptr<xds::RegistrationClient> client_;
  std::map<std::string, xds::Workload> desired_;
  std::map<std::string, xds::Workload> at_server_;
  std::map<std::string, xds::Workload> refused_;
  std::set<std::string> busy_;
  event* backoff_timer_;
  std::chrono::milliseconds backoff_;
  bool backing_off_ = false;
  std::string last_error_;
  Counter& put_total_;
  Counter& delete_total_;
  Counter& failures_total_;
  Counter& refused_total_;
  Gauge& pending_;
  Gauge& registered_;
  Gauge& unnamed_pods_;
};

}  // namespace rdmesh::node
