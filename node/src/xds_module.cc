#include "xds_module.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "rdmesh/common/address.h"
#include "rdmesh/xds/bootstrap.h"
#include "rdmesh/xds/client_status.h"
#include "rdmesh/xds/registration_client.h"

namespace rdmesh::node {

using nlohmann::json;
using xds::ResourceType;

namespace {

// Why an address cannot be dialed as a peer's, or "" when it can.
std::string unusable(const InetAddress& address) {
  std::string_view raw = address.rawIp();
  auto byte = [&](size_t i) { return static_cast<uint8_t>(raw[i]); };
  if (std::all_of(raw.begin(), raw.end(), [](char c) { return c == 0; })) return "unspecified";
  if (address.isV4()) {
    if (byte(0) >= 224 && byte(0) <= 239) return "multicast";
    if (std::all_of(raw.begin(), raw.end(),
                    [](char c) { return static_cast<uint8_t>(c) == 255; })) {
      return "broadcast";
    }
  } else if (byte(0) == 0xff) {
    return "multicast";
  }
  return "";
}

Result<InetAddress> usableIp(const std::string& text, uint16_t port, const std::string& where) {
  Result<InetAddress> address = InetAddress::fromIp(text, port);
  if (!address) return invalidArgument(fmt::format("{}: '{}' is not an IP address", where, text));
  if (std::string why = unusable(*address); !why.empty()) {
    return invalidArgument(fmt::format("{}: {} is {}", where, text, why));
  }
  return address;
}

PeerFabric peerFabric(xds::FabricKind kind) {
  switch (kind) {
    case xds::FabricKind::kVerbs:
      return PeerFabric::kVerbs;
    case xds::FabricKind::kShm:
      return PeerFabric::kShm;
    case xds::FabricKind::kTcp:
      break;
  }
  return PeerFabric::kTcp;
}

}  // namespace

std::string_view toString(PeerFabric fabric) {
  switch (fabric) {
    case PeerFabric::kVerbs:
      return "verbs";
    case PeerFabric::kShm:
      return "shm";
    case PeerFabric::kTcp:
      break;
  }
  return "tcp";
}

json toJson(const PeerNode& peer) {
  json j = {{"name", peer.name},
            {"addresses", peer.addresses},
            {"fabric", toString(peer.fabric)},
            {"session_address", peer.session_address}};
  if (peer.rdma_gid) j["rdma_gid"] = *peer.rdma_gid;
  return j;
}

Result<std::vector<PeerNode>> peersFromNodes(const std::vector<xds::Resource>& nodes,
                                             const std::string& self) {
  std::vector<PeerNode> peers;
  std::map<std::string, std::string> by_session_address;  // canonical address -> node
  for (const xds::Resource& resource : nodes) {
    const auto* node = std::get_if<xds::Node>(&resource);
    if (node == nullptr) return invalidArgument("a Node response carries another resource type");
    if (node->name == self) continue;
    const std::string where = "node " + node->name;
    PeerNode peer;
    peer.name = node->name;
    peer.fabric = peerFabric(node->fabric);
    for (size_t i = 0; i < node->addresses.size(); ++i) {
      Result<InetAddress> ip =
          usableIp(node->addresses[i], 0, fmt::format("{} addresses[{}]", where, i));
      if (!ip) return ip.status();
      peer.addresses.push_back(ip->ipString());
    }
    Result<InetAddress> session = InetAddress::parse(node->session_address);
    if (!session) {
      return invalidArgument(
          fmt::format("{} session_address: {}", where, session.status().message()));
    }
    if (session->port() == 0) {
      return invalidArgument(
          fmt::format("{} session_address: {} has port 0", where, node->session_address));
    }
    if (std::string why = unusable(*session); !why.empty()) {
      return invalidArgument(
          fmt::format("{} session_address: {} is {}", where, node->session_address, why));
    }
    peer.session_address = session->toString();
    auto [it, fresh] = by_session_address.emplace(peer.session_address, node->name);
    if (!fresh) {
      return invalidArgument(fmt::format("{} session_address: {} is also node {}'s", where,
                                         peer.session_address, it->second));
    }
    if (node->rdma && node->rdma->gid) {
      // A GID is 16 bytes written as an IPv6 address (what ibv_query_gid gives, in text).
      in6_addr gid{};
      if (inet_pton(AF_INET6, node->rdma->gid->c_str(), &gid) != 1) {
        return invalidArgument(fmt::format(
            "{} rdma.gid: '{}' is not a GID (16 bytes, IPv6 notation)", where, *node->rdma->gid));
      }
      peer.rdma_gid = *node->rdma->gid;
    }
    peers.push_back(std::move(peer));
  }
  std::sort(peers.begin(), peers.end(),
            [](const PeerNode& a, const PeerNode& b) { return a.name < b.name; });
  return peers;
}

NodeXdsModule::NodeXdsModule(event_base* base, std::string node_name, PodRegistry& registry,
                             StatsStore& stats)
    : node_name_(std::move(node_name)),
      registry_(registry),
      pods_changed_(event_new(base, -1, 0, &NodeXdsModule::onPodsChanged, this)),
      peers_gauge_(stats.gauge("node.peers", "known")) {}

NodeXdsModule::~NodeXdsModule() {
  registry_.setOnChange(nullptr);
  client_.reset();
  registrar_.reset();
  event_free(pods_changed_);
}

Result<std::unique_ptr<NodeXdsModule>> NodeXdsModule::create(event_base* base,
                                                             const std::string& node_name,
                                                             const NodeXdsConfig& config,
                                                             PodRegistry& registry,
                                                             StatsStore& stats) {
  std::unique_ptr<NodeXdsModule> module(new NodeXdsModule(base, node_name, registry, stats));
  if (!config.registration_token_file.empty()) {
    // Read now so that a wrong path fails the start; then on every call (tokens rotate).
    Result<std::string> token = xds::readTokenFile(config.registration_token_file);
    if (!token) return invalidArgument("xds.registration_token_file: " + token.status().message());
    auto api = xds::makeRegistrationClient(
        base, config, [path = config.registration_token_file] { return xds::readTokenFile(path); });
    if (!api) return api.status();
    WorkloadRegistrar::Options options;
    options.node_name = node_name;
    options.trust_domain = config.trust_domain;
    module->registrar_ = std::make_unique<WorkloadRegistrar>(base, std::move(options),
                                                             std::move(api.value()), stats);
  }

  xds::ClientOptions options;
  xds::applyBootstrap(config, &options);
  options.identity.role = xds::ClientRole::kNode;
  options.identity.node_name = node_name;
  // Nodes first: a peer list is useful at once; Workloads (this node's) feed reconciliation.
  options.subscriptions = {{ResourceType::kNode, {}}, {ResourceType::kWorkload, {}}};
  auto client = xds::makeClientFor(base, std::move(options), module.get(), stats);
  if (!client) return client.status();
  module->client_ = std::move(client.value());
  return module;
}

void NodeXdsModule::start() {
  if (registrar_) {
    // Several changes before the loop runs again are registered as one.
    registry_.setOnChange([this] { event_active(pods_changed_, 0, 0); });
    registrar_->onPodsChanged(registry_.pods());
  }
  client_->start();
}

void NodeXdsModule::onPodsChanged(int, short, void* arg) {
  auto* self = static_cast<NodeXdsModule*>(arg);
  self->registrar_->onPodsChanged(self->registry_.pods());
}

void NodeXdsModule::registerOps(OpTable& table) {
  table.add("peers", [this](const RequestEnvelope&, RequestFds&) -> Result<json> {
    json list = json::array();
    for (const PeerNode& peer : peers_) list.push_back(toJson(peer));
    return json{{"node", node_name_}, {"peers", list}};
  });
  table.add("xds", [this](const RequestEnvelope&, RequestFds&) -> Result<json> {
    return json{{"node", node_name_}, {"xds", statusJson()}};
  });
}

void NodeXdsModule::onPeersChanged(PeersChanged observer) {
  if (!peers_.empty()) observer(peers_);
  observers_.push_back(std::move(observer));
}

Status NodeXdsModule::onResources(ResourceType type, const std::string& version,
                                  const std::vector<xds::Resource>& resources) {
  switch (type) {
    case ResourceType::kNode: {
      Result<std::vector<PeerNode>> peers = peersFromNodes(resources, node_name_);
      if (!peers) {
        spdlog::warn("xds: Node update {} rejected: {}", version, peers.status().message());
        return peers.status();
      }
      if (*peers == peers_) return {};
      peers_ = std::move(peers.value());
      peers_gauge_.set(peers_.size());
      spdlog::info("xds: {} peer node(s) (version {})", peers_.size(), version);
      for (const PeersChanged& observer : observers_) observer(peers_);
      return {};
    }
    case ResourceType::kWorkload: {
      std::vector<xds::Workload> workloads;
      for (const xds::Resource& resource : resources) {
        const auto* workload = std::get_if<xds::Workload>(&resource);
        if (workload == nullptr) {
          return invalidArgument("a Workload response carries another resource type");
        }
        workloads.push_back(*workload);
      }
      if (registrar_) {
        if (client_) registrar_->preferServer(client_->server());
        registrar_->onServerWorkloads(workloads);
      }
      return {};
    }
    default:
      return invalidArgument(
          fmt::format("{} is not a type rdmesh-node subscribes to", xds::shortName(type)));
  }
}

json NodeXdsModule::statusJson() const {
  json out = xds::clientStatusJson<json>(client_.get());
  out["peers"] = peers_.size();
  out["registration"] = registrar_ ? registrar_->statusJson() : json(nullptr);
  return out;
}

}  // namespace rdmesh::node
