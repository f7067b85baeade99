// Session: ONE fabric connection to a peer node with many Streams multiplexed on it. Each
// stream has a receive ring in each side's receive area that only the peer writes; flow control
// is by byte credits per stream (returned lazily, about half a ring at a time) and by
// receive-WQE credits per session (a few reserved for control records so the session cannot
// deadlock). See docs/protocol.md.
//
// Everything here runs on the one event-loop thread that owns the session.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "rdmesh/common/address.h"
#include "rdmesh/transport/wire.h"

namespace rdmesh::transport {

// What a stream tells its user. Callbacks never run inside a call the user made into the stream.
class StreamCallbacks {
 public:
  virtual ~StreamCallbacks() = default;
  // Opener: the peer connected the destination; the stream is writable now.
  virtual void onStreamOpened() = 0;
  // New bytes in readable(), or the peer finished (see atEof()).
  virtual void onStreamData() = 0;
  // writable() has room again after returning an empty span.
  virtual void onStreamWritable() = 0;
  // The stream is gone (the peer reset it, or the session was lost). The Stream pointer is
  // invalid once this returns; no further callbacks.
  virtual void onStreamReset(wire::ResetReason reason) = 0;
};

class Stream {
 public:
  virtual ~Stream() = default;

  virtual void setCallbacks(StreamCallbacks* callbacks) = 0;
  // Original destination (opener's request) and the opener's identity.
  virtual const InetAddress& destination() const = 0;
  virtual const std::string& identity() const = 0;

  // Receive direction: contiguous bytes ready for the app, straight from the ring (no copy).
  virtual std::span<const std::byte> readable() const = 0;
  virtual void consume(size_t bytes) = 0;
  // The peer finished sending and every byte has been consumed.
  virtual bool atEof() const = 0;

  // Send direction: room to read the app's bytes into (shm: the peer's ring itself). Empty when
  // out of credit; onStreamWritable() follows when room returns. commit() sends `bytes` of it.
  virtual std::span<std::byte> writable() = 0;
  virtual void commit(size_t bytes) = 0;
  // Half-close: the peer sees EOF after the bytes already committed.
  virtual void finish() = 0;

  // Acceptor: the destination is connected; let the opener start.
  virtual void accept() = 0;
  // Abort both directions; no further callbacks. The Stream pointer is invalid afterwards.
  virtual void reset(wire::ResetReason reason) = 0;
  // Graceful end of use (after finish() and atEof()); the pointer is invalid afterwards.
  virtual void close() = 0;
};

class Session {
 public:
  enum class State { kConnecting, kEstablished, kDraining };
  virtual ~Session() = default;

  virtual const std::string& peerName() const = 0;
  virtual State state() const = 0;
  // Opens a stream to `destination` on the peer node. The open goes out as soon as the session
  // is established. nullptr when every slot is taken or the peer is draining.
  virtual Stream* openStream(const InetAddress& destination, std::string_view identity,
                             StreamCallbacks* callbacks) = 0;
};

// A stream the peer opened. Return its callbacks (and start connecting its destination), or
// nullptr to refuse it (the opener sees a reset with kNoRoute).
using AcceptHandler = std::function<StreamCallbacks*(Stream& stream)>;

const char* toString(Session::State state);

}  // namespace rdmesh::transport
