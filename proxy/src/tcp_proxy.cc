#include "tcp_proxy.h"

#include <event2/event.h>
#include <spdlog/spdlog.h>

#include <cstring>

#include "rdmesh/common/timeval.h"

namespace rdmesh::proxy {

using wire::ResetReason;

// ---------------------------------------------------------------- ProxyConnection

ProxyConnection::ProxyConnection(ConnectionHost& host, std::vector<ConnectionStats> stats,
                                 std::function<void()> on_finish)
    : host_(host), stats_(std::move(stats)), on_finish_(std::move(on_finish)) {
  count(&ConnectionStats::cx_total);
  count(&ConnectionStats::cx_active);
}

ProxyConnection::~ProxyConnection() {
  if (timer_) event_free(timer_);
}

void ProxyConnection::count(Stat* ConnectionStats::*which, uint64_t n) {
  for (ConnectionStats& s : stats_) {
    if (s.*which) (s.*which)->inc(n);
  }
}

void ProxyConnection::startConnectTimer(std::chrono::milliseconds timeout) {
  timer_ = event_new(host_.base(), -1, 0, &ProxyConnection::onTimer, this);
  timeval tv = toTimeval(timeout);
  event_add(timer_, &tv);
}

void ProxyConnection::cancelConnectTimer() {
  if (timer_) event_del(timer_);
}

void ProxyConnection::onTimer(int, short, void* arg) {
  auto* self = static_cast<ProxyConnection*>(arg);
  if (self->closed_) return;
  self->count(&ConnectionStats::connect_timeout);
  self->onConnectTimeout();
}

void ProxyConnection::finished() {
  if (closed_) return;
  closed_ = true;
  cancelConnectTimer();
  for (ConnectionStats& s : stats_) {
    if (s.cx_active) s.cx_active->dec();
  }
  if (on_finish_) on_finish_();
  host_.onConnectionClosed(*this);
}

// ---------------------------------------------------------------- TcpRelay

TcpRelay::TcpRelay(ConnectionHost& host, std::vector<ConnectionStats> stats,
                   std::function<void()> on_finish, int downstream_fd, const InetAddress& upstream,
                   std::chrono::milliseconds connect_timeout)
    : ProxyConnection(host, std::move(stats), std::move(on_finish)),
      down_(host.base(), *this),
      up_(host.base(), *this) {
  down_.adopt(downstream_fd);
  up_.connect(upstream);  // a failure arrives as onSocketConnectFailed
  startConnectTimer(connect_timeout);
}

void TcpRelay::onSocketConnected(SocketEnd&) {
  cancelConnectTimer();
  connected_ = true;
  down_.enableRead(true);
  up_.enableRead(true);
}

void TcpRelay::onSocketConnectFailed(SocketEnd&, const Status& why) {
  spdlog::debug("tcp_proxy: upstream connect failed: {}", why.message());
  count(&ConnectionStats::connect_fail);
  abort();
}

void TcpRelay::onConnectTimeout() {
  abort();
}

void TcpRelay::onSocketReadable(SocketEnd& end) {
  bool from_down = &end == &down_;
  PipeBuffer& buffer = from_down ? down_to_up_ : up_to_down_;
  SocketEnd& other = from_down ? up_ : down_;
  switch (end.readInto(buffer)) {
    case SocketEnd::ReadResult::kError:
      abort();
      return;
    case SocketEnd::ReadResult::kEof:
      buffer.finish();
      end.enableRead(false);
      break;
    case SocketEnd::ReadResult::kSinkFull:
      end.enableRead(false);  // resumed once `other` drains the buffer
      break;
    case SocketEnd::ReadResult::kDrained:
      break;
  }
  pump(other, buffer, end);
}

void TcpRelay::onSocketWritable(SocketEnd& end) {
  bool to_up = &end == &up_;
  pump(end, to_up ? down_to_up_ : up_to_down_, to_up ? down_ : up_);
}

void TcpRelay::pump(SocketEnd& to, PipeBuffer& buffer, SocketEnd& source) {
  if (closed()) return;
  if (to.writeFrom(buffer) == SocketEnd::WriteResult::kError) {
    abort();
    return;
  }
  if (buffer.atEof()) {
    to.shutdownWrite();
    maybeDone();
  } else if (!buffer.full() && connected_ && source.fd() >= 0) {
    source.enableRead(true);
  }
}

void TcpRelay::maybeDone() {
  if (down_to_up_.atEof() && up_to_down_.atEof() && down_.writeShut() && up_.writeShut()) {
    down_.close();
    up_.close();
    finished();
  }
}

void TcpRelay::abort() {
  if (closed()) return;
  count(&ConnectionStats::cx_reset);
  down_.closeWithReset();
  up_.closeWithReset();
  finished();
}

// ---------------------------------------------------------------- StreamBridge

StreamBridge::StreamBridge(ConnectionHost& host, std::vector<ConnectionStats> stats,
                           std::function<void()> on_finish, int app_fd,
                           std::chrono::milliseconds connect_timeout)
    : ProxyConnection(host, std::move(stats), std::move(on_finish)), socket_(host.base(), *this) {
  socket_.adopt(app_fd);
  startConnectTimer(connect_timeout);
}

void StreamBridge::attach(transport::Stream* opening_stream) {
  stream_ = opening_stream;
  channel_ = StreamChannel(stream_);
  if (stream_ == nullptr) {
    // No slot, or the peer is draining: the app sees a reset at once.
    count(&ConnectionStats::connect_fail);
    socket_.closeWithReset();
    finished();
  }
}

StreamBridge::StreamBridge(ConnectionHost& host, std::vector<ConnectionStats> stats,
                           transport::Stream* stream, const InetAddress& target,
                           std::chrono::milliseconds connect_timeout)
    : ProxyConnection(host, std::move(stats), nullptr),
      socket_(host.base(), *this),
      stream_(stream),
      channel_(stream) {
  // A failure is reported from the loop (onSocketConnectFailed), never inside the session's
  // accept handler that is running now.
  socket_.connect(target);
  startConnectTimer(connect_timeout);
}

void StreamBridge::onSocketConnected(SocketEnd&) {
  // Inbound: the local app accepted; now the opener may send.
  cancelConnectTimer();
  open_ = true;
  stream_->accept();
  socket_.enableRead(true);
}

void StreamBridge::onSocketConnectFailed(SocketEnd&, const Status& why) {
  spdlog::debug("inbound: connect to {} failed: {}", stream_->destination().toString(),
                why.message());
  count(&ConnectionStats::connect_fail);
  stream_->reset(ResetReason::kUpstreamRefused);
  stream_ = nullptr;
  socket_.close();
  finished();
}

void StreamBridge::onConnectTimeout() {
  if (open_) return;
  if (stream_) {
    stream_->reset(ResetReason::kUpstreamRefused);
    stream_ = nullptr;
  }
  socket_.closeWithReset();
  finished();
}

void StreamBridge::onStreamOpened() {
  // Outbound: the peer connected the destination.
  cancelConnectTimer();
  open_ = true;
  socket_.enableRead(true);
  onSocketReadable(socket_);  // bytes the app sent while we waited
}

void StreamBridge::onStreamData() {
  writeToSocket();
}

void StreamBridge::onStreamWritable() {
  if (!read_done_ && !closed()) {
    socket_.enableRead(true);
    onSocketReadable(socket_);
  }
}

void StreamBridge::onStreamReset(wire::ResetReason reason) {
  spdlog::debug("stream to {} reset: {}", stream_->destination().toString(),
                transport::toString(reason));
  stream_ = nullptr;
  if (!open_) count(&ConnectionStats::connect_fail);
  count(&ConnectionStats::cx_reset);
  socket_.closeWithReset();
  finished();
}

void StreamBridge::onSocketReadable(SocketEnd&) {
  if (closed() || !open_ || read_done_) return;
  switch (socket_.readInto(channel_)) {
    case SocketEnd::ReadResult::kError:
      abort(ResetReason::kLocalReset);
      return;
    case SocketEnd::ReadResult::kEof:
      read_done_ = true;
      socket_.enableRead(false);
      stream_->finish();
      maybeDone();
      return;
    case SocketEnd::ReadResult::kSinkFull:
      socket_.enableRead(false);  // onStreamWritable resumes
      return;
    case SocketEnd::ReadResult::kDrained:
      return;
  }
}

void StreamBridge::onSocketWritable(SocketEnd&) {
  writeToSocket();
}

void StreamBridge::writeToSocket() {
  if (closed() || stream_ == nullptr || socket_.fd() < 0) return;
  if (socket_.writeFrom(channel_) == SocketEnd::WriteResult::kError) {
    abort(ResetReason::kLocalReset);
    return;
  }
  if (stream_->atEof() && !socket_.writeShut()) {
    socket_.shutdownWrite();
    maybeDone();
  }
}

void StreamBridge::maybeDone() {
  if (read_done_ && socket_.writeShut() && stream_ != nullptr && stream_->atEof()) {
    stream_->close();
    stream_ = nullptr;
    socket_.close();
    finished();
  }
}

void StreamBridge::abort(wire::ResetReason reason) {
  if (closed()) return;
  count(&ConnectionStats::cx_reset);
  if (stream_) {
    stream_->reset(reason);
    stream_ = nullptr;
  }
  socket_.closeWithReset();
  finished();
}

}  // namespace rdmesh::proxy
