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

}  // namespace rdmesh::it

#define RDMESH_INSTANTIATE_BACKENDS(Suite)                                            \
  INSTANTIATE_TEST_SUITE_P(Backends, Suite,                                           \
                           ::testing::Values(std::string("tcp"), std::string("shm")), \
                           ::rdmesh::it::BackendName())
