// Byte channels a socket reads into and writes from: a tunnel Stream (its rings, zero copy), or
// a PipeBuffer between two sockets.
#pragma once

#include <cstddef>
#include <memory>
#include <span>

#include "rdmesh/transport/session.h"

namespace rdmesh::proxy {

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  // Room to read into; empty when full. Every non-empty writable() is followed by commit().
  virtual std::span<std::byte> writable() = 0;
  virtual void commit(size_t bytes) = 0;
  virtual void finish() = 0;  // no more bytes will come
};

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual std::span<const std::byte> readable() = 0;
  virtual void consume(size_t bytes) = 0;
  virtual bool atEof() const = 0;  // finished and drained
};

// A fixed ring between two sockets of a plain TCP relay.
class PipeBuffer final : public ByteSink, public ByteSource {
 public:
  explicit PipeBuffer(size_t capacity = size_t{64} * 1024)
      : data_(std::make_unique_for_overwrite<std::byte[]>(capacity)), capacity_(capacity) {}

  std::span<std::byte> writable() override {
    size_t used = tail_ - head_;
    if (used == capacity_ || finished_) return {};
    size_t pos = tail_ % capacity_;
    return {data_.get() + pos, std::min(capacity_ - used, capacity_ - pos)};
  }
  void commit(size_t bytes) override { tail_ += bytes; }
  void finish() override { finished_ = true; }

  std::span<const std::byte> readable() override {
    size_t pos = head_ % capacity_;
    return {data_.get() + pos, std::min(tail_ - head_, capacity_ - pos)};
  }
  void consume(size_t bytes) override { head_ += bytes; }
  bool atEof() const override { return finished_ && head_ == tail_; }
  bool full() const { return tail_ - head_ == capacity_; }

 private:
  std::unique_ptr<std::byte[]> data_;
  size_t capacity_;
  size_t head_ = 0;
  size_t tail_ = 0;
  bool finished_ = false;
};

// A tunnel stream seen as a sink (towards the peer) and a source (from the peer).
class StreamChannel final : public ByteSink, public ByteSource {
 public:
  explicit StreamChannel(transport::Stream* stream) : stream_(stream) {}
  std::span<std::byte> writable() override { return stream_->writable(); }
  void commit(size_t bytes) override { stream_->commit(bytes); }
  void finish() override { stream_->finish(); }
  std::span<const std::byte> readable() override { return stream_->readable(); }
  void consume(size_t bytes) override { stream_->consume(bytes); }
  bool atEof() const override { return stream_->atEof(); }

 private:
  transport::Stream* stream_;
};

}  // namespace rdmesh::proxy
