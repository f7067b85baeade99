#include "discovery_handler.h"

#include <event2/buffer.h>

#include <algorithm>
#include <iterator>
#include <nlohmann/json.hpp>

#include "fmt/chrono.h"
#include "rdmesh/xds/messages.h"
#include "spdlog/spdlog.h"

namespace rdmesh::xds_server {
namespace {

// Below this, copying a piece of a shared body costs less than referencing it.
constexpr size_t kMinReferencedBytes = 1024;

}  // namespace

// Keeps a shared body alive while socket buffers reference it: one per response line in
// flight, counting the handler and every DATA frame (evbuffer reference) of that line, so a
// 100 KB push costs one allocation per client, not one per frame. Loop thread only.
struct BodyPin {
  std::shared_ptr<const std::string> body;
  size_t refs = 1;  // the handler's

  static void release(const void*, size_t, void* arg) { unref(static_cast<BodyPin*>(arg)); }
  static void unref(BodyPin* pin) {
    if (--pin->refs == 0) delete pin;
  }
};

DiscoveryHandler::DiscoveryHandler(DiscoveryHost& host, H2Stream& stream, StreamMode mode,
                                   CatalogPtr catalog, SessionObserver& observer)
    : host_(host),
      stream_(stream),
      session_(mode, std::move(catalog), observer),
      connected_at_(std::chrono::system_clock::now()) {
  host_.attach(this);
}

void DiscoveryHandler::onBody(std::string_view data) {
  if (failed_ || draining_ || client_ended_) return;
  const Clock::time_point now = Clock::now();
  Status status =
      framer_.feed(data, [&](std::string_view line) { return session_.handleRequest(line, now); });
  if (!status.isOk()) return fail(status);
  if (session_.wantsToSend()) stream_.resume();
}

void DiscoveryHandler::onBodyEnd() {
  if (failed_) return;
  if (Status status = framer_.finish(); !status.isOk()) return fail(status);
  // Answer what was asked, then end: `curl --data-binary @requests.ndjson` fetches once.
  client_ended_ = true;
  stream_.resume();
}

void DiscoveryHandler::finish() {
  if (draining_) return;
  draining_ = true;
  stream_.resume();
}

void DiscoveryHandler::fail(const Status& error) {
  if (failed_) return;
  failed_ = true;
  error_line_ = xds::serialize(xds::StreamError{.code = 400, .message = error.message()}) + "\n";
  host_.onBadRequest(*this, error);
  stream_.resume();
}

void DiscoveryHandler::updateCatalog(const CatalogPtr& catalog, Clock::time_point changed_at) {
  session_.updateCatalog(catalog, changed_at);
  if (session_.wantsToSend() && !draining_ && !failed_) stream_.resume();
}

size_t DiscoveryHandler::bodyReady(size_t max, bool* eof) {
  if (pending_offset_ == pending_.size()) {
    // An idle stream keeps no buffer (and no reference to a shared body).
    releasePending();
    if (failed_) {
      pending_.head.swap(error_line_);
    } else if (!draining_) {
      pending_ = session_.nextResponse();
    }
  }
  // One DATA frame carries bytes of one line: the next line is taken once this one is out.
  const size_t ready = std::min(max, pending_.size() - pending_offset_);
  *eof = pending_offset_ + ready == pending_.size() && endsAfterPending();
  return ready;
}

bool DiscoveryHandler::endsAfterPending() const {
  // The response ends after a failure's error line, on drain once the line in progress is
  // complete, and after the client ended once everything it asked for is out.
  return error_line_.empty() &&
         (failed_ || draining_ || (client_ended_ && !session_.wantsToSend()));
}

void DiscoveryHandler::writeBody(evbuffer* out, size_t length) {
  // Head and tail are small and per client: copied. The body is shared by every client with
  // the same scope and version: referenced, and kept alive until the socket has sent it.
  const std::string_view pieces[] = {
      pending_.head, pending_.body ? std::string_view(*pending_.body) : std::string_view(),
      pending_.tail};
  size_t offset = pending_offset_;
  for (size_t i = 0; i < std::size(pieces) && length > 0; ++i) {
    const std::string_view piece = pieces[i];
    if (offset >= piece.size()) {
      offset -= piece.size();
      continue;
    }
    const size_t n = std::min(length, piece.size() - offset);
    if (i == 1 && n >= kMinReferencedBytes) {
      if (body_pin_ == nullptr) body_pin_ = new BodyPin{.body = pending_.body};
      ++body_pin_->refs;
      evbuffer_add_reference(out, piece.data() + offset, n, &BodyPin::release, body_pin_);
    } else {
      appendCopy(out, piece.substr(offset, n));
    }
    pending_offset_ += n;
    length -= n;
    offset = 0;
  }
  if (pending_offset_ == pending_.size()) releasePending();
}

void DiscoveryHandler::releasePending() {
  pending_ = ResponseLine();
  pending_offset_ = 0;
  if (body_pin_ != nullptr) BodyPin::unref(body_pin_);
  body_pin_ = nullptr;
}

DiscoveryHandler::~DiscoveryHandler() {
  releasePending();
}

void DiscoveryHandler::onClose() {
  host_.detach(this);
}

nlohmann::json DiscoveryHandler::status() const {
  nlohmann::json json = session_.status();
  json["peer"] = stream_.peer();
  json["connected_at"] = fmt::format(
      "{:%Y-%m-%dT%H:%M:%S}Z", std::chrono::time_point_cast<std::chrono::seconds>(connected_at_));
  if (failed_) json["failed"] = true;
  return json;
}

}  // namespace rdmesh::xds_server
