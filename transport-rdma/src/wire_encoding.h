// Byte-level helpers of the bootstrap codecs (Hello, LinkHello, VerbsQpInfo, VerbsReady): a
// fixed wire struct followed by variable bytes (a node name, a reason).
#pragma once

#include <cstddef>
#include <cstring>
#include <string_view>
#include <vector>

namespace rdmesh::transport {

template <typename Header>
std::vector<std::byte> headerWithTail(const Header& header, std::string_view tail) {
  std::vector<std::byte> out(sizeof(header) + tail.size());
  std::memcpy(out.data(), &header, sizeof(header));
  if (!tail.empty()) std::memcpy(out.data() + sizeof(header), tail.data(), tail.size());
  return out;
}

}  // namespace rdmesh::transport
