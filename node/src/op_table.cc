#include "op_table.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <exception>

namespace rdmesh::node {

namespace {

Reply failed(std::string_view message) {
  Reply r;
  r.datagram = errorReply(message);
  return r;
}

}  // namespace

void OpTable::add(std::string op, OpHandler handler) {
  ops_[std::move(op)] = [handler = std::move(handler)](const RequestEnvelope& request,
                                                       RequestFds& fds,
                                                       const ConnectionRef&) -> Result<OpResult> {
    Result<nlohmann::json> fields = handler(request, fds);
    if (!fields) return fields.status();
    OpResult result;
    result.fields = std::move(*fields);
    return result;
  };
}

void OpTable::add(std::string op, ConnectionOpHandler handler) {
  ops_[std::move(op)] = std::move(handler);
}

Reply OpTable::dispatch(std::string_view datagram, RequestFds& fds,
                        const ConnectionRef& connection) const {
  Result<RequestEnvelope> request = parseEnvelope(datagram);
  if (!request) return failed(request.status().message());
  auto it = ops_.find(request->op);
  if (it == ops_.end()) {
    std::string known;
    for (const auto& [name, handler] : ops_) known += (known.empty() ? "" : ", ") + name;
    return failed(fmt::format("field 'op': unknown op '{}' (known: {})", request->op, known));
  }
  // The handlers return errors as values; this only keeps a library surprise (allocation,
  // nlohmann internals) from crossing the event loop.
  try {
    Result<OpResult> result = it->second(*request, fds, connection);
    if (!result) return failed(result.status().message());
    Reply reply;
    reply.ok = true;
    reply.deferred = result->deferred;
    if (!reply.deferred) reply.datagram = okReply(std::move(result->fields));
    reply.fds = std::move(result->fds);
    return reply;
  } catch (const std::exception& e) {
    spdlog::error("node.sock op '{}': internal error: {}", request->op, e.what());
    return failed(fmt::format("internal error in op '{}': {}", request->op, e.what()));
  }
}

}  // namespace rdmesh::node
