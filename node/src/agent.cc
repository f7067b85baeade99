#include "agent.h"

#include <event2/event.h>
#include <spdlog/spdlog.h>

#include <csignal>

#include "rdmesh/capture/bpf_capture.h"
#include "rdmesh/capture/netns_cookie.h"

namespace rdmesh::node {

using nlohmann::json;

namespace {
constexpr std::chrono::microseconds kMaxSpin{50};
}  // namespace

NodeAgent::NodeAgent(NodeAgentConfig config, LinkDomainFactory link_domains)
    : config_(std::move(config)),
      link_domains_(std::move(link_domains)),
      base_(event_base_new()),
      registry_(config_.state_file) {}

NodeAgent::~NodeAgent() {
  socket_.reset();
  poller_.reset();
  modules_.clear();
  maps_.reset();
  for (event* ev : signal_events_) event_free(ev);
  event_base_free(base_);
}

Status NodeAgent::start() {
  if (Status s = registry_.load(); !s) return s;
  if (config_.bpf) {
    Result<std::unique_ptr<capture::InterceptionMaps>> maps =
        capture::installBpfCapture({config_.cgroup_path, config_.pin_dir});
    if (!maps) return maps.status();
    maps_ = std::move(*maps);
  } else {
    spdlog::info("eBPF capture off: pods are registered only (LD_PRELOAD capture)");
  }
  auto pods = std::make_unique<PodModule>(registry_, maps_.get(), capture::netnsCookie, stats_);
  pod_module_ = pods.get();
  // Pinned maps survive restarts; fresh ones (first start after --uninstall) are refilled.
  pods->restoreMaps();
  modules_.push_back(std::move(pods));
  if (config_.xds) {
    auto xds = NodeXdsModule::create(base_, config_.node_name, *config_.xds, registry_, stats_);
    if (!xds) return xds.status();
    xds_ = xds->get();
    modules_.push_back(std::move(xds.value()));
  }
  if (config_.fabric.enabled) {
    if (Status s = startFabric(); !s) return s;
  }
  // With both on, the control plane's Node list replaces the static peers, live.
  if (xds_ != nullptr && fabric_ != nullptr) {
    xds_->onPeersChanged([this](const std::vector<PeerNode>& peers) {
      std::vector<transport::PeerSpec> specs;
      specs.reserve(peers.size());
      for (const PeerNode& peer : peers) specs.push_back({peer.name, peer.session_address});
      fabric_->setPeers(std::move(specs));
    });
  }
  for (auto& m : modules_) m->registerOps(ops_);
  ops_.add("stats", [this](const RequestEnvelope&, RequestFds&) { return statsOp(); });

  socket_ = std::make_unique<NodeSocketServer>(base_, ops_, stats_);
  if (Status s = socket_->listen(config_.socket_path); !s) return s;
  for (int sig : {SIGTERM, SIGINT}) {
    event* ev = evsignal_new(base_, sig, &NodeAgent::onSignal, this);
    event_add(ev, nullptr);
    signal_events_.push_back(ev);
  }
  // After node.sock is up: the control plane is never on the pod path.
  if (xds_ != nullptr) xds_->start();
  spdlog::info("rdmesh-node '{}' ready: {} pod(s) registered", config_.node_name,
               registry_.pods().size());
  return {};
}

Status NodeAgent::startFabric() {
  std::unique_ptr<transport::LinkDomain> domain;
  if (link_domains_) {
    transport::LinkDomainOptions options;
    options.node_name = config_.node_name;
    options.rdma = config_.fabric.rdma;
    options.on_demand_paging = config_.fabric.on_demand_paging;
    options.verbs = config_.fabric.verbs;
    Result<std::unique_ptr<transport::LinkDomain>> made = link_domains_(options);
    if (!made) return made.status();
    domain = std::move(*made);
  }
  FabricOptions options;
  options.node_name = config_.node_name;
  options.listen_address = config_.fabric.listen;
  options.peers = config_.fabric.peers;
  options.verify_caller_netns = config_.fabric.verify_caller_netns;
  if (maps_ != nullptr) {
    options.exclude_ports = [pods = pod_module_](const PodRecord& pod,
                                                 const std::vector<uint16_t>& ports) {
      return pods->excludeSidecarPorts(pod.spec.container_id, ports);
    };
  }
  if (!options.verify_caller_netns) {
    spdlog::warn("fabric: verify_caller_netns is off: any local process may claim any pod IP");
  }
  auto fabric = std::make_unique<FabricModule>(base_, std::move(options), std::move(domain),
                                               registry_, capture::netnsCookie, stats_);
  if (Status s = fabric->start(); !s) return s;
  fabric_ = fabric.get();
  poller_ = std::make_unique<transport::AdaptivePoller>(base_, kMaxSpin);
  poller_->add(fabric_);
  modules_.push_back(std::move(fabric));
  return {};
}

int NodeAgent::run() {
  if (poller_ != nullptr) {
    poller_->run();
  } else {
    event_base_dispatch(base_);
  }
  socket_->close();
  spdlog::info("rdmesh-node stopped; capture stays attached (rdmesh-node --uninstall removes it)");
  return 0;
}

void NodeAgent::onSignal(int sig, short /*what*/, void* arg) {
  auto* self = static_cast<NodeAgent*>(arg);
  spdlog::info("signal {}: shutting down", sig);
  if (self->poller_ != nullptr) self->poller_->stop();
  event_base_loopbreak(self->base_);
}

Result<json> NodeAgent::statsOp() {
  if (maps_ != nullptr) {
    capture::CaptureCounters c = maps_->counters();
    for (auto [name, value] :
         {std::pair{"captured", c.captured}, std::pair{"skipped_uid", c.skipped_uid},
          std::pair{"skipped_port", c.skipped_port},
          std::pair{"skipped_loopback", c.skipped_loopback},
          std::pair{"answered_after_app_close", c.answered_after_app_close},
          std::pair{"original_dst_answered", c.original_dst_answered},
          std::pair{"records", c.records}}) {
      stats_.gauge("node.capture", name).set(value);
    }
  }
  if (fabric_ != nullptr) fabric_->refreshStats();
  StatsStore::Snapshot snapshot = stats_.snapshot();
  json out = json::object();
  for (const auto& e : snapshot.numbers) out[e.name] = e.value;
  json texts = json::object();
  for (const auto& [name, value] : snapshot.texts) texts[name] = value;
  json reply = {{"node", config_.node_name}, {"stats", out}, {"texts", texts}};
  if (xds_ != nullptr) {
    json peers = json::array();
    for (const PeerNode& peer : xds_->peers()) peers.push_back(peer.name);
    reply["peers"] = peers;
  }
  return reply;
}

}  // namespace rdmesh::node
