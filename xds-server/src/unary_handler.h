// A request/response exchange on one HTTP/2 stream: the body is collected (capped), then one
// reply is produced. Used for the registration API and the status endpoints.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "h2_connection.h"

namespace rdmesh::xds_server {

struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

// {"error":{"code":<status>,"message":"..."}} — the shape of the stream error line.
HttpReply errorReply(int status, std::string_view message);

class UnaryHandler : public H2StreamHandler {
 public:
  using Respond = std::function<HttpReply(const H2Request& request, std::string_view body)>;

  UnaryHandler(H2Stream& stream, size_t max_body_bytes, Respond respond)
      : stream_(stream), max_body_bytes_(max_body_bytes), respond_(std::move(respond)) {}

  void onBody(std::string_view data) override;
  void onBodyEnd() override;
  size_t bodyReady(size_t max, bool* eof) override;
  void writeBody(evbuffer* out, size_t length) override;
  void onClose() override {}

 private:
  H2Stream& stream_;
  size_t max_body_bytes_;
  Respond respond_;
  std::string body_;
  bool too_large_ = false;
  HttpReply reply_;
  size_t sent_ = 0;
};

}  // namespace rdmesh::xds_server
