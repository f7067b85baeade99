// An asynchronous etcd v3 client over etcd's JSON gRPC gateway (HTTP/1.1, plain or TLS), on the
// caller's event loop: KV put/range/delete, transactions, leases and watch streams. Several
// endpoints (the members of one etcd cluster) may be given: a call that cannot reach one moves
// the client to the next for the calls that follow.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "etcd_codec.h"
#include "http_stream_client.h"
#include "rdmesh/common/status.h"

struct event_base;

namespace rdmesh::xds::etcd {

class EtcdClient {
 public:
  template <typename T>
  using Done = std::function<void(Result<T>)>;

  // urls: "http://127.0.0.1:2379", "https://etcd-0:2379" (then ca_file verifies the server).
  static Result<std::unique_ptr<EtcdClient>> create(event_base* base,
                                                    const std::vector<std::string>& urls,
                                                    const std::string& ca_file = {});

  // Every `done` runs exactly once, from the event loop, unless the client is destroyed first.
  void put(std::string_view key, std::string_view value, int64_t lease, Done<int64_t> done);
  void range(std::string_view key, std::string_view range_end, Done<RangeResult> done);
  void deleteRange(std::string_view key, std::string_view range_end, Done<int64_t> done);
  void txn(const std::vector<Compare>& compares, const std::vector<TxnOp>& success,
           const std::vector<TxnOp>& failure, Done<TxnResult> done);
  void leaseGrant(int64_t ttl_seconds, Done<LeaseGrant> done);
  void leaseKeepAlive(int64_t id, Done<int64_t> done);  // remaining TTL; 0 = expired
  void leaseRevoke(int64_t id, Done<bool> done);

  // Opens a watch stream on [key, range_end) from `start_revision` (0 = now). Each response
  // line is parsed and handed to on_response, which returns false when its owner abandons the
  // stream (it may destroy the call inside); on_end reports why the stream ended otherwise (a
  // malformed line ends it too, with the parser's error). Neither runs after the other said stop.
  struct WatchCallbacks {
    std::function<bool(WatchResponse)> on_response;
    std::function<void(Status)> on_end;
  };
  Result<std::unique_ptr<HttpCall>> watch(std::string_view key, std::string_view range_end,
                                          int64_t start_revision, WatchCallbacks callbacks);

  std::string currentEndpoint() const { return clients_[current_]->endpoint().url(); }

 private:
  explicit EtcdClient(std::vector<std::unique_ptr<HttpClient>> clients)
      : clients_(std::move(clients)) {}
  // POSTs `body` to `path`; the body of a 200 answer, else the error etcd gave.
  void call(const char* path, std::string body, Done<std::string> done);
  void failover(size_t failed);

  std::vector<std::unique_ptr<HttpClient>> clients_;
  size_t current_ = 0;
};

}  // namespace rdmesh::xds::etcd
