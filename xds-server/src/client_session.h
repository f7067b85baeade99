// One client's discovery stream, protocol logic only (no I/O): reads request lines, tracks per
// type what was sent, acknowledged and rejected, and produces the next response line when the
// stream can take one. State of the world and delta share it; both are unit-tested directly.
//
// Pull model: a registry change only marks types dirty. The transport asks for the next line
// when the stream has room, so a slow client costs at most one pending response, and it gets
// the newest version when it catches up, never a backlog.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "catalog.h"
#include "rdmesh/common/status.h"
#include "rdmesh/xds/messages.h"

namespace rdmesh::xds_server {

using Clock = std::chrono::steady_clock;

enum class StreamMode { kStateOfTheWorld, kDelta };

// What the server-wide metrics learn from one session.
class SessionObserver {
 public:
  virtual ~SessionObserver() = default;
  virtual void onPush(xds::ResourceType type) = 0;
  virtual void onAck(xds::ResourceType type, Clock::duration change_to_ack) = 0;
  virtual void onNack(xds::ResourceType type) = 0;
};

struct NackRecord {
  std::string version;
  std::string message;
  std::chrono::system_clock::time_point at;
};

// One response line as pieces: a per-client head (version, nonce), a body that clients with the
// same content share, and a tail. Writing it never copies the shared body per client.
struct ResponseLine {
  std::string head;
  std::shared_ptr<const std::string> body;
  std::string tail;

  bool empty() const { return size() == 0; }
  size_t size() const { return head.size() + (body ? body->size() : 0) + tail.size(); }
  std::string text() const { return head + (body ? *body : std::string()) + tail; }
};

class ClientSession {
 public:
  ClientSession(StreamMode mode, CatalogPtr catalog, SessionObserver& observer);

  // Handles one request line. A non-OK status means the request was malformed or broke the
  // protocol: the transport sends it as the error line and resets the stream.
  Status handleRequest(std::string_view line, Clock::time_point now);

  // A new revision of the registry reached the server at `changed_at`.
  void updateCatalog(CatalogPtr catalog, Clock::time_point changed_at);

  // Whether nextResponse() might produce something.
  bool wantsToSend() const { return dirty_ != 0; }
  // The next response line (with "\n"), empty when nothing differs from what the client has.
  ResponseLine nextResponse();

  const std::optional<xds::ClientIdentity>& identity() const { return identity_; }
  StreamMode mode() const { return mode_; }
  // The /debug/syncz entry of this client (without transport details).
  nlohmann::json status() const;

 private:
  struct TypeState {
    bool subscribed = false;
    // SotW: resource_names. Delta: explicit subscriptions (besides the wildcard).
    std::vector<std::string> names;
    bool wildcard = false;  // delta only
    // Delta: what the client holds (initial_resource_versions, then what was sent), by name.
    std::map<std::string, std::string> client_versions;
    bool sent_any = false;
    std::string sent_version;
    std::string sent_nonce;
    std::string acked_version;
    std::optional<NackRecord> nack;
    uint64_t nacks = 0;
    // Change -> ACK latency: when the change behind the pending (dirty) and the in-flight
    // response reached the server.
    std::optional<Clock::time_point> dirty_since;
    std::optional<Clock::time_point> inflight_since;
  };

  Status checkIdentity(const std::optional<xds::ClientIdentity>& node);
  Status handleSotw(std::string_view line, Clock::time_point now);
  Status handleDelta(std::string_view line, Clock::time_point now);
  void acknowledge(xds::ResourceType type, TypeState& state,
                   const std::optional<xds::ErrorDetail>& error, Clock::time_point now);
  void markDirty(xds::ResourceType type, Clock::time_point since);
  void markAllSubscribedDirty(Clock::time_point since);
  ScopedResourcesPtr scope(xds::ResourceType type) const;
  // The body stored in the catalog under `key`, or `build()`'s, stored there for the next client.
  std::shared_ptr<const std::string> sharedBody(std::string key,
                                                const std::function<std::string()>& build) const;
  ResponseLine sotwResponse(xds::ResourceType type, TypeState& state);
  ResponseLine deltaResponse(xds::ResourceType type, TypeState& state);
  std::string nextNonce() { return std::to_string(++nonce_counter_); }
  TypeState& state(xds::ResourceType type) { return types_[static_cast<size_t>(type)]; }
  const TypeState& state(xds::ResourceType type) const { return types_[static_cast<size_t>(type)]; }

  StreamMode mode_;
  CatalogPtr catalog_;
  SessionObserver& observer_;
  std::optional<xds::ClientIdentity> identity_;
  std::array<TypeState, xds::kResourceTypeCount> types_;
  uint32_t dirty_ = 0;  // bit per ResourceType
  uint64_t nonce_counter_ = 0;
};

}  // namespace rdmesh::xds_server
