// A stand-in for rdmesh-node's session ops (docs/node-agent.md: session_listen, session_open,
// session_accept, session_refuse) for tests of the sidecar's agent fabric, on a real
// SOCK_SEQPACKET socket with the fds over SCM_RIGHTS. One thread serves the socket AND plays the
// agent's data path for the sessions it pairs: it maps both sidecars' regions, moves every
// Submission of one side into the other side's receive area (a memcpy where the real agent posts
// an RDMA write) and announces it as an Arrival, following the sleep/doorbell protocol of
// agent_wire.h. It can broker the shm mode instead, and misbehave on request.
//
// It has no pod registry: who opened a session is looked up by the node name in the opener's
// Hello (pod(hello_name, ip); tests run several sidecars in one process), else by the opener's
// process (SO_PEERCRED) among the sidecars that called session_listen.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "rdmesh/common/unique_fd.h"

namespace rdmesh::testing {

class FakeSessionAgent {
 public:
  // How the agent answers session_open (or session_accept) from now on until reset with kNone.
  enum class Misbehaviour {
    kNone,
    kRefuse,          // {"ok":false,"error":...}
    kSilent,          // never answers (the caller's deadline must hold)
    kGarbage,         // not JSON
    kNoMode,          // ok without "mode"
    kBadHello,        // peer_hello that does not parse
    kShmWithoutFd,    // mode shm but no descriptor
    kCloseConnection  // hangs up instead of answering
  };
  struct Counters {
    uint64_t sessions_paired = 0;
    uint64_t submissions_moved = 0;
    uint64_t bytes_moved = 0;
    uint64_t doorbells_to_agent = 0;    // rings the agent received
    uint64_t doorbells_to_sidecar = 0;  // rings it sent
    uint64_t sessions_closed = 0;
    uint64_t refusals = 0;
  };

  FakeSessionAgent(std::string socket_path, std::string node_name);
  ~FakeSessionAgent();
  FakeSessionAgent(const FakeSessionAgent&) = delete;
  FakeSessionAgent& operator=(const FakeSessionAgent&) = delete;

  const std::string& path() const { return path_; }
  // The sidecar whose Hello says `hello_name` has pod IP `ip` (reported as peer_ip in offers).
  void pod(const std::string& hello_name, const std::string& ip);
  // Pair sessions over shm (same node) instead of carrying them.
  void setShmMode(bool shm);
  void misbehave(Misbehaviour how);
  // Offers reach the listeners only once `opens` session_open requests have arrived: both sides
  // of a simultaneous open have dialed before either hears of the other.
  void holdOffersUntilOpens(size_t opens);
  // Sets `closed` in every session region and hangs up every session connection.
  void closeAllSessions();
  Counters counters() const;
  std::vector<std::string> ops() const;  // "op" of every request, in order
  size_t activeSessions() const;
  size_t listeners() const;

 private:
  struct Impl;
  std::string path_;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
};

}  // namespace rdmesh::testing
