// The JSON of etcd's v3 gRPC gateway (/v3/kv/*, /v3/lease/*, /v3/watch): request bodies and
// strict response parsers. Keys and values travel base64-encoded; 64-bit integers arrive as
// strings (proto3 JSON) and are accepted as numbers too; fields at their default value are
// omitted by the gateway (a PUT event has no "type", a failed txn no "succeeded").
// Pure functions, no I/O: unit-tested and fuzzed (tests/fuzz/fuzz_etcd_watch_response.cc).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base64.h"
#include "rdmesh/common/status.h"

namespace rdmesh::xds::etcd {

using xds_server::base64Decode;
using xds_server::base64Encode;
// The range_end that selects every key starting with `prefix` (etcd's "prefix + 1").
std::string prefixRangeEnd(std::string_view prefix);

struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;
};

struct RangeResult {
  int64_t revision = 0;  // store revision the read saw
  std::vector<KeyValue> kvs;
  bool more = false;
};

enum class EventType { kPut, kDelete };
struct WatchEvent {
  EventType type = EventType::kPut;
  KeyValue kv;
};

struct WatchResponse {
  int64_t revision = 0;
  int64_t watch_id = 0;
  bool created = false;
  bool canceled = false;
  int64_t compact_revision = 0;  // > 0: the requested start revision was compacted away
  std::string cancel_reason;
  std::vector<WatchEvent> events;
};

// Transactions (leader election and fenced writes).
struct Compare {
  enum class Target { kCreateRevision, kModRevision, kValue };
  std::string key;
  Target target = Target::kValue;
  int64_t revision = 0;  // kCreateRevision / kModRevision
  std::string value;     // kValue
  // Always EQUAL: every compare rdmesh needs is an equality.

  static Compare valueEquals(std::string key, std::string value) {
    Compare c;
    c.key = std::move(key);
    c.target = Target::kValue;
    c.value = std::move(value);
    return c;
  }
  static Compare createRevisionEquals(std::string key, int64_t revision) {
    Compare c;
    c.key = std::move(key);
    c.target = Target::kCreateRevision;
    c.revision = revision;
    return c;
  }
};
struct TxnOp {
  enum class Kind { kPut, kDelete, kRange };
  Kind kind = Kind::kPut;
  std::string key;
  std::string value;      // kPut
  int64_t lease = 0;      // kPut
  std::string range_end;  // kDelete / kRange (empty: the single key)

  static TxnOp put(std::string key, std::string value, int64_t lease = 0) {
    TxnOp op;
    op.key = std::move(key);
    op.value = std::move(value);
    op.lease = lease;
    return op;
  }
  static TxnOp erase(std::string key) {
    TxnOp op;
    op.kind = Kind::kDelete;
    op.key = std::move(key);
    return op;
  }
  static TxnOp get(std::string key) {
    TxnOp op;
    op.kind = Kind::kRange;
    op.key = std::move(key);
    return op;
  }
};
struct TxnResult {
  int64_t revision = 0;
  bool succeeded = false;
  std::vector<KeyValue> range_kvs;  // kvs of every range op that ran, in order
};

struct LeaseGrant {
  int64_t id = 0;
  int64_t ttl_seconds = 0;
};

// ----- request bodies
std::string putRequest(std::string_view key, std::string_view value, int64_t lease = 0);
std::string rangeRequest(std::string_view key, std::string_view range_end, int64_t limit = 0,
                         int64_t revision = 0);
std::string deleteRangeRequest(std::string_view key, std::string_view range_end = {});
std::string txnRequest(const std::vector<Compare>& compares, const std::vector<TxnOp>& success,
                       const std::vector<TxnOp>& failure);
std::string watchCreateRequest(std::string_view key, std::string_view range_end,
                               int64_t start_revision, bool progress_notify);
std::string leaseGrantRequest(int64_t ttl_seconds);
std::string leaseIdRequest(int64_t id);  // keepalive and revoke

// ----- response parsers. A body that is a gateway error ({"error","code","message"}) becomes
// a Status carrying etcd's message; anything malformed is kProtocolError naming the field.
Status checkResponse(std::string_view body);           // put, deleterange, lease revoke
Result<int64_t> parseRevision(std::string_view body);  // header.revision of put/deleterange
Result<RangeResult> parseRangeResponse(std::string_view body);
Result<TxnResult> parseTxnResponse(std::string_view body);
Result<LeaseGrant> parseLeaseGrantResponse(std::string_view body);
// Remaining TTL after a keepalive; 0 means the lease has expired (or never existed).
Result<int64_t> parseLeaseKeepAliveResponse(std::string_view body);
// One line of the /v3/watch stream: {"result":{...}} or {"error":{...}}.
Result<WatchResponse> parseWatchLine(std::string_view line);

}  // namespace rdmesh::xds::etcd
