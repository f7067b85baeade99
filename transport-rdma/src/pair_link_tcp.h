// tcp PairLink: one TCP connection carries the link when RDMA cannot come up. A write travels as
// a LinkFrameHeader plus its payload, which the sender writev()s straight from the registered
// source memory (the kernel's copy is the only one) and the receiver reads straight into the
// target registration it resolves from the frame's key (bounds-checked: an unknown key or a range
// outside the registration is a protocol error that ends the link, never a stray write).
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "link_domain_core.h"
#include "rdmesh/transport/link_wire.h"
#include "rdmesh/transport/pair_link.h"
#include "unix_fd.h"

namespace rdmesh::transport {

class TcpPairLink : public PairLink {
 public:
  TcpPairLink(std::shared_ptr<LinkDomainCore> core, UniqueFd fd, std::string peer_node,
              std::string fallback_reason, uint32_t send_depth);

  wire::FabricKind kind() const override { return wire::FabricKind::kTcp; }
  const std::string& peerNode() const override { return peer_node_; }
  const std::string& fallbackReason() const override { return fallback_reason_; }
  RemoteMemory describe(const RegisteredMemory& memory) const override;

  Status postWrite(const RegisteredMemory& src, uint64_t src_offset, uint32_t len,
                   const RemoteMemory& dst, uint64_t dst_offset, uint32_t imm,
                   uint64_t cookie) override;
  Status sendControl(std::span<const std::byte> message) override;
  Status flush() override;
  bool wantsWritable() const override { return !out_.empty(); }

  Result<size_t> poll(std::vector<LinkEvent>& out, size_t max_events) override;

  int eventFd() const override { return fd_.get(); }
  int livenessFd() const override { return fd_.get(); }
  bool pollsUsefully() const override { return false; }
  bool hasBufferedEvents() const override { return done_pending_ || hasWholeFrame(); }
  bool prepareToSleep() override { return !hasBufferedEvents(); }
  void afterWakeup() override {}

 private:
  // A frame not yet (fully) handed to the kernel.
  struct OutFrame {
    wire::link::LinkFrameHeader header;
    const std::byte* payload;      // registered memory (write) or `owned` (control)
    std::vector<std::byte> owned;  // control messages are copied: the caller's span is gone
    bool has_cookie = false;
    uint64_t cookie = 0;
  };

  Result<bool> takeFrame(LinkEvent& out);
  Result<bool> readDirect(LinkEvent& out);
  bool hasWholeFrame() const;
  void sent(size_t bytes);

  std::shared_ptr<LinkDomainCore> core_;
  UniqueFd fd_;
  std::string peer_node_;
  std::string fallback_reason_;
  uint32_t send_depth_;
  Status broken_;

  // send side
  std::deque<OutFrame> out_;
  size_t head_sent_ = 0;  // bytes of out_.front() (header + payload) already sent
  size_t queued_writes_ = 0;
  bool any_cookie_ = false;
  uint64_t last_cookie_ = 0;
  bool done_pending_ = false;  // done_cookie_ not yet reported by poll()
  uint64_t done_cookie_ = 0;

  // receive side
  struct DirectRead {
    bool active = false;
    wire::link::LinkFrameHeader header{};
    uint32_t done = 0;  // payload bytes already in the target
  } direct_;
  std::vector<std::byte> in_;  // bytes read from the socket, not yet parsed
  size_t in_begin_ = 0;
  size_t in_end_ = 0;
};

}  // namespace rdmesh::transport
