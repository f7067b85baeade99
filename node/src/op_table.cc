#include "op_table.h"

#include <spdlog/spdlog.h>

#include <exception>

#include <fmt/format.h>

namespace rdmesh::node {

Reply OpTable::dispatch(std::string_view datagram, RequestFds& fds) const {
  Result<RequestEnvelope> request = parseEnvelope(datagram);
  if (!request) return {errorReply(request.status().message()), false};
  auto it = ops_.find(request->op);
  if (it == ops_.end()) {
    std::string known;
    for (const auto& [name, handler] : ops_) known += (known.empty() ? "" : ", ") + name;
    return {errorReply(fmt::format("field 'op': unknown op '{}' (known: {})", request->op, known)),
            false};
  }
  // The handlers return errors as values; this only keeps a library surprise (allocation,
  // nlohmann internals) from crossing the event loop.
  try {
    Result<nlohmann::json> fields = it->second(*request, fds);
    if (!fields) return {errorReply(fields.status().message()), false};
    return {okReply(std::move(*fields)), true};
  } catch (const std::exception& e) {
    spdlog::error("node.sock op '{}': internal error: {}", request->op, e.what());
    return {errorReply(fmt::format("internal error in op '{}': {}", request->op, e.what())), false};
  }
}

}  // namespace rdmesh::node
