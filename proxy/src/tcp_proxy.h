// tcp_proxy: the two kinds of proxied connection.
//  - TcpRelay: socket <-> socket through two PipeBuffers (an endpoint on this node).
//  - StreamBridge: socket <-> tunnel stream, reading and writing the stream's rings directly.
//    Outbound: the app's socket, with a stream being opened to the endpoint's node.
//    Inbound: a stream the peer opened, with a socket connecting to the local app.
// Both propagate half-close (EOF after the last byte) and reset (RST), and apply backpressure:
// a full sink stops reading its socket until room returns.
#pragma once

#include <chrono>
#include <functional>

#include "byte_channel.h"
#include "rdmesh/common/stats.h"
#include "rdmesh/transport/control_codec.h"
#include "socket_end.h"

struct event;
struct event_base;

namespace rdmesh::proxy {

class ProxyConnection;

// What a connection needs from the worker that owns it.
class ConnectionHost {
 public:
  virtual ~ConnectionHost() = default;
  virtual event_base* base() = 0;
  // The connection is finished; the host deletes it after the current event.
  virtual void onConnectionClosed(ProxyConnection& connection) = 0;
};

// Stats a connection updates over its life (some may be null, e.g. inbound has no cluster).
struct ConnectionStats {
  Stat* cx_total = nullptr;
  Stat* cx_active = nullptr;
  Stat* connect_fail = nullptr;
  Stat* connect_timeout = nullptr;
  Stat* cx_reset = nullptr;
};

class ProxyConnection {
 public:
  ProxyConnection(ConnectionHost& host, std::vector<ConnectionStats> stats,
                  std::function<void()> on_finish);
  virtual ~ProxyConnection();
  ProxyConnection(const ProxyConnection&) = delete;
  ProxyConnection& operator=(const ProxyConnection&) = delete;

  bool closed() const { return closed_; }

 protected:
  void startConnectTimer(std::chrono::milliseconds timeout);
  void cancelConnectTimer();
  virtual void onConnectTimeout() = 0;
  // Marks the connection done (idempotent) and hands it to the host for deletion.
  void finished();
  void count(Stat* ConnectionStats::*which, uint64_t n = 1);

  ConnectionHost& host_;

 private:
  static void onTimer(int fd, short what, void* arg);
  std::vector<ConnectionStats> stats_;
  std::function<void()> on_finish_;
  event* timer_ = nullptr;
  bool closed_ = false;
};

class TcpRelay final : public ProxyConnection, private SocketEnd::Owner {
 public:
  TcpRelay(ConnectionHost& host, std::vector<ConnectionStats> stats,
           std::function<void()> on_finish, int downstream_fd, const InetAddress& upstream,
           std::chrono::milliseconds connect_timeout);

 private:
  void onSocketConnected(SocketEnd& end) override;
  void onSocketConnectFailed(SocketEnd& end, const Status& why) override;
  void onSocketReadable(SocketEnd& end) override;
  void onSocketWritable(SocketEnd& end) override;
  void onConnectTimeout() override;
  void pump(SocketEnd& to, PipeBuffer& from_buffer, SocketEnd& source);
  void abort();
  void maybeDone();

  SocketEnd down_;
  SocketEnd up_;
  PipeBuffer down_to_up_;
  PipeBuffer up_to_down_;
  bool connected_ = false;
};

class StreamBridge final : public ProxyConnection,
                           private SocketEnd::Owner,
                           public transport::StreamCallbacks {
 public:
  // Outbound: `app_fd` is connected; call attach() with the opening stream.
  StreamBridge(ConnectionHost& host, std::vector<ConnectionStats> stats,
               std::function<void()> on_finish, int app_fd,
               std::chrono::milliseconds connect_timeout);
  void attach(transport::Stream* opening_stream);
  // Inbound: `stream` was accepted; connect `target` and accept the stream once connected.
  StreamBridge(ConnectionHost& host, std::vector<ConnectionStats> stats, transport::Stream* stream,
               const InetAddress& target, std::chrono::milliseconds connect_timeout);

  // transport::StreamCallbacks
  void onStreamOpened() override;
  void onStreamData() override;
  void onStreamWritable() override;
  void onStreamReset(wire::ResetReason reason) override;

 private:
  void onSocketConnected(SocketEnd& end) override;
  void onSocketConnectFailed(SocketEnd& end, const Status& why) override;
  void onSocketReadable(SocketEnd& end) override;
  void onSocketWritable(SocketEnd& end) override;
  void onConnectTimeout() override;
  void writeToSocket();
  void abort(wire::ResetReason reason);
  void maybeDone();

  SocketEnd socket_;
  transport::Stream* stream_ = nullptr;
  StreamChannel channel_{nullptr};
  bool open_ = false;       // both sides connected
  bool read_done_ = false;  // socket EOF forwarded as FIN
};

}  // namespace rdmesh::proxy
