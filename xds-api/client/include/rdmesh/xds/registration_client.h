// The client side of rdmesh-xds's registration API (docs/xds.md, "Registration API"):
// PUT/DELETE /v1/workloads/<ns>/<pod> and /v1/nodes/<name> with a bearer token, over HTTP/2 on
// the xDS ports (TLS with ALPN h2, or h2c), one short request per call. Used by rdmesh-node to
// register the pods of its node. Single-threaded on the given event_base.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "rdmesh/common/status.h"
#include "rdmesh/xds/bootstrap.h"
#include "rdmesh/xds/resources.h"

struct event_base;

namespace rdmesh::xds {

// How a call ended. OK: the server applied it (2xx). kInvalidArgument: the server refused the
// request itself (400, 413: retrying the same request cannot help). kUnavailable: not reached,
// 5xx, or an authorization failure (401/403: the token may be fixed or rotated; retry later).
using RegistrationDone = std::function<void(const Status& result)>;

class RegistrationClient {
 public:
  virtual ~RegistrationClient() = default;
  // `done` is called once, from the loop (never inside the call). Calls may overlap.
  virtual void putWorkload(const Workload& workload, RegistrationDone done) = 0;
  virtual void deleteWorkload(const std::string& name, RegistrationDone done) = 0;
  // Prefer this server ("host:port", one of the bootstrap's) for the next calls, e.g. the one
  // the discovery stream is connected to. After a failure the client moves to the next one.
  virtual void preferServer(const std::string& server) = 0;
};

// The bearer token, asked for on every call so that a rotated token file is picked up.
using TokenSource = std::function<Result<std::string>()>;

Result<std::unique_ptr<RegistrationClient>> makeRegistrationClient(event_base* base,
                                                                   const Bootstrap& connection,
                                                                   TokenSource token);

// Reads a bearer token file: its first line, trimmed; an empty token is an error.
Result<std::string> readTokenFile(const std::string& path);

}  // namespace rdmesh::xds
