// Agent fabric, control path: session regions, and the node.sock session ops (session_listen,
// session_open, session_accept, session_refuse) with their fds over SCM_RIGHTS.
#include "rdmesh/transport/agent_fabric.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>

#include <cstdlib>
#include <new>

#include "agent_connection.h"
#include "shm_fabric.h"

namespace rdmesh::transport {

namespace agentwire = wire::agent;

std::string nodeSocketPath(std::string_view configured) {
  const char* env = std::getenv(kNodeSocketEnv);
  if (env != nullptr && *env != '\0') return env;
  return configured.empty() ? kDefaultNodeSocket : std::string(configured);
}

Result<MeshAddress> parseMeshAddress(std::string_view address) {
  size_t at = address.rfind('@');
  if (at == std::string_view::npos) {
    return invalidArgument(fmt::format("session address '{}' is not '<pod ip>@<node>'", address));
  }
  auto ip = canonicalIp(address.substr(0, at));
  if (!ip) {
    return invalidArgument(fmt::format("session address '{}': {}", address, ip.status().message()));
  }
  std::string node(address.substr(at + 1));
  if (!isValidNodeName(node)) {
    return invalidArgument(
        fmt::format("session address '{}': '{}' is not a node name", address, node));
  }
  return MeshAddress{std::move(ip.value()), std::move(node)};
}

Result<std::unique_ptr<AgentRegion>> AgentRegion::create(const agentwire::RegionLayout& layout) {
  auto memfd = MemfdRegion::create("rdmesh-agent-session", layout.region_bytes);
  if (!memfd) return memfd.status();
  auto* header = new (memfd.value()->bytes().data()) agentwire::RegionHeader{};
  header->layout = layout;
  return std::unique_ptr<AgentRegion>(new AgentRegion(std::move(memfd.value()), layout));
}

namespace {

// Session fds in the contract's order.
constexpr size_t kSessionFds = 3;

Result<HelloExchange> checkPeerHello(const Hello& local, Hello peer) {
  if (peer.fabric != wire::FabricKind::kAgent) {
    return protocolError(fmt::format("peer sidecar '{}' announced the {} fabric, not agent",
                                     peer.node_name, toString(peer.fabric)));
  }
  auto version = negotiateVersion(local, peer);
  if (!version) return version.status();
  return HelloExchange{std::move(peer), *version};
}

class AgentFabricImpl final : public AgentFabric {
 public:
  explicit AgentFabricImpl(AgentFabricOptions options) : options_(std::move(options)) {}

  wire::FabricKind kind() const override { return wire::FabricKind::kAgent; }

  Result<std::unique_ptr<MemoryRegion>> registerRegion(size_t bytes) override {
    AgentRegionSizes sizes = options_.region;
    sizes.receive_bytes = bytes;
    auto layout = buildAgentRegionLayout(sizes);
    if (!layout) return layout.status();
    auto region = AgentRegion::create(*layout);
    if (!region) return region.status();
    return std::unique_ptr<MemoryRegion>(std::move(region.value()));
  }

  Result<int> listen(const std::string& address) override {
    std::vector<std::string> ips;
    for (size_t start = 0; start <= address.size();) {
      size_t comma = address.find(',', start);
      if (comma == std::string::npos) comma = address.size();
      if (comma > start) ips.push_back(address.substr(start, comma - start));
      start = comma + 1;
    }
    return listenFor(ips, std::chrono::steady_clock::now() + options_.control_timeout);
  }

  Result<int> listenFor(const std::vector<std::string>& pod_ips, Deadline deadline) override {
    if (pod_ips.empty()) return invalidArgument("session_listen needs at least one pod IP");
    auto conn = connectSeqpacket(options_.socket_path);
    if (!conn) return conn.status();
    auto reply = request(conn->get(), encodeSessionListen(pod_ips, options_.exclude_outbound_ports),
                         {}, deadline, 0);
    if (!reply) return reply.status();
    if (!reply->message.reply.ok) {
      return unavailable(fmt::format("node agent refused session_listen for {}: {}",
                                     fmt::join(pod_ips, ","), reply->message.reply.error));
    }
    return conn->release();
  }

  Result<std::vector<AgentOffer>> readOffers(int listen_fd) override {
    std::vector<AgentOffer> offers;
    for (;;) {
      auto datagram = tryRecvDatagram(listen_fd, kMaxAgentMessageBytes, 0);
      if (!datagram) {
        return Status{datagram.status().code(),
                      "node agent listener: " + datagram.status().message()};
      }
      if (!datagram->has_value()) return offers;
      auto message = parseAgentMessage((*datagram)->bytes);
      if (!message) {
        // One bad message loses nothing else: the listener (and every other offer) stays.
        spdlog::warn("node agent: ignoring a bad message on the listener: {}",
                     message.status().message());
        continue;
      }
      switch (message->kind) {
        case AgentMessage::Kind::kOffer:
          offers.push_back(std::move(message->offer));
          break;
        case AgentMessage::Kind::kUnknownEvent:
          spdlog::debug("node agent: ignoring event '{}'", message->event);
          break;
        case AgentMessage::Kind::kReply:  // to a session_refuse
          if (!message->reply.ok) {
            spdlog::warn("node agent: session_refuse failed: {}", message->reply.error);
          }
          break;
      }
    }
  }

  Result<std::unique_ptr<FabricConnection>> connect(const std::string& address, const Hello& local,
                                                    std::unique_ptr<MemoryRegion> region,
                                                    Deadline deadline) override {
    auto to = parseMeshAddress(address);
    if (!to) return to.status();
    return establish(encodeSessionOpen(to->ip, to->node, local), local, std::move(region),
                     /*offer_hello=*/nullptr, deadline);
  }

  Result<std::unique_ptr<FabricConnection>> acceptOffer(const AgentOffer& offer, const Hello& local,
                                                        std::unique_ptr<MemoryRegion> region,
                                                        Deadline deadline) override {
    return establish(encodeSessionAccept(offer.offer_id, local), local, std::move(region),
                     &offer.peer_hello, deadline);
  }

  Result<std::unique_ptr<FabricConnection>> accept(int fd, const Hello&,
                                                   std::unique_ptr<MemoryRegion>,
                                                   Deadline) override {
    UniqueFd owned(fd);
    return internalError("agent fabric: sessions are accepted from offers, not from a listener");
  }

  Status refuseOffer(int listen_fd, uint64_t offer_id, std::string_view reason) override {
    std::string body = encodeSessionRefuse(offer_id, reason);
    return sendWithFds(listen_fd, std::as_bytes(std::span(body)), {},
                       std::chrono::steady_clock::now() + options_.control_timeout);
  }

 private:
  struct Reply {
    AgentMessage message;
    std::vector<UniqueFd> fds;
  };

  // One request and its reply on `conn`.
  Result<Reply> request(int conn, const std::string& body, std::span<const int> fds,
                        Deadline deadline, size_t max_reply_fds) {
    if (Status s = sendWithFds(conn, std::as_bytes(std::span(body)), fds, deadline); !s) {
      return Status{s.code(), "node agent: " + s.message()};
    }
    auto datagram = recvDatagram(conn, kMaxAgentMessageBytes, max_reply_fds, deadline);
    if (!datagram) {
      return Status{datagram.status().code(), "node agent: " + datagram.status().message()};
    }
    auto message = parseAgentMessage(datagram->bytes);
    if (!message) return message.status();
    if (message->kind != AgentMessage::Kind::kReply) {
      return protocolError(
          fmt::format("node agent: expected a reply, got event '{}'", message->event));
    }
    return Reply{std::move(message.value()), std::move(datagram->fds)};
  }

  // session_open (offer_hello null: we dial) or session_accept (the offer brought the peer's
  // Hello; the reply need not repeat it).
  Result<std::unique_ptr<FabricConnection>> establish(const std::string& body, const Hello& local,
                                                      std::unique_ptr<MemoryRegion> region,
                                                      const Hello* offer_hello, Deadline deadline) {
    auto* agent_region = dynamic_cast<AgentRegion*>(region.get());
    if (agent_region == nullptr) return internalError("agent fabric needs a region it registered");
    if (Status s = checkAgentRegionForHello(agent_region->layout(), local); !s) {
      return internalError(s.message());
    }
    UniqueFd to_agent(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    UniqueFd to_sidecar(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!to_agent || !to_sidecar) return internalError(errnoText("eventfd"));
    auto conn = connectSeqpacket(options_.socket_path);
    if (!conn) return conn.status();
    const int fds[kSessionFds] = {agent_region->fd(), to_agent.get(), to_sidecar.get()};
    auto reply = request(conn->get(), body, fds, deadline, /*max_reply_fds=*/1);
    if (!reply) return reply.status();
    const AgentReply& r = reply->message.reply;
    if (!r.ok) return unavailable("node agent: " + r.error);
    switch (r.mode) {
      case SessionMode::kAgent: {
        if (!r.has_peer_hello && offer_hello == nullptr) {
          return protocolError("node agent: mode agent without 'peer_hello'");
        }
        if (!reply->fds.empty()) return protocolError("node agent: mode agent with a descriptor");
        auto hello = checkPeerHello(local, r.has_peer_hello ? r.peer_hello : *offer_hello);
        if (!hello) return hello.status();
        // The connection owns the region from here on (agent_region is region's object).
        std::unique_ptr<AgentRegion> owned(static_cast<AgentRegion*>(region.release()));
        AgentConnection::Parts parts{std::move(conn.value()), std::move(hello.value()),
                                     std::move(owned), std::move(to_agent), std::move(to_sidecar)};
        return std::unique_ptr<FabricConnection>(new AgentConnection(std::move(parts)));
      }
      case SessionMode::kShm: {
        if (reply->fds.size() != 1) {
          return protocolError(
              "node agent: mode shm needs exactly one descriptor (socketpair end)");
        }
        // The peer is on this node: sidecar to sidecar over shared memory, the agent only
        // brokered the socketpair. The agent region is not needed.
        Hello shm_hello = local;
        shm_hello.fabric = wire::FabricKind::kShm;
        auto area = makeShmRegion(local.geometry.receiveAreaBytes());
        if (!area) return area.status();
        return bringUpShm(std::move(reply->fds[0]), shm_hello, std::move(area.value()),
                          /*dialer=*/offer_hello == nullptr, deadline, std::move(conn.value()));
      }
      case SessionMode::kNone:
        break;
    }
    return protocolError("node agent: reply has no 'mode'");
  }

  AgentFabricOptions options_;
};

}  // namespace

std::unique_ptr<AgentFabric> makeAgentFabric(AgentFabricOptions options) {
  return std::make_unique<AgentFabricImpl>(std::move(options));
}

}  // namespace rdmesh::transport
