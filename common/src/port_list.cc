#include "rdmesh/common/port_list.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace rdmesh {

Result<std::vector<uint16_t>> parsePortList(std::string_view text) {
  std::vector<uint16_t> ports;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view item = text.substr(start, end - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size() || value == 0 ||
        value > 65535) {
      return invalidArgument(
          fmt::format("'{}' is not a port number 1..65535 (expected a list like \"5432,6379\")",
                      item.substr(0, 32)));
    }
    if (std::find(ports.begin(), ports.end(), value) == ports.end()) {
      ports.push_back(static_cast<uint16_t>(value));
    }
    start = end + 1;
  }
  return ports;
}

}  // namespace rdmesh
