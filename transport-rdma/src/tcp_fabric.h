// tcp backend: the session's one-sided writes travel as frames over one TCP connection per
// node pair, for nodes without RDMA. Each frame is a TcpFrameHeader and its payload; the receiver
// copies the payload to the named offset of its receive area and reports a completion.
#pragma once

#include <memory>
#include <vector>

#include "rdmesh/transport/fabric.h"
#include "stream_input.h"
#include "unix_fd.h"

namespace rdmesh::transport {

class TcpConnection : public FabricConnection {
 public:
  TcpConnection(UniqueFd fd, HelloExchange hello, std::unique_ptr<MemoryRegion> area);

  wire::FabricKind kind() const override { return wire::FabricKind::kTcp; }
  const Hello& peerHello() const override { return hello_.peer; }
  uint16_t version() const override { return hello_.version; }
  std::span<std::byte> receiveArea() override { return area_->bytes(); }
  void releaseReceiveMemory(uint64_t offset, uint64_t bytes) override;

  std::span<std::byte> stageWrite(uint64_t remote_offset, size_t max_len) override;
  void postWriteWithImm(size_t len, uint32_t imm) override;
  Status flush() override;
  bool wantsWritable() const override { return out_head_ < out_.used; }

  Result<size_t> poll(std::span<Completion> out) override;

  int eventFd() const override { return fd_.get(); }
  int livenessFd() const override { return -1; }
  bool eventFdIsDoorbell() const override { return false; }
  bool pollsUsefully() const override { return false; }
  // A partial frame needs more bytes from the socket, which will wake us; a whole one does not.
  bool hasBufferedCompletions() const override { return hasWholeFrame(); }
  bool prepareToSleep() override { return !hasWholeFrame(); }
  void afterWakeup() override {}
  void markAwake() override {}

 private:
  // Parses one complete frame from the input buffer, if there is one.
  Result<bool> takeFrame(Completion& out);
  Result<bool> readDirect(Completion& out);
  Status checkHeader(const wire::TcpFrameHeader& h);
  bool hasWholeFrame() const;

  UniqueFd fd_;
  HelloExchange hello_;
  std::unique_ptr<MemoryRegion> area_;

  // Frames not yet written to the socket. Grows without zero-filling: every staged byte is
  // overwritten by the caller's read().
  struct SendBuffer {
    std::unique_ptr<std::byte[]> data;
    size_t capacity = 0;
    size_t used = 0;
    void grow(size_t needed);
  } out_;
  size_t out_head_ = 0;
  size_t staged_at_ = 0;  // offset of the staged frame's header in out_
  bool staged_ = false;
  uint64_t staged_offset_ = 0;
  // A large frame whose payload is being read straight into the receive area.
  struct DirectRead {
    bool active = false;
    wire::TcpFrameHeader header{};
    uint32_t done = 0;  // payload bytes already in the area
  } direct_;

  StreamInput in_;
};

}  // namespace rdmesh::transport
