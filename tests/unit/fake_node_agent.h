// A stand-in for rdmesh-node's socket (node-sock contract v1) for tests of its clients: it serves
// pod_add / pod_del / pod_check / pod_list on a real SOCK_SEQPACKET socket from one thread, keeps
// the registered pods in memory, resolves the real netns cookie of each pod (as the agent does),
// records every request, and can be told to misbehave (refuse, stay silent, send garbage).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "rdmesh/common/unique_fd.h"

namespace rdmesh::testing {

class FakeNodeAgent {
 public:
  struct Pod {
    nlohmann::json request;  // the pod_add that registered it
    uint64_t netns_cookie = 0;
  };
  // How the agent answers the next request of an op (then it goes back to normal). kSilent
  // applies the request but sends no reply (a reply lost after the work was done).
  enum class Misbehaviour { kRefuse, kSilent, kGarbage, kOversized, kCloseConnection };

  // Listens on `socket_path` (removed first if it exists; removed again by the destructor).
  explicit FakeNodeAgent(std::string socket_path);
  ~FakeNodeAgent();
  FakeNodeAgent(const FakeNodeAgent&) = delete;
  FakeNodeAgent& operator=(const FakeNodeAgent&) = delete;

  const std::string& path() const { return path_; }
  std::vector<nlohmann::json> requests() const;
  std::vector<std::string> ops() const;  // the "op" of every request, in order
  std::map<std::string, Pod> pods() const;
  void misbehaveOnce(const std::string& op, Misbehaviour how);

 private:
  void loop();
  void handle(int fd, const std::string& datagram);
  nlohmann::json answer(const nlohmann::json& request);

  std::string path_;
  UniqueFd listen_;
  UniqueFd wake_;
  mutable std::mutex mu_;
  std::vector<nlohmann::json> requests_;
  std::map<std::string, Pod> pods_;
  std::map<std::string, Misbehaviour> misbehave_;
  std::thread thread_;
};

}  // namespace rdmesh::testing
