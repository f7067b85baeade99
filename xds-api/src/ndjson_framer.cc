#include "rdmesh/xds/ndjson_framer.h"

#include <cstring>

#include "fmt/format.h"

namespace rdmesh::xds {

Status NdjsonFramer::deliver(std::string_view line, const OnMessage& on_message) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() > max_message_bytes_) {
    return invalidArgument(fmt::format("message of {} bytes is over the {}-byte limit", line.size(),
                                       max_message_bytes_));
  }
  if (line.find_first_not_of(" \t") == std::string_view::npos) return Status::ok();
  return on_message(line);
}

Status NdjsonFramer::feed(std::string_view bytes, const OnMessage& on_message) {
  if (!error_.isOk()) return error_;
  while (!bytes.empty()) {
    const void* found = std::memchr(bytes.data(), '\n', bytes.size());
    if (found == nullptr) {
      // No end of line yet: keep the piece, unless the line is already too long (+1 for a "\r").
      if (partial_.size() + bytes.size() > max_message_bytes_ + 1) {
        error_ = invalidArgument(
            fmt::format("message over the {}-byte limit (no newline after {} bytes)",
                        max_message_bytes_, partial_.size() + bytes.size()));
        partial_.clear();
        partial_.shrink_to_fit();
        return error_;
      }
      partial_.append(bytes);
      return Status::ok();
    }
    size_t length = static_cast<const char*>(found) - bytes.data();
    Status status;
    if (partial_.empty()) {
      status = deliver(bytes.substr(0, length), on_message);  // the common case: no copy
    } else {
      if (partial_.size() + length > max_message_bytes_ + 1) {
        status = invalidArgument(fmt::format("message of {} bytes is over the {}-byte limit",
                                             partial_.size() + length, max_message_bytes_));
      } else {
        partial_.append(bytes.substr(0, length));
        status = deliver(partial_, on_message);
      }
      partial_.clear();
      if (partial_.capacity() > 64 * 1024) partial_.shrink_to_fit();  // give big lines back
    }
    if (!status.isOk()) {
      error_ = status;
      return error_;
    }
    bytes.remove_prefix(length + 1);
  }
  return Status::ok();
}

Status NdjsonFramer::finish() const {
  if (!error_.isOk()) return error_;
  if (partial_.find_first_not_of(" \t\r") != std::string::npos) {
    return invalidArgument(
        fmt::format("stream ended inside a message ({} bytes without a newline)", partial_.size()));
  }
  return Status::ok();
}

std::string toLine(std::string_view json) {
  std::string line;
  line.reserve(json.size() + 1);
  line.append(json);
  line.push_back('\n');
  return line;
}

}  // namespace rdmesh::xds
