#include "unary_handler.h"

#include <algorithm>

#include "fmt/format.h"
#include "rdmesh/xds/messages.h"

namespace rdmesh::xds_server {

HttpReply errorReply(int status, std::string_view message) {
  return {
      .status = status,
      .content_type = "application/json",
      .body =
          xds::serialize(xds::StreamError{.code = status, .message = std::string(message)}) + "\n"};
}

void UnaryHandler::onBody(std::string_view data) {
  if (too_large_) return;
  if (body_.size() + data.size() > max_body_bytes_) {
    too_large_ = true;
    body_.clear();
    body_.shrink_to_fit();
    return;
  }
  body_.append(data);
}

void UnaryHandler::onBodyEnd() {
  reply_ = too_large_ ? errorReply(413, fmt::format("body over the {}-byte limit", max_body_bytes_))
                      : respond_(stream_.request(), body_);
  body_.clear();
  stream_.respond(reply_.status, reply_.content_type);
}

size_t UnaryHandler::bodyReady(size_t max, bool* eof) {
  size_t n = std::min(max, reply_.body.size() - sent_);
  *eof = sent_ + n == reply_.body.size();
  return n;
}

void UnaryHandler::writeBody(evbuffer* out, size_t length) {
  length = std::min(length, reply_.body.size() - sent_);
  appendCopy(out, std::string_view(reply_.body).substr(sent_, length));
  sent_ += length;
}

}  // namespace rdmesh::xds_server
