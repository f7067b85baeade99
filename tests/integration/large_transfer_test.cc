// Bulk data through the mesh, hashed on both ends: 1 GiB from A to a sink in B, and 256 MiB from
// a source in B to A (sizes: RDMESH_IT_UP_MIB / RDMESH_IT_DOWN_MIB). Throughput goes to the log
// (and the XML report as properties); sanitizer builds are several times slower than Release.
#include <poll.h>
#include <sys/socket.h>

#include <cstring>
#include <iostream>

#include "fixture.h"

namespace rdmesh::it {
namespace {

constexpr uint16_t kSinkPort = 7100, kSinkOut = 17100;
constexpr uint16_t kSourcePort = 7101, kSourceOut = 17101;

class LargeTransferTest : public BackendTest {};

TEST_P(LargeTransferTest, OneGiBUpAndQuarterGiBDown) {
  const uint64_t up_bytes = envOr("RDMESH_IT_UP_MIB", 1024) << 20;
  const uint64_t down_bytes = envOr("RDMESH_IT_DOWN_MIB", 256) << 20;
  Mesh mesh(backend(), {"node-a", "node-b"});
  const std::string a = mesh.ns("node-a"), b = mesh.ns("node-b"), ip_b = mesh.ip("node-b");
  SidecarSpec sa = mesh.baseSpec("node-a");
  sa.outbound("sink-out", "127.0.0.1:" + std::to_string(kSinkOut), "sink")
      .cluster("sink", {{"node-b", ip_b + ":" + std::to_string(kSinkPort)}})
      .outbound("source-out", "127.0.0.1:" + std::to_string(kSourceOut), "source")
      .cluster("source", {{"node-b", ip_b + ":" + std::to_string(kSourcePort)}});
  SidecarSpec sb = mesh.baseSpec("node-b");
  sb.inbound("sink-in", kSinkPort, "127.0.0.1:" + std::to_string(kSinkPort))
      .inbound("source-in", kSourcePort, "127.0.0.1:" + std::to_string(kSourcePort));
  mesh.add(sa);
  mesh.add(sb);
  mesh.startAll();
  SinkServer sink(b, "127.0.0.1", kSinkPort);
  SourceServer source(b, "127.0.0.1", kSourcePort, down_bytes);

  // ---- upload: A -> B
  {
    UniqueFd fd = tcpConnect(a, "127.0.0.1", kSinkOut);
    ASSERT_TRUE(fd);
    setSocketTimeouts(fd.get(), 60s);  // a stall fails the test instead of hanging it
    PatternGen gen(0x1a2b3c);
    Hasher sent;
    std::vector<char> buf(1 << 20);
    auto t0 = Clock::now();
    for (uint64_t left = up_bytes; left > 0;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(left, buf.size()));
      gen.fill(buf.data(), n);
      sent.update(buf.data(), n);
      ASSERT_TRUE(sendAll(fd.get(), buf.data(), n))
          << "send failed after " << (up_bytes - left) << " bytes: " << strerror(errno);
      left -= n;
    }
    ASSERT_EQ(shutdown(fd.get(), SHUT_WR), 0);
    ReadResult reply = readUntilEof(fd.get(), 120s, 1024);
    double secs = secondsSince(t0);
    ASSERT_EQ(reply.data.size(), 16u) << "sink reply missing (" << strerror(reply.error) << ")";
    uint64_t got[2];
    memcpy(got, reply.data.data(), sizeof got);
    EXPECT_EQ(got[0], up_bytes) << "bytes received by the sink";
    EXPECT_EQ(got[1], sent.digest()) << "hash mismatch: data corrupted on the way A -> B";
    double mbps = static_cast<double>(up_bytes) / 1e6 / secs;
    std::cout << "[metric] " << backend() << " upload " << (up_bytes >> 20) << " MiB in " << secs
              << " s = " << mbps << " MB/s\n";
    RecordProperty("upload_MBps", std::to_string(mbps));
  }

  // ---- download: B -> A
  {
    UniqueFd fd = tcpConnect(a, "127.0.0.1", kSourceOut);
    ASSERT_TRUE(fd);
    Hasher recvd;
    std::vector<char> buf(1 << 20);
    auto t0 = Clock::now();
    bool eof = false;
    int err = 0;
    while (!eof) {
      pollfd p{fd.get(), POLLIN, 0};
      int pr = poll(&p, 1, 60000);
      if (pr == 0) {
        err = ETIMEDOUT;
        break;
      }
      if (pr < 0) {
        if (errno == EINTR) continue;
        err = errno;
        break;
      }
      ssize_t n = recv(fd.get(), buf.data(), buf.size(), 0);
      if (n > 0) {
        recvd.update(buf.data(), static_cast<size_t>(n));
      } else if (n == 0) {
        eof = true;
      } else if (errno != EINTR) {
        err = errno;
        break;
      }
    }
    double secs = secondsSince(t0);
    ASSERT_TRUE(eof) << "download ended without EOF after " << recvd.bytes()
                     << " bytes: " << strerror(err);
    fd.reset();
    ASSERT_TRUE(waitFor([&] { return !source.results().empty(); }, 30s));
    auto res = source.results().at(0);
    EXPECT_TRUE(res.ok);
    EXPECT_EQ(recvd.bytes(), down_bytes);
    EXPECT_EQ(recvd.digest(), res.hash) << "hash mismatch: data corrupted on the way B -> A";
    double mbps = static_cast<double>(down_bytes) / 1e6 / secs;
    std::cout << "[metric] " << backend() << " download " << (down_bytes >> 20) << " MiB in "
              << secs << " s = " << mbps << " MB/s\n";
    RecordProperty("download_MBps", std::to_string(mbps));
  }

  Sidecar& a_sc = mesh.sidecar("node-a");
  std::string stats = a_sc.stats();
  EXPECT_GE(statInt(stats, "rdmesh.session.node-b.bytes_sent"), static_cast<int64_t>(up_bytes))
      << stats;
  EXPECT_GE(statInt(stats, "rdmesh.session.node-b.bytes_received"),
            static_cast<int64_t>(down_bytes));
  EXPECT_TRUE(a_sc.waitStat("rdmesh.session.node-b.streams_active", "0", 10s));
}

RDMESH_INSTANTIATE_BACKENDS(LargeTransferTest);

}  // namespace
}  // namespace rdmesh::it
