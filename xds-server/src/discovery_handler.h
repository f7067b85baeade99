// The transport side of one discovery stream: NDJSON request lines in (through the framer into
// the ClientSession), response lines out, pulled one at a time when the stream has room.
// A malformed line gets one error line, then the stream ends and is reset.
#pragma once

#include <chrono>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "client_session.h"
#include "h2_connection.h"
#include "rdmesh/xds/ndjson_framer.h"

namespace rdmesh::xds_server {

class DiscoveryHandler;
struct BodyPin;

// What a discovery stream needs from the server around it.
class DiscoveryHost {
 public:
  virtual ~DiscoveryHost() = default;
  virtual void attach(DiscoveryHandler* handler) = 0;
  virtual void detach(DiscoveryHandler* handler) = 0;
  virtual void onBadRequest(const DiscoveryHandler& handler, const Status& error) = 0;
};

class DiscoveryHandler : public H2StreamHandler {
 public:
  DiscoveryHandler(DiscoveryHost& host, H2Stream& stream, StreamMode mode, CatalogPtr catalog,
                   SessionObserver& observer);
  ~DiscoveryHandler() override;
  DiscoveryHandler(const DiscoveryHandler&) = delete;
  DiscoveryHandler& operator=(const DiscoveryHandler&) = delete;

  void onBody(std::string_view data) override;
  void onBodyEnd() override;
  size_t bodyReady(size_t max, bool* eof) override;
  void writeBody(evbuffer* out, size_t length) override;
  void onClose() override;

  void updateCatalog(const CatalogPtr& catalog, Clock::time_point changed_at);
  // Ends the response (drain): the client reconnects, to another replica if this one goes.
  void finish();
  nlohmann::json status() const;
  const ClientSession& session() const { return session_; }
  const std::string& peer() const { return stream_.peer(); }

 private:
  void fail(const Status& error);
  // Whether the response ends once the line in progress is out.
  bool endsAfterPending() const;
  // Done with the line in progress (written out, or the stream is going away).
  void releasePending();

  DiscoveryHost& host_;
  H2Stream& stream_;
  ClientSession session_;
  xds::NdjsonFramer framer_;
  ResponseLine pending_;  // the response line being written
  size_t pending_offset_ = 0;
  // Shared with the socket buffer while DATA frames reference pending_.body.
  BodyPin* body_pin_ = nullptr;
  std::string error_line_;
  bool client_ended_ = false;  // the client ended its half
  bool draining_ = false;      // the server is going away
  bool failed_ = false;
  std::chrono::system_clock::time_point connected_at_;
};

}  // namespace rdmesh::xds_server
