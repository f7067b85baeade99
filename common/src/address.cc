#include "rdmesh/common/address.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace rdmesh {

Result<InetAddress> InetAddress::fromIp(std::string_view ip, uint16_t port) {
  InetAddress a;
  std::string s(ip);
  // inet_pton reads a C string: a NUL would silently cut "1.2.3.4\0junk" down to 1.2.3.4.
  if (s.find('\0') != std::string::npos) {
    return invalidArgument("address contains a NUL byte");
  }
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage_);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
  if (inet_pton(AF_INET, s.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    return a;
  }
  a.storage_ = {};
  if (inet_pton(AF_INET6, s.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    return a;
  }
  return invalidArgument("'" + s + "' is not an IPv4 or IPv6 address");
}

Result<InetAddress> InetAddress::parse(std::string_view text) {
  std::string_view host;
  std::string_view port_text;
  const bool bracketed = !text.empty() && text.front() == '[';
  if (bracketed) {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return invalidArgument("'" + std::string(text) + "' is not of the form [ipv6]:port");
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) {
      return invalidArgument("'" + std::string(text) + "' is not of the form ip:port");
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port > 65535 ||
      port_text.empty()) {
    return invalidArgument("'" + std::string(port_text) + "' is not a port number (0-65535)");
  }
  Result<InetAddress> address = fromIp(host, static_cast<uint16_t>(port));
  // Brackets are for IPv6 literals only (RFC 3986); "[1.2.3.4]:80" would not print back the same.
  if (address.isOk() && bracketed && address->isV4()) {
    return invalidArgument("'" + std::string(text) + "': brackets are only for IPv6 addresses");
  }
  return address;
}

InetAddress InetAddress::fromSockaddr(const sockaddr* sa, socklen_t len) {
  InetAddress a;
  std::memcpy(&a.storage_, sa, std::min<size_t>(len, sizeof(a.storage_)));
  return a;
}

Result<InetAddress> InetAddress::localOf(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return internalError(fmt::format("getsockname: {}", std::strerror(errno)));
  }
  return fromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

uint16_t InetAddress::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  if (family() == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  }
  return 0;
}

void InetAddress::setPort(uint16_t port) {
  if (family() == AF_INET) reinterpret_cast<sockaddr_in*>(&storage_)->sin_port = htons(port);
  if (family() == AF_INET6) reinterpret_cast<sockaddr_in6*>(&storage_)->sin6_port = htons(port);
}

socklen_t InetAddress::sockaddrLen() const {
  return family() == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

std::string_view InetAddress::rawIp() const {
  if (family() == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr;
    return {reinterpret_cast<const char*>(&a), 4};
  }
  const auto& a = reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr;
  return {reinterpret_cast<const char*>(&a), 16};
}

std::string InetAddress::ipString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family() == AF_INET6 ? AF_INET6 : AF_INET, rawIp().data(), buf, sizeof(buf));
  return buf;
}

std::string InetAddress::toString() const {
  if (family() == AF_INET6) return "[" + ipString() + "]:" + std::to_string(port());
  return ipString() + ":" + std::to_string(port());
}

bool InetAddress::operator==(const InetAddress& o) const {
  return family() == o.family() && port() == o.port() && rawIp() == o.rawIp();
}

}  // namespace rdmesh
