#include "etcd_client.h"

#include <fmt/format.h>

#include "stream_lines.h"

namespace rdmesh::xds::etcd {
namespace {

constexpr std::chrono::seconds kCallTimeout{10};
// No watch traffic for this long: the stream is presumed dead and reopened from the last
// revision seen (nothing is lost; etcd replays). Progress notifications keep a healthy stream
// from idling out when the cluster is quiet (etcd's default interval is 10 minutes).
constexpr std::chrono::seconds kWatchIdleTimeout{15 * 60};
// One watch response line: etcd values are at most 1.5 MiB by default, a response may batch
// several events.
constexpr size_t kMaxWatchLineBytes = size_t{64} << 20;

template <typename T, typename Parse>
EtcdClient::Done<std::string> parsed(EtcdClient::Done<T> done, Parse parse) {
  return [done = std::move(done), parse](Result<std::string> body) {
    if (!body) {
      done(body.status());
      return;
    }
    done(parse(*body));
  };
}

}  // namespace

Result<std::unique_ptr<EtcdClient>> EtcdClient::create(event_base* base,
                                                       const std::vector<std::string>& urls,
                                                       const std::string& ca_file) {
  if (urls.empty()) return invalidArgument("etcd: no endpoints given");
  std::vector<std::unique_ptr<HttpClient>> clients;
  for (const auto& url : urls) {
    auto endpoint = parseHttpUrl(url);
    if (!endpoint) return invalidArgument("etcd endpoint: " + endpoint.status().message());
    endpoint->ca_file = ca_file;
    auto client = HttpClient::create(base, std::move(*endpoint));
    if (!client) return client.status();
    clients.push_back(std::move(*client));
  }
  return std::unique_ptr<EtcdClient>(new EtcdClient(std::move(clients)));
}

void EtcdClient::failover(size_t failed) {
  if (failed == current_ && clients_.size() > 1) current_ = (current_ + 1) % clients_.size();
}

void EtcdClient::call(const char* path, std::string body, Done<std::string> done) {
  HttpRequest request;
  request.method = "POST";
  request.target = path;
  request.body = std::move(body);
  request.content_type = "application/json";
  request.idle_timeout = kCallTimeout;
  size_t used = current_;
  std::string where = fmt::format("etcd {}{}", clients_[used]->endpoint().url(), path);
  auto handler = [this, used, where, done](Result<HttpClient::Response> response) {
    if (!response) {
      failover(used);
      done(unavailable(fmt::format("{}: {}", where, response.status().message())));
      return;
    }
    if (response->status != 200) {
      Status error = checkResponse(response->body);
      done(unavailable(fmt::format("{}: HTTP {}{}", where, response->status,
                                   error.isOk() ? "" : ": " + error.message())));
      return;
    }
    done(std::move(response->body));
  };
  Status started = clients_[used]->fetch(request, std::move(handler));
  if (!started) {
    failover(used);
    done(unavailable(fmt::format("{}: {}", where, started.message())));
  }
}

void EtcdClient::put(std::string_view key, std::string_view value, int64_t lease,
                     Done<int64_t> done) {
  call("/v3/kv/put", putRequest(key, value, lease),
       parsed<int64_t>(std::move(done), [](const std::string& b) { return parseRevision(b); }));
}

void EtcdClient::range(std::string_view key, std::string_view range_end, Done<RangeResult> done) {
  call("/v3/kv/range", rangeRequest(key, range_end),
       parsed<RangeResult>(std::move(done),
                           [](const std::string& b) { return parseRangeResponse(b); }));
}

void EtcdClient::deleteRange(std::string_view key, std::string_view range_end, Done<int64_t> done) {
  call("/v3/kv/deleterange", deleteRangeRequest(key, range_end),
       parsed<int64_t>(std::move(done), [](const std::string& b) { return parseRevision(b); }));
}

void EtcdClient::txn(const std::vector<Compare>& compares, const std::vector<TxnOp>& success,
                     const std::vector<TxnOp>& failure, Done<TxnResult> done) {
  call(
      "/v3/kv/txn", txnRequest(compares, success, failure),
      parsed<TxnResult>(std::move(done), [](const std::string& b) { return parseTxnResponse(b); }));
}

void EtcdClient::leaseGrant(int64_t ttl_seconds, Done<LeaseGrant> done) {
  call("/v3/lease/grant", leaseGrantRequest(ttl_seconds),
       parsed<LeaseGrant>(std::move(done),
                          [](const std::string& b) { return parseLeaseGrantResponse(b); }));
}

void EtcdClient::leaseKeepAlive(int64_t id, Done<int64_t> done) {
  call("/v3/lease/keepalive", leaseIdRequest(id),
       parsed<int64_t>(std::move(done),
                       [](const std::string& b) { return parseLeaseKeepAliveResponse(b); }));
}

void EtcdClient::leaseRevoke(int64_t id, Done<bool> done) {
  call("/v3/lease/revoke", leaseIdRequest(id),
       parsed<bool>(std::move(done), [](const std::string& b) -> Result<bool> {
         Status status = checkResponse(b);
         if (!status) return status;
         return true;
       }));
}

Result<std::unique_ptr<HttpCall>> EtcdClient::watch(std::string_view key,
                                                    std::string_view range_end,
                                                    int64_t start_revision,
                                                    WatchCallbacks callbacks) {
  HttpRequest request;
  request.method = "POST";
  request.target = "/v3/watch";
  request.body = watchCreateRequest(key, range_end, start_revision, /*progress_notify=*/true);
  request.content_type = "application/json";
  request.idle_timeout = kWatchIdleTimeout;
  size_t used = current_;

  struct State {
    WatchCallbacks callbacks;
    StreamLines lines{kMaxWatchLineBytes};
    int status = 0;
    bool ended = false;
  };
  auto state = std::make_shared<State>();
  state->callbacks = std::move(callbacks);
  auto end = [state](Status why) {
    if (state->ended) return;
    state->ended = true;
    state->callbacks.on_end(std::move(why));
  };
  HttpCall::Callbacks http;
  http.on_status = [state](int status) { state->status = status; };
  http.on_body = [state, end](std::string_view bytes) {
    if (state->ended) return;
    if (state->status != 200) {
      // An error answer (bad request): collect it for on_end.
      state->lines.feed(bytes, [](std::string_view) { return Status::ok(); });
      return;
    }
    Status fed = state->lines.feed(bytes, [&](std::string_view line) -> Status {
      auto response = parseWatchLine(line);
      if (!response) return response.status();
      if (!state->callbacks.on_response(std::move(*response))) {
        state->ended = true;  // the owner is done with this stream (and may have destroyed it)
        return protocolError("watch abandoned");
      }
      return Status::ok();
    });
    if (!fed && !state->ended) end(fed);
  };
  http.on_done = [this, used, state, end](Status status) {
    if (!status) {
      failover(used);
      end(std::move(status));
    } else if (state->status != 200) {
      end(unavailable(fmt::format("etcd watch: HTTP {}", state->status)));
    } else {
      end(unavailable("etcd watch: stream ended by the server"));
    }
  };
  auto call = clients_[used]->start(request, std::move(http));
  if (!call) failover(used);
  return call;
}

}  // namespace rdmesh::xds::etcd
