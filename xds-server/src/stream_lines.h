// Splits a streamed HTTP body into "\n"-terminated lines (Kubernetes watch events, etcd watch
// responses): bytes in, in any pieces; whole lines out. At most one partial line is buffered,
// capped, so a server cannot make it grow without bound.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "rdmesh/common/status.h"

namespace rdmesh::xds {

class StreamLines {
 public:
  explicit StreamLines(size_t max_line_bytes) : max_line_bytes_(max_line_bytes) {}

  // Calls on_line for each complete line (without "\n"; a trailing "\r" and blank lines are
  // dropped). Stops at, and returns, the first error of on_line or an over-long line.
  template <typename OnLine>
  Status feed(std::string_view bytes, OnLine&& on_line) {
    while (!bytes.empty()) {
      size_t newline = bytes.find('\n');
      std::string_view piece = bytes.substr(0, newline);
      if (partial_.size() + piece.size() > max_line_bytes_) {
        partial_.clear();
        return protocolError("stream line longer than " + std::to_string(max_line_bytes_) +
                             " bytes");
      }
      if (newline == std::string_view::npos) {
        partial_.append(piece);
        return Status::ok();
      }
      bytes.remove_prefix(newline + 1);
      std::string_view line = piece;
      if (!partial_.empty()) {
        partial_.append(piece);
        line = partial_;
      }
      if (line.ends_with('\r')) line.remove_suffix(1);
      Status status = line.empty() ? Status::ok() : on_line(line);
      partial_.clear();
      if (!status) return status;
    }
    return Status::ok();
  }
  // Bytes of an unterminated last line (a stream cut off mid-line, or a body without "\n").
  const std::string& partial() const { return partial_; }

 private:
  size_t max_line_bytes_;
  std::string partial_;
};

}  // namespace rdmesh::xds
