#include "rdmesh/xds/json_text.h"

#include <fmt/format.h>

#include <algorithm>

namespace rdmesh::xds {
namespace {

// Deepest nesting of arrays/objects, stopping early past `limit`; strings are skipped.
int nestingDepth(std::string_view text, int limit) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

}  // namespace

Result<nlohmann::json> parseBoundedJson(std::string_view text, std::string_view what,
                                        JsonTextLimits limits) {
  if (text.size() > limits.max_bytes) {
    return invalidArgument(fmt::format("{}: {} bytes, over the {}-byte limit", what, text.size(),
                                       limits.max_bytes));
  }
  if (nestingDepth(text, limits.max_depth) > limits.max_depth) {
    return invalidArgument(
        fmt::format("{}: JSON nested deeper than {} levels", what, limits.max_depth));
  }
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    // Drop nlohmann's "[json.exception.parse_error.101] " prefix; keep the position and reason.
    std::string_view reason = e.what();
    if (size_t close = reason.find("] "); reason.rfind("[json.", 0) == 0 && close != reason.npos) {
      reason.remove_prefix(close + 2);
    }
    return invalidArgument(fmt::format("{}: not valid JSON: {}", what, reason));
  }
}

}  // namespace rdmesh::xds
