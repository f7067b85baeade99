// libFuzzer target for node.sock requests: the envelope, every op's field parser and the op
// dispatch (pod ops on an in-memory registry and maps). Properties beyond "never crash": every
// reply is a JSON object with a boolean "ok"; a failed one carries a non-empty "error"; the maps
// and the registry agree after every request.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "../common/memory_interception_maps.h"
#include "op_table.h"
#include "pod_module.h"

namespace {

[[noreturn]] void failProperty(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_node_request: %s\n%s\n", what, detail.c_str());
  std::abort();
}

struct Agent {
  rdmesh::StatsStore stats;
  rdmesh::node::PodRegistry registry{""};
  rdmesh::testing::MemoryInterceptionMaps maps;
  // Any netns path resolves to a cookie derived from it; "/bad" paths fail, like a missing one.
  rdmesh::node::PodModule pods{registry, &maps,
                               [](const std::string& path) -> rdmesh::Result<uint64_t> {
                                 if (path.rfind("/bad", 0) == 0)
                                   return rdmesh::invalidArgument("no such netns");
                                 return std::hash<std::string>{}(path) | 1;
                               },
                               stats};
  rdmesh::node::OpTable ops;
  Agent() { pods.registerOps(ops); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Agent* agent = new Agent();  // state carries across inputs, as a live agent's does
  rdmesh::node::RequestFds fds;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  // Each line is one request, so one input can drive a sequence (add, then del, ...).
  size_t start = 0;
  while (start <= input.size()) {
    size_t end = input.find('\n', start);
    if (end == std::string_view::npos) end = input.size();
    std::string_view line = input.substr(start, end - start);
    // The session ops' field parsers (their handlers need a live agent with links).
    if (auto envelope = rdmesh::node::parseEnvelope(line)) {
      auto expectMessage = [](const auto& result) {
        if (!result && result.status().message().empty()) {
          failProperty("session op error without a message", "");
        }
      };
      expectMessage(rdmesh::node::parseSessionListen(envelope->body));
      expectMessage(rdmesh::node::parseSessionOpen(envelope->body));
      expectMessage(rdmesh::node::parseSessionAccept(envelope->body));
      expectMessage(rdmesh::node::parseSessionRefuse(envelope->body));
    }
    rdmesh::node::Reply reply = agent->ops.dispatch(line, fds);
    auto j = nlohmann::json::parse(reply.datagram, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      failProperty("reply is not a JSON object", reply.datagram);
    if (!j.contains("ok") || !j["ok"].is_boolean() || j["ok"].get<bool>() != reply.ok) {
      failProperty("reply has no boolean ok matching the dispatch", reply.datagram);
    }
    if (!reply.ok && (!j.contains("error") || !j["error"].is_string() ||
                      j["error"].get_ref<const std::string&>().empty())) {
      failProperty("error reply without an error message", reply.datagram);
    }
    for (const auto& [id, record] : agent->registry.pods()) {
      if (agent->maps.pods.count(record.netns_cookie) == 0) {
        failProperty("registered pod missing from the maps", id);
      }
    }
    if (agent->maps.pods.size() != agent->registry.pods().size()) {
      failProperty("maps hold a pod the registry does not", reply.datagram);
    }
    start = end + 1;
  }
  return 0;
}
