#include "rdmesh/common/address.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>

namespace rdmesh {
namespace {

TEST(InetAddressTest, ParsesIpv4) {
  Result<InetAddress> address = InetAddress::parse("10.1.2.3:8080");
  ASSERT_TRUE(address.isOk()) << address.status().message();
  EXPECT_TRUE(address->isV4());
  EXPECT_EQ(address->family(), AF_INET);
  EXPECT_EQ(address->port(), 8080);
  EXPECT_EQ(address->ipString(), "10.1.2.3");
  EXPECT_EQ(address->rawIp(), std::string("\x0a\x01\x02\x03", 4));
  EXPECT_EQ(address->sockaddrLen(), sizeof(sockaddr_in));
  const auto* sin = reinterpret_cast<const sockaddr_in*>(address->sockaddrPtr());
  EXPECT_EQ(ntohs(sin->sin_port), 8080);
}

TEST(InetAddressTest, ParsesBracketedIpv6) {
  Result<InetAddress> address = InetAddress::parse("[::1]:80");
  ASSERT_TRUE(address.isOk()) << address.status().message();
  EXPECT_FALSE(address->isV4());
  EXPECT_EQ(address->family(), AF_INET6);
  EXPECT_EQ(address->port(), 80);
  EXPECT_EQ(address->ipString(), "::1");
  EXPECT_EQ(address->rawIp().size(), 16u);
  EXPECT_EQ(address->sockaddrLen(), sizeof(sockaddr_in6));
  EXPECT_EQ(address->toString(), "[::1]:80");
}

TEST(InetAddressTest, AcceptsPortBounds) {
  EXPECT_EQ(InetAddress::parse("127.0.0.1:0")->port(), 0);
  EXPECT_EQ(InetAddress::parse("127.0.0.1:65535")->port(), 65535);
  EXPECT_EQ(InetAddress::parse("[fe80::1]:65535")->port(), 65535);
}

TEST(InetAddressTest, RejectsBadPorts) {
  for (const char* text :
       {"1.2.3.4:65536", "1.2.3.4:99999999999", "1.2.3.4:-1", "1.2.3.4:+80", "1.2.3.4:80a",
        "1.2.3.4: 80", "1.2.3.4:0x50", "[::1]:70000", "[::1]:http"}) {
    Result<InetAddress> address = InetAddress::parse(text);
    EXPECT_FALSE(address.isOk()) << text;
    if (!address.isOk()) {
      EXPECT_EQ(address.status().code(), StatusCode::kInvalidArgument);
      EXPECT_NE(address.status().message().find("is not a port number"), std::string::npos)
          << address.status().message();
    }
  }
}

TEST(InetAddressTest, RejectsMissingPort) {
  for (const char* text : {"1.2.3.4", "1.2.3.4:", "[::1]", "[::1]:", "::1", "[::1]80"}) {
    EXPECT_FALSE(InetAddress::parse(text).isOk()) << text;
  }
  EXPECT_EQ(InetAddress::parse("1.2.3.4").status().message(),
            "'1.2.3.4' is not of the form ip:port");
  EXPECT_EQ(InetAddress::parse("[::1]").status().message(),
            "'[::1]' is not of the form [ipv6]:port");
}

TEST(InetAddressTest, RejectsGarbage) {
  for (const char* text : {"", ":", ":80", "[]:80", "[:80", "localhost:80", "1.2.3:80",
                           "1.2.3.4.5:80", "256.1.1.1:80", "01.2.3.4x:80", "::1:80", "[::1%lo]:80",
                           "[1:2:3:4:5:6:7:8:9]:80", "[[::1]]:80", "\xff\xfe:1"}) {
    EXPECT_FALSE(InetAddress::parse(text).isOk()) << text;
  }
  EXPECT_EQ(InetAddress::parse("localhost:80").status().message(),
            "'localhost' is not an IPv4 or IPv6 address");
}

// Brackets mark an IPv6 literal (RFC 3986); an IPv4 address in them is a typo, and accepting it
// would break the toString round trip.
TEST(InetAddressTest, RejectsIpv4InBrackets) {
  EXPECT_FALSE(InetAddress::parse("[1.2.3.4]:80").isOk());
}

// A NUL inside the text must not cut the address short (inet_pton reads a C string).
TEST(InetAddressTest, RejectsEmbeddedNul) {
  EXPECT_FALSE(InetAddress::parse(std::string("1.2.3.4\0junk:80", 15)).isOk());
  EXPECT_FALSE(InetAddress::fromIp(std::string("::1\0x", 5), 80).isOk());
}

TEST(InetAddressTest, FromIpTakesBothFamilies) {
  Result<InetAddress> v4 = InetAddress::fromIp("192.168.0.1", 53);
  ASSERT_TRUE(v4.isOk());
  EXPECT_EQ(v4->toString(), "192.168.0.1:53");
  Result<InetAddress> v6 = InetAddress::fromIp("fd00::2", 53);
  ASSERT_TRUE(v6.isOk());
  EXPECT_EQ(v6->toString(), "[fd00::2]:53");
  EXPECT_FALSE(InetAddress::fromIp("[fd00::2]", 53).isOk());
  EXPECT_FALSE(InetAddress::fromIp("", 53).isOk());
}

TEST(InetAddressTest, ToStringRoundTrips) {
  for (const char* text :
       {"0.0.0.0:0", "127.0.0.1:15000", "255.255.255.255:65535", "[::]:1", "[::1]:80",
        "[fd00::1:2]:15008", "[::ffff:10.0.0.1]:443", "[2001:db8::8a2e:370:7334]:8443"}) {
    Result<InetAddress> address = InetAddress::parse(text);
    ASSERT_TRUE(address.isOk()) << text << ": " << address.status().message();
    EXPECT_EQ(address->toString(), text);
    Result<InetAddress> again = InetAddress::parse(address->toString());
    ASSERT_TRUE(again.isOk());
    EXPECT_EQ(again.value(), address.value());
  }
}

TEST(InetAddressTest, ToStringCanonicalizesIpv6) {
  EXPECT_EQ(InetAddress::parse("[FD00:0:0:0:0:0:0:1]:80")->toString(), "[fd00::1]:80");
}

TEST(InetAddressTest, EqualityComparesFamilyIpAndPort) {
  InetAddress a = InetAddress::parse("10.0.0.1:80").value();
  EXPECT_EQ(a, InetAddress::parse("10.0.0.1:80").value());
  EXPECT_FALSE(a == InetAddress::parse("10.0.0.1:81").value());
  EXPECT_FALSE(a == InetAddress::parse("10.0.0.2:80").value());
  EXPECT_FALSE(a == InetAddress::parse("[::ffff:10.0.0.1]:80").value());
}

TEST(InetAddressTest, SetPortAndSockaddrRoundTrip) {
  InetAddress a = InetAddress::parse("[::1]:80").value();
  a.setPort(8080);
  EXPECT_EQ(a.toString(), "[::1]:8080");
  InetAddress copy = InetAddress::fromSockaddr(a.sockaddrPtr(), a.sockaddrLen());
  EXPECT_EQ(copy, a);

  InetAddress b = InetAddress::parse("1.2.3.4:1").value();
  b.setPort(2);
  EXPECT_EQ(InetAddress::fromSockaddr(b.sockaddrPtr(), b.sockaddrLen()).toString(), "1.2.3.4:2");
}

TEST(InetAddressTest, DefaultIsUnsetAndHarmless) {
  InetAddress unset;
  EXPECT_EQ(unset.family(), AF_UNSPEC);
  EXPECT_EQ(unset.port(), 0);
  EXPECT_FALSE(unset.toString().empty());
  EXPECT_EQ(unset, InetAddress());
}

}  // namespace
}  // namespace rdmesh
