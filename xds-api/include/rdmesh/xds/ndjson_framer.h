// Splits a byte stream into NDJSON messages: bytes in (in any pieces), whole lines out.
// Buffers at most one partial line, itself capped, so a peer cannot make it grow without bound.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "rdmesh/common/status.h"
#include "rdmesh/xds/wire.h"

namespace rdmesh::xds {

class NdjsonFramer {
 public:
  // Called once per complete line, without its "\n" (a trailing "\r" is dropped too; blank
  // lines are skipped). A non-OK return stops framing and is returned by feed().
  using OnMessage = std::function<Status(std::string_view message)>;

  explicit NdjsonFramer(size_t max_message_bytes = kMaxMessageBytes)
      : max_message_bytes_(max_message_bytes) {}

  // After the first error the framer stays failed and returns that error again.
  Status feed(std::string_view bytes, const OnMessage& on_message);
  // End of input: an unterminated last line is an error (the sender was cut off).
  Status finish() const;

  size_t bufferedBytes() const { return partial_.size(); }
  bool failed() const { return !error_.isOk(); }

 private:
  Status deliver(std::string_view line, const OnMessage& on_message);

  size_t max_message_bytes_;
  std::string partial_;  // bytes of the line in progress (no "\n" yet)
  Status error_;
};

// `json` + "\n".
std::string toLine(std::string_view json);

}  // namespace rdmesh::xds
