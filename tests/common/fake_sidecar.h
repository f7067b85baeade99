// The sidecar's side of mesh mode, as tests need it (agent_wire.h, docs/node-agent.md): a memfd
// region laid out as the contract says, its two eventfd doorbells, node.sock requests with fds,
// submissions into the send staging and arrivals from the completion queue (with the sleep
// protocol). Shared by the unit tests of the session switch and the integration test's sidecar
// program (tests/integration/fake_sidecar_main.cc).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "rdmesh/common/status.h"
#include "rdmesh/common/unique_fd.h"
#include "rdmesh/transport/agent_wire.h"
#include "rdmesh/transport/hello.h"

namespace rdmesh::testing {

// A small session geometry (the receive area is what the Hello announces).
transport::Hello smallHello(const std::string& node);

// node.sock client connection (SOCK_SEQPACKET).
class NodeSocketClient {
 public:
  static Result<NodeSocketClient> connect(const std::string& path);
  // One request; the reply (or an event that came first, when `skip_events` is false).
  Result<nlohmann::json> request(const nlohmann::json& body, std::span<const int> fds = {},
                                 std::vector<UniqueFd>* reply_fds = nullptr,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // The next datagram (an event or a deferred reply), with its fds.
  Result<nlohmann::json> receive(std::vector<UniqueFd>* fds, std::chrono::milliseconds timeout);
  Status send(const nlohmann::json& body, std::span<const int> fds = {});
  // True once the agent closed the connection (waits up to `timeout`).
  bool hungUp(std::chrono::milliseconds timeout);
  int fd() const { return fd_.get(); }
  void close() { fd_.reset(); }

 private:
  UniqueFd fd_;
};

struct RegionShape {
  uint32_t sq_depth = 256;
  uint32_t cq_depth = 256;
  uint64_t staging_bytes = 256u << 10;
  // true: created and sealed as rdmesh-proxy does (MFD_ALLOW_SEALING, F_SEAL_SHRINK |
  // F_SEAL_GROW); false: a memfd that cannot be sealed (the agent must refuse it).
  bool sealed = true;
};

class FakeRegion {
 public:
  // A region for `hello`'s receive area; `corrupt` may edit the layout before it is written.
  static Result<std::unique_ptr<FakeRegion>> create(
      const transport::Hello& hello, RegionShape shape = {},
      const std::function<void(wire::agent::RegionLayout&)>& corrupt = nullptr);
  ~FakeRegion();

  // Fds in the contract's order (memfd, doorbell to agent, doorbell to sidecar); still owned.
  std::vector<int> fds() const;
  const wire::agent::RegionLayout& layout() const { return layout_; }
  wire::agent::RegionHeader& header() {
    return *reinterpret_cast<wire::agent::RegionHeader*>(base_);
  }
  std::span<std::byte> staging();
  std::span<std::byte> receiveArea();

  // Copies `bytes` to staging at `staging_offset` and asks for them at `remote_offset` of the
  // peer's receive area (a data immediate on `slot`); rings the agent if it sleeps.
  Status submit(uint64_t staging_offset, uint64_t remote_offset, std::span<const std::byte> bytes,
                uint32_t slot = 1);
  // A raw submission (for bounds tests).
  void submitRaw(const wire::agent::Submission& s);
  // Waits for the next arrival (sleeping on the doorbell as the contract says).
  std::optional<wire::agent::Arrival> nextArrival(std::chrono::milliseconds timeout);
  // Waits until every submission so far has completed.
  bool waitCompleted(std::chrono::milliseconds timeout);

 private:
  UniqueFd memfd_, to_agent_, to_sidecar_;
  std::byte* base_ = nullptr;
  wire::agent::RegionLayout layout_{};
};

}  // namespace rdmesh::testing
