// CPU cost of the session protocol itself: both nodes run in one thread on one event loop, so
// the figures are work per message and per byte (no scheduler, no wake-ups), per fabric.
//   BM_RoundTrip64/<fabric>: a 64-byte message to the peer and back through a stream.
//   BM_Bulk/<fabric>: one stream streaming 60 KiB writes, consumed by the peer.
#include <benchmark/benchmark.h>
#include <event2/event.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "rdmesh/common/stats.h"
#include "rdmesh/transport/session_manager.h"

namespace {

using namespace rdmesh;
using namespace rdmesh::transport;

// Echoes (or just consumes) whatever the peer writes.
class EchoStream : public StreamCallbacks {
 public:
  EchoStream(Stream& s, bool echo) : stream_(s), echo_(echo) {}
  void onStreamOpened() override {}
  void onStreamData() override { pump(); }
  void onStreamWritable() override { pump(); }
  void onStreamReset(wire::ResetReason) override { dead_ = true; }
  void pump() {
    for (;;) {
      auto in = stream_.readable();
      if (in.empty()) return;
      if (!echo_) {
        stream_.consume(in.size());
        continue;
      }
      auto out = stream_.writable();
      if (out.empty()) return;
      size_t n = std::min(in.size(), out.size());
      std::memcpy(out.data(), in.data(), n);
      stream_.commit(n);
      stream_.consume(n);
    }
  }
  Stream& stream_;
  bool echo_;
  bool dead_ = false;
};

class Client : public StreamCallbacks {
 public:
  void onStreamOpened() override { opened = true; }
  void onStreamData() override { data = true; }
  void onStreamWritable() override { writable = true; }
  void onStreamReset(wire::ResetReason) override { dead = true; }
  bool opened = false, data = false, writable = false, dead = false;
};

struct Pair {
  event_base* base = event_base_new();
  StatsStore stats;
  std::unique_ptr<SessionManager> a, b;
  std::unique_ptr<EchoStream> server;
  Client client;
  Stream* stream = nullptr;
  std::string dir;

  Pair(bool shm, bool echo) {
    dir = std::filesystem::temp_directory_path() / ("rdmesh-bench-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    std::string addr_a = shm ? dir + "/a.sock" : "127.0.0.1:25108";
    std::string addr_b = shm ? dir + "/b.sock" : "127.0.0.1:25109";
    auto make = [&](const std::string& name, const std::string& listen, const std::string& peer,
                    const std::string& peer_addr, AcceptHandler on_accept) {
      SessionManagerOptions o;
      o.node_name = name;
      o.listen_address = listen;
      o.peers = {{peer, peer_addr}};
      o.geometry.max_streams = 16;
      return makeSessionManager(base, shm ? makeShmFabric() : makeTcpFabric(), o, stats,
                                std::move(on_accept));
    };
    b = make("b", addr_b, "a", addr_a, [this, echo](Stream& s) {
      server = std::make_unique<EchoStream>(s, echo);
      s.accept();
      return server.get();
    });
    a = make("a", addr_a, "b", addr_b, nullptr);
    b->start();
    a->start();
    stream = a->session("b")->openStream(*InetAddress::parse("10.0.0.2:80"), "", &client);
    while (!client.opened) turn();
  }
  ~Pair() {
    a.reset();
    b.reset();
    event_base_free(base);
    std::filesystem::remove_all(dir);
  }
  void turn() {
    event_base_loop(base, EVLOOP_NONBLOCK);
    a->poll();
    b->poll();
    a->flush();
    b->flush();
  }
};

void BM_RoundTrip64(benchmark::State& state) {
  Pair pair(state.range(0) == 1, /*echo=*/true);
  char msg[64] = {};
  for (auto _ : state) {
    auto out = pair.stream->writable();
    std::memcpy(out.data(), msg, sizeof(msg));
    pair.stream->commit(sizeof(msg));
    size_t got = 0;
    while (got < sizeof(msg)) {
      pair.turn();
      auto in = pair.stream->readable();
      got += in.size();
      pair.stream->consume(in.size());
    }
  }
  state.SetLabel(state.range(0) == 1 ? "shm" : "tcp");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RoundTrip64)->Arg(1)->Arg(0)->Unit(benchmark::kMicrosecond);

void BM_Bulk(benchmark::State& state) {
  Pair pair(state.range(0) == 1, /*echo=*/false);
  size_t bytes = 0;
  for (auto _ : state) {
    auto out = pair.stream->writable();
    if (out.empty()) {
      pair.turn();
      continue;
    }
    out[0] = std::byte{1};  // the app's read() would fill it; the protocol cost is what we time
    pair.stream->commit(out.size());
    bytes += out.size();
    pair.turn();
  }
  state.SetLabel(state.range(0) == 1 ? "shm" : "tcp");
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_Bulk)->Arg(1)->Arg(0)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
