// Encoding and validating parsing of control-record batches (the payload of kControl writes).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "rdmesh/common/address.h"
#include "rdmesh/common/status.h"
#include "rdmesh/transport/wire.h"

namespace rdmesh::transport {

// One decoded record. Which fields mean something depends on `type` (see wire::ControlType).
struct ControlRecord {
  wire::ControlType type = wire::ControlType::kPing;
  uint32_t stream = 0;
  InetAddress destination;                                 // kOpen
  std::string_view identity;                               // kOpen; points into the parsed buffer
  uint32_t acceptor_stream = 0;                            // kOpenAck
  wire::ResetReason reason = wire::ResetReason::kUnknown;  // kReset
  uint64_t value = 0;   // kCredit consumed_total; kPing/kPong nonce;
                        // kSessionCredit completions_total; kIdleClose step
  uint64_t value2 = 0;  // kSessionCredit control_bytes_total
};

// Appends records to a byte buffer; the caller ships the buffer as one kControl write.
class ControlEncoder {
 public:
  void open(uint32_t opener_stream, const InetAddress& destination, std::string_view identity);
  void openAck(uint32_t opener_stream, uint32_t acceptor_stream);
  void fin(uint32_t stream);
  void reset(uint32_t stream, wire::ResetReason reason);
  void credit(uint32_t stream, uint64_t consumed_total);
  void sessionCredit(uint64_t completions_total, uint64_t control_bytes_total);
  void ping(uint64_t nonce);
  void pong(uint64_t nonce);
  void goAway();
  void idleClose(wire::IdleCloseStep step);

  std::span<const std::byte> bytes() const { return buf_; }
  size_t size() const { return buf_.size(); }
  bool empty() const { return buf_.empty(); }
  void clear() { buf_.clear(); }

 private:
  void append(wire::ControlType type, uint32_t stream, const void* body, size_t body_bytes,
              std::string_view tail = {});
  std::vector<std::byte> buf_;
};

// Parses a whole batch, validating every record before handing any out: a batch with one bad
// record is rejected whole (the session treats it as a protocol error).
Status parseControlBatch(std::span<const std::byte> batch, std::vector<ControlRecord>& out);

const char* toString(wire::ControlType type);
const char* toString(wire::ResetReason reason);

}  // namespace rdmesh::transport
