// The xDS client: one long-lived stream to rdmesh-xds (docs/xds.md), state of the world or
// incremental (delta).
// Subscribes to the types it is given, hands every response to the owner's handler (which
// validates and applies it, or says why not), ACKs or NACKs accordingly, and reconnects with
// exponential backoff and jitter, rotating through the configured servers. While disconnected
// nothing changes: the owner keeps serving with the last configuration it accepted.
// Single-threaded on the given event_base.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "rdmesh/common/stats.h"
#include "rdmesh/common/status.h"
#include "rdmesh/xds/messages.h"
#include "rdmesh/xds/sotw_state.h"

struct event_base;

namespace rdmesh::xds {

struct ClientOptions {
  std::vector<std::string> servers;  // "host:port" (names resolved asynchronously)
  bool plaintext = false;            // h2c with prior knowledge instead of TLS
  std::string ca_file;               // TLS: CA bundle the server certificate must chain to
  std::string ca_pem;                // TLS: or that bundle's PEM text itself
  std::string server_name;           // TLS: expected certificate name (default: the host)
  ClientIdentity identity;
  std::vector<Subscription> subscriptions;  // in the order the requests are sent
  bool delta = false;  // the incremental stream (DeltaStream) instead of state of the world
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds initial_backoff{250};
  std::chrono::milliseconds max_backoff{15000};
};

// Judges one response: apply it and return OK (ACK), or leave everything as it was and return
// why not (NACK with that message). `resources` is the whole set of that type in scope.
using ResourceHandler = std::function<Status(ResourceType type, const std::string& version,
                                             const std::vector<Resource>& resources)>;

class Client {
 public:
  virtual ~Client() = default;
  // Connects and keeps connecting until destroyed.
  virtual void start() = 0;
  virtual bool connected() const = 0;
  // The server of the current (or last) stream, and why the last one ended.
  virtual std::string server() const = 0;
  virtual std::string lastError() const = 0;
  virtual const std::vector<TypeStatus>& status() const = 0;
};

// Stats (scope "xds"): connected, connect_attempts, streams_opened, disconnects, stream_errors;
// per type (scope "xds.<type>"): update_attempt, update_success, update_rejected, and the text
// "version" (the version in force).
Result<std::unique_ptr<Client>> makeClient(event_base* base, ClientOptions options,
                                           ResourceHandler handler, StatsStore& stats);

// The same, for a receiver with `Status onResources(type, version, resources)` that outlives the
// client (it owns it).
template <typename Receiver>
Result<std::unique_ptr<Client>> makeClientFor(event_base* base, ClientOptions options,
                                              Receiver* receiver, StatsStore& stats) {
  return makeClient(
      base, std::move(options),
      [receiver](ResourceType type, const std::string& version,
                 const std::vector<Resource>& resources) {
        return receiver->onResources(type, version, resources);
      },
      stats);
}

}  // namespace rdmesh::xds
