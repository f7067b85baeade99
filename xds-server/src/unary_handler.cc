#include "unary_handler.h"

#include <algorithm>
#include <cstring>

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

size_t UnaryHandler::readBody(uint8_t* out, size_t max, bool* eof) {
  size_t n = std::min(max, reply_.body.size() - sent_);
  std::memcpy(out, reply_.body.data() + sent_, n);
  sent_ += n;
  *eof = sent_ == reply_.body.size();
  return n;
}

}  // namespace rdmesh::xds_server
