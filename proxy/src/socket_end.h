// One non-blocking TCP socket of a proxied connection: connects, reads into a ByteSink, writes
// from a ByteSource, half-closes and resets. Reads and writes go straight between the socket and
// the channel's memory (for a tunnel stream: the RDMA ring), with no buffer of its own.
#pragma once

#include <cstdint>

#include "byte_channel.h"
#include "rdmesh/common/address.h"
#include "rdmesh/common/status.h"

struct event;
struct event_base;

namespace rdmesh::proxy {

class SocketEnd {
 public:
  class Owner {
   public:
    virtual ~Owner() = default;
    virtual void onSocketConnected(SocketEnd& end) = 0;
    virtual void onSocketConnectFailed(SocketEnd& end, const Status& why) = 0;
    virtual void onSocketReadable(SocketEnd& end) = 0;
    virtual void onSocketWritable(SocketEnd& end) = 0;
  };

  enum class ReadResult { kDrained, kSinkFull, kEof, kError };
  enum class WriteResult { kAllWritten, kBlocked, kError };

  SocketEnd(event_base* base, Owner& owner);
  ~SocketEnd();
  SocketEnd(const SocketEnd&) = delete;
  SocketEnd& operator=(const SocketEnd&) = delete;

  // An accepted, connected socket.
  void adopt(int fd);
  // Starts a non-blocking connect; onSocketConnected or onSocketConnectFailed follows from the
  // event loop, also when connect() fails at once.
  void connect(const InetAddress& address);

  void enableRead(bool on);
  ReadResult readInto(ByteSink& sink);
  WriteResult writeFrom(ByteSource& source);
  void shutdownWrite();
  // Closes so that the other side sees a reset (RST), not a clean EOF.
  void closeWithReset();
  void close();

  int fd() const { return fd_; }
  bool writeShut() const { return write_shut_; }

 private:
  static void onEvent(int fd, short what, void* arg);
  void armWrite(bool on);

  event_base* base_;
  Owner& owner_;
  int fd_ = -1;
  event* read_ev_ = nullptr;
  event* write_ev_ = nullptr;
  bool reading_ = false;
  bool write_armed_ = false;
  bool connecting_ = false;
  bool write_shut_ = false;
  int connect_errno_ = 0;  // connect() failed at once; reported from the loop
};

}  // namespace rdmesh::proxy
