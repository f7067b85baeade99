// Backend-parameterised fixture shared by the proxy integration suites.
#pragma once

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstring>
#include <string>
#include <thread>

#include "harness.h"

namespace rdmesh::it {

// Every suite runs once per fabric backend: .../tcp and .../shm.
class BackendTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (auto why = netnsUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    std::string bin = proxyBinary();
    ASSERT_FALSE(findExecutable(bin).empty())
        << "rdmesh-proxy not found at '" << bin
        << "' (build the rdmesh-proxy target or set RDMESH_PROXY_BIN)";
  }
  const std::string& backend() const { return GetParam(); }
};

// Sends `bytes` (pattern `seed`) to ip 127.0.0.1:`port` in `ns`, half-closes, and expects the
// same bytes back (hashed) before the peer's EOF: an echo through the mesh.
inline void expectEcho(const std::string& ns, uint16_t port, size_t bytes, uint64_t seed) {
  UniqueFd fd = tcpConnect(ns, "127.0.0.1", port);
  ASSERT_TRUE(fd) << "connect to 127.0.0.1:" << port;
  std::string data = PatternGen(seed).bytes(bytes);
  Hasher sent;
  sent.update(data.data(), data.size());
  std::thread writer([&] {
    sendAll(fd.get(), data);
    ::shutdown(fd.get(), SHUT_WR);
  });
  ReadResult r = readUntilEof(fd.get(), 60s);
  writer.join();
  ASSERT_EQ(r.error, 0) << strerror(r.error);
  Hasher got;
  got.update(r.data.data(), r.data.size());
  EXPECT_EQ(got.bytes(), bytes);
  EXPECT_EQ(got.digest(), sent.digest()) << "echoed bytes differ";
}

}  // namespace rdmesh::it

#define RDMESH_INSTANTIATE_BACKENDS(Suite)                                            \
  INSTANTIATE_TEST_SUITE_P(Backends, Suite,                                           \
                           ::testing::Values(std::string("tcp"), std::string("shm")), \
                           ::rdmesh::it::BackendName())
