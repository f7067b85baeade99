// IPv4/IPv6 socket addresses: parsing "ip:port" / "[ip6]:port" and printing them back.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "rdmesh/common/status.h"

namespace rdmesh {

class InetAddress {
 public:
  InetAddress() = default;
  static Result<InetAddress> parse(std::string_view text);  // "1.2.3.4:80", "[::1]:80"
  static Result<InetAddress> fromIp(std::string_view ip, uint16_t port);  // "1.2.3.4", "::1"
  static InetAddress fromSockaddr(const sockaddr* sa, socklen_t len);
  // getsockname(fd).
  static Result<InetAddress> localOf(int fd);

  int family() const { return storage_.ss_family; }
  bool isV4() const { return family() == AF_INET; }
  uint16_t port() const;
  void setPort(uint16_t port);
  const sockaddr* sockaddrPtr() const { return reinterpret_cast<const sockaddr*>(&storage_); }
  socklen_t sockaddrLen() const;
  // 4 or 16 raw address bytes, network order.
  std::string_view rawIp() const;
  std::string ipString() const;
  std::string toString() const;  // "1.2.3.4:80" or "[::1]:80"
  bool operator==(const InetAddress& o) const;

 private:
  sockaddr_storage storage_{};
};

}  // namespace rdmesh
