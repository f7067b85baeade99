// rdmesh-stream-bench: ONE transport stream between two nodes, with no sidecar around it: the
// session protocol (Session/Stream over the verbs, tcp or shm fabric, driven by the
// AdaptivePoller like a sidecar's worker) without the app's TCP hop to a sidecar. Its round trip
// and throughput are what the Soft-RoCE benchmark sets against ib_write_lat / ib_write_bw.
//
//   rdmesh-stream-bench serve LISTEN NODE            accept sessions as NODE; a stream opened to
//                                                    port 7 is echoed, one to port 9 is discarded
//                                                    (its byte count goes back at the end)
//   rdmesh-stream-bench ping PEER NODE COUNT SIZE    COUNT ping-pongs of SIZE bytes on one stream
//   rdmesh-stream-bench push PEER NODE BYTES         BYTES one way; done when the server's count
//                                                    of them is back
// PEER is the server's NAME@HOST:PORT; NODE is this node's name (it must sort before the
// server's: the lower name dials). Options: --fabric tcp|shm|verbs, --rdma-device, --gid-index,
// --poll-budget-us (spin before sleeping; 0 = never), --ring-bytes, --max-streams,
// --expect-fabric (fail unless the session came up on it), --timeout-s, --listen (a client's
// own bootstrap listener, which nobody dials).
// Prints one `ping: OK ... median_us=...` / `push: OK ... MBps=...` line (bed_tool's style).
#include <event2/event.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "rdmesh/common/stats.h"
#include "rdmesh/transport/adaptive_poller.h"
#include "rdmesh/transport/control_codec.h"
#include "rdmesh/transport/fabric.h"
#include "rdmesh/transport/session_manager.h"

namespace {

using namespace rdmesh;
using namespace rdmesh::transport;
using Clock = std::chrono::steady_clock;

constexpr uint16_t kEchoPort = 7;     // RFC 862's echo
constexpr uint16_t kDiscardPort = 9;  // RFC 863's discard
constexpr int kWarmupRoundTrips = 10;

struct Options {
  std::string fabric = "verbs";
  std::string rdma_device;
  int gid_index = -1;
  unsigned poll_budget_us = 50;
  uint32_t ring_bytes = 4u << 20;  // the benchmark's sidecar rings (BED_RING_BYTES)
  uint32_t max_streams = 16;
  std::string expect_fabric;
  unsigned timeout_s = 120;
  // Clients listen too (a session manager always does); nobody dials them.
  std::string client_listen = "127.0.0.1:0";
};

Result<wire::FabricKind> fabricKind(const std::string& name) {
  if (name == "tcp") return wire::FabricKind::kTcp;
  if (name == "shm") return wire::FabricKind::kShm;
  if (name == "verbs") return wire::FabricKind::kVerbs;
  return invalidArgument("unknown fabric '" + name + "' (expected tcp, shm or verbs)");
}

// The one result line of a run that failed; returns the exit code (2: bad arguments).
int failed(const char* mode, const std::string& why, int code = 1) {
  std::printf("%s: FAIL %s\n", mode, why.c_str());
  return code;
}

// One node: its fabric, session manager and poller on one event loop, with a deadline.
class Node {
 public:
  Node(const Options& o, const std::string& name) : options_(o), name_(name) {}
  ~Node() {
    sessions_.reset();
    if (deadline_ev_ != nullptr) event_free(deadline_ev_);
    event_base_free(base_);
  }

  Status start(const std::string& listen, std::vector<PeerSpec> peers, AcceptHandler on_accept) {
    auto kind = fabricKind(options_.fabric);
    if (!kind) return kind.status();
    SessionManagerOptions so;
    so.node_name = name_;
    so.listen_address = listen;
    so.peers = std::move(peers);
    so.geometry.ring_bytes = options_.ring_bytes;
    so.geometry.max_streams = options_.max_streams;
    so.connect_timeout = std::chrono::milliseconds(10000);  // bootstrap under emulation
    sessions_ =
        makeSessionManager(base_, makeFabric(*kind, {options_.rdma_device, options_.gid_index}),
                           std::move(so), stats_, std::move(on_accept));
    poller_.add(sessions_.get());
    return sessions_->start();
  }

  // Runs the loop until stop() or the deadline (0: none).
  void run(unsigned timeout_s) {
    if (timeout_s > 0) {
      deadline_ev_ = evtimer_new(base_, &Node::onDeadline, this);
      timeval tv{static_cast<time_t>(timeout_s), 0};
      evtimer_add(deadline_ev_, &tv);
    }
    poller_.run();
  }
  void stop() { poller_.stop(); }
  bool timedOut() const { return timed_out_; }
  event_base* base() { return base_; }
  SessionManager& sessions() { return *sessions_; }
  // The fabric a session came up on ("verbs", or "tcp" after a fallback), from its stats.
  std::string fabricOf(const std::string& peer) const {
    auto texts = stats_.snapshot().texts;
    auto it = texts.find("rdmesh.session." + peer + ".fabric");
    return it == texts.end() ? "none" : it->second;
  }

 private:
  static void onDeadline(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<Node*>(arg);
    self->timed_out_ = true;
    self->stop();
  }

  Options options_;
  std::string name_;
  event_base* base_ = event_base_new();
  StatsStore stats_;
  AdaptivePoller poller_{base_, std::chrono::microseconds(options_.poll_budget_us)};
  std::unique_ptr<SessionManager> sessions_;
  event* deadline_ev_ = nullptr;
  bool timed_out_ = false;
};

// ---------------------------------------------------------------- server

// Echoes a stream's bytes back on it, or discards them and answers their count at EOF. Tells
// its owner when the stream is gone so it can be freed outside the callback.
class ServedStream : public StreamCallbacks {
 public:
  ServedStream(Stream& s, bool echo, std::function<void(ServedStream*)> on_done)
      : stream_(&s), echo_(echo), on_done_(std::move(on_done)) {}
  void onStreamOpened() override {}
  void onStreamData() override { pump(); }
  void onStreamWritable() override { pump(); }
  void onStreamReset(wire::ResetReason) override { done(); }

 private:
  void pump() {
    if (stream_ == nullptr) return;
    for (auto in = stream_->readable(); !in.empty(); in = stream_->readable()) {
      if (!echo_) {
        received_ += in.size();
        stream_->consume(in.size());
        continue;
      }
      auto out = stream_->writable();
      if (out.empty()) return;  // onStreamWritable() resumes
      size_t n = std::min(in.size(), out.size());
      std::memcpy(out.data(), in.data(), n);
      stream_->commit(n);
      stream_->consume(n);
    }
    if (!stream_->atEof()) return;
    if (!echo_ && !count_sent_) {
      auto out = stream_->writable();
      if (out.size() < sizeof(received_)) return;
      std::memcpy(out.data(), &received_, sizeof(received_));
      stream_->commit(sizeof(received_));
      count_sent_ = true;
    }
    stream_->finish();
    stream_->close();
    done();
  }
  void done() {
    stream_ = nullptr;
    on_done_(this);
  }

  Stream* stream_;
  bool echo_;
  uint64_t received_ = 0;
  bool count_sent_ = false;
  std::function<void(ServedStream*)> on_done_;
};

int serve(const Options& o, const std::string& listen, const std::string& node) {
  Node n(o, node);
  std::map<ServedStream*, std::unique_ptr<ServedStream>> live;
  std::vector<std::unique_ptr<ServedStream>> finished;  // freed on the next accept
  auto on_done = [&](ServedStream* s) {
    auto it = live.find(s);
    if (it == live.end()) return;
    finished.push_back(std::move(it->second));
    live.erase(it);
  };
  Status s = n.start(listen, {}, [&](Stream& stream) -> StreamCallbacks* {
    finished.clear();
    uint16_t port = stream.destination().port();
    if (port != kEchoPort && port != kDiscardPort) return nullptr;
    auto served = std::make_unique<ServedStream>(stream, port == kEchoPort, on_done);
    ServedStream* raw = served.get();
    live.emplace(raw, std::move(served));
    stream.accept();
    return raw;
  });
  if (!s) {
    return failed("serve", s.message());
  }
  std::printf("serve: listening on %s as %s (%s fabric, poll budget %u us)\n", listen.c_str(),
              node.c_str(), o.fabric.c_str(), o.poll_budget_us);
  std::fflush(stdout);
  n.run(0);
  return 0;
}

// ---------------------------------------------------------------- clients

// Writes `total` bytes of `source` (repeated) into a stream as credit allows.
class Sender {
 public:
  explicit Sender(std::vector<std::byte> source) : source_(std::move(source)) {}
  void reset(uint64_t total) { total_ = total, sent_ = 0; }
  bool done() const { return sent_ == total_; }
  void pump(Stream& stream) {
    while (sent_ < total_) {
      auto out = stream.writable();
      if (out.empty()) return;
      size_t at = sent_ % source_.size();
      size_t n = std::min({out.size(), source_.size() - at, static_cast<size_t>(total_ - sent_)});
      // The copy a sidecar's read() from the app's socket would make.
      std::memcpy(out.data(), source_.data() + at, n);
      stream.commit(n);
      sent_ += n;
    }
  }

 private:
  std::vector<std::byte> source_;
  uint64_t total_ = 0;
  uint64_t sent_ = 0;
};

std::vector<std::byte> pattern(size_t n) {
  std::vector<std::byte> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>(i * 131 + 7);
  return v;
}

class Client : public StreamCallbacks {
 public:
  explicit Client(Node& node) : node_(node) {}
  void onStreamReset(wire::ResetReason reason) override {
    stream_ = nullptr;
    fail(std::string("stream reset: ") + toString(reason));
  }
  void open(Session& session, uint16_t port) {
    stream_ = session.openStream(*InetAddress::fromIp("127.0.0.1", port), "stream-bench", this);
    if (stream_ == nullptr) fail("no stream slot on the session");
  }
  const std::string& error() const { return error_; }

 protected:
  void fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
    node_.stop();
  }
  void finishAndClose() {
    stream_->close();
    stream_ = nullptr;
    node_.stop();
  }
  Node& node_;
  Stream* stream_ = nullptr;
  std::string error_;
};

// COUNT ping-pongs of SIZE bytes after a few unmeasured ones; checks every echoed byte.
class Pinger : public Client {
 public:
  Pinger(Node& node, int count, size_t size)
      : Client(node), count_(count), size_(size), message_(pattern(size)), sender_(message_) {}
  void onStreamOpened() override { next(); }
  void onStreamWritable() override { sender_.pump(*stream_); }
  void onStreamData() override {
    for (auto in = stream_->readable(); !in.empty(); in = stream_->readable()) {
      size_t n = std::min(in.size(), size_ - got_);
      if (std::memcmp(in.data(), message_.data() + got_, n) != 0) return fail("echo differs");
      got_ += n;
      stream_->consume(n);
      if (got_ < size_) continue;
      if (round_ >= kWarmupRoundTrips) {
        us_.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0_).count());
      }
      if (++round_ == kWarmupRoundTrips + count_) {
        stream_->finish();
        finishAndClose();
        return;
      }
      next();
    }
    if (stream_->atEof()) fail("the server finished early");
  }
  const std::vector<double>& roundTrips() const { return us_; }

 private:
  void next() {
    got_ = 0;
    t0_ = Clock::now();
    sender_.reset(size_);
    sender_.pump(*stream_);
  }
  int count_;
  size_t size_;
  std::vector<std::byte> message_;
  Sender sender_;
  size_t got_ = 0;
  int round_ = 0;
  Clock::time_point t0_;
  std::vector<double> us_;
};

// BYTES one way, then EOF; done when the server's 8-byte count of what it received is back.
class Pusher : public Client {
 public:
  Pusher(Node& node, uint64_t bytes) : Client(node), bytes_(bytes), sender_(pattern(1 << 20)) {}
  void onStreamOpened() override {
    t0_ = Clock::now();
    sender_.reset(bytes_);
    onStreamWritable();
  }
  void onStreamWritable() override {
    if (stream_ == nullptr || finished_) return;
    sender_.pump(*stream_);
    if (sender_.done()) {
      stream_->finish();
      finished_ = true;
    }
  }
  void onStreamData() override {
    for (auto in = stream_->readable(); !in.empty(); in = stream_->readable()) {
      size_t n = std::min(in.size(), sizeof(count_) - got_);
      std::memcpy(reinterpret_cast<std::byte*>(&count_) + got_, in.data(), n);
      got_ += n;
      stream_->consume(in.size());
    }
    if (!stream_->atEof()) return;
    secs_ = std::chrono::duration<double>(Clock::now() - t0_).count();
    if (got_ != sizeof(count_) || count_ != bytes_) {
      return fail("the server counted " + std::to_string(count_) + " bytes");
    }
    finishAndClose();
  }
  double seconds() const { return secs_; }

 private:
  uint64_t bytes_;
  Sender sender_;
  bool finished_ = false;
  uint64_t count_ = 0;
  size_t got_ = 0;
  double secs_ = 0;
  Clock::time_point t0_;
};

// PEER is NAME@HOST:PORT.
Result<PeerSpec> parsePeer(const std::string& text) {
  size_t at = text.find('@');
  if (at == std::string::npos || at == 0 || at + 1 == text.size()) {
    return invalidArgument("PEER must be NAME@HOST:PORT, got '" + text + "'");
  }
  return PeerSpec{text.substr(0, at), text.substr(at + 1)};
}

// Brings up the session to `peer_text`, runs `client` on one stream to `port`, and reports.
int runClient(const Options& o, const char* mode, const std::string& peer_text,
              const std::string& node, uint16_t port, Client& client, Node& n,
              const std::function<void(const std::string&)>& report) {
  auto peer = parsePeer(peer_text);
  if (!peer) return failed(mode, peer.status().message(), 2);
  if (!(node < peer->name)) {
    return failed(mode,
                  "NODE '" + node + "' must sort before the server's name '" + peer->name +
                      "' (the lower dials)",
                  2);
  }
  if (Status s = n.start(o.client_listen, {*peer}, nullptr); !s) {
    return failed(mode, s.message());
  }
  Session* session = n.sessions().session(peer->name);
  if (session == nullptr) return failed(mode, "no session to " + peer->name);
  client.open(*session, port);
  n.run(o.timeout_s);
  std::string fabric = n.fabricOf(peer->name);
  if (n.timedOut()) {
    return failed(mode, "timeout after " + std::to_string(o.timeout_s) + " s (session " +
                            toString(session->state()) + ", fabric " + fabric + ")");
  }
  if (!client.error().empty()) {
    return failed(mode, client.error() + " (fabric " + fabric + ")");
  }
  if (!o.expect_fabric.empty() && fabric != o.expect_fabric) {
    return failed(mode, "the session runs on " + fabric + ", not " + o.expect_fabric);
  }
  report(fabric);
  return 0;
}

int ping(const Options& o, const std::string& peer, const std::string& node, int count,
         size_t size) {
  if (count < 1 || size < 1) return failed("ping", "COUNT and SIZE must be positive", 2);
  Node n(o, node);
  Pinger pinger(n, count, size);
  return runClient(o, "ping", peer, node, kEchoPort, pinger, n, [&](const std::string& fabric) {
    std::vector<double> us = pinger.roundTrips();
    std::sort(us.begin(), us.end());
    double mean = 0;
    for (double v : us) mean += v;
    mean /= static_cast<double>(us.size());
    std::printf(
        "ping: OK fabric=%s poll_budget_us=%u count=%d size=%zu median_us=%.1f mean_us=%.1f "
        "p99_us=%.1f min_us=%.1f\n",
        fabric.c_str(), o.poll_budget_us, count, size, us[us.size() / 2], mean,
        us[us.size() * 99 / 100], us.front());
  });
}

int push(const Options& o, const std::string& peer, const std::string& node, uint64_t bytes) {
  if (bytes < 1) return failed("push", "BYTES must be positive", 2);
  Node n(o, node);
  Pusher pusher(n, bytes);
  return runClient(o, "push", peer, node, kDiscardPort, pusher, n, [&](const std::string& fabric) {
    double secs = pusher.seconds();
    std::printf("push: OK fabric=%s poll_budget_us=%u bytes=%llu secs=%.3f MBps=%.2f\n",
                fabric.c_str(), o.poll_budget_us, static_cast<unsigned long long>(bytes), secs,
                static_cast<double>(bytes) / secs / 1e6);
  });
}

int run(int argc, char** argv) {
  CLI::App app{"One rdmesh transport stream: echo/discard server, ping-pong and bulk clients"};
  app.require_subcommand(1);
  Options o;
  app.add_option("--fabric", o.fabric, "tcp, shm or verbs")->capture_default_str();
  app.add_option("--rdma-device", o.rdma_device, "verbs: RDMA device (default: any)");
  app.add_option("--gid-index", o.gid_index, "verbs: GID index (default: by address)");
  app.add_option("--poll-budget-us", o.poll_budget_us, "spin this long before sleeping")
      ->capture_default_str();
  app.add_option("--ring-bytes", o.ring_bytes, "per-stream ring")->capture_default_str();
  app.add_option("--max-streams", o.max_streams, "streams per session")->capture_default_str();
  app.add_option("--expect-fabric", o.expect_fabric, "fail unless the session runs on it");
  app.add_option("--timeout-s", o.timeout_s, "clients: give up after")->capture_default_str();
  app.add_option("--listen", o.client_listen, "clients: own bootstrap listener (shm: a path)")
      ->capture_default_str();
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");
  std::string listen, peer, node;
  int count = 0;
  size_t size = 0;
  uint64_t bytes = 0;
  auto* serve_cmd = app.add_subcommand("serve", "accept sessions: port 7 echoes, port 9 discards");
  serve_cmd->add_option("LISTEN", listen, "bootstrap address ip:port")->required();
  serve_cmd->add_option("NODE", node, "this node's name")->required();
  auto* ping_cmd = app.add_subcommand("ping", "COUNT ping-pongs of SIZE bytes on one stream");
  ping_cmd->add_option("PEER", peer, "the server's NAME@HOST:PORT")->required();
  ping_cmd->add_option("NODE", node, "this node's name")->required();
  ping_cmd->add_option("COUNT", count)->required();
  ping_cmd->add_option("SIZE", size)->required();
  auto* push_cmd = app.add_subcommand("push", "BYTES one way on one stream");
  push_cmd->add_option("PEER", peer, "the server's NAME@HOST:PORT")->required();
  push_cmd->add_option("NODE", node, "this node's name")->required();
  push_cmd->add_option("BYTES", bytes)->required();
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::from_str(log_level));
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (*serve_cmd) return serve(o, listen, node);
  if (*ping_cmd) return ping(o, peer, node, count, size);
  return push(o, peer, node, bytes);
}
}  // namespace

int main(int argc, char** argv) {
  // Nothing throws across the event loop; this only turns a library's start-up failure
  // (allocation, CLI11 internals) into a message instead of an abort.
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rdmesh-stream-bench: fatal: %s\n", e.what());
    return 1;
  }
}
