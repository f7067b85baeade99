#include "rdmesh/xds/registration_client.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <fmt/format.h>

#include <fstream>
#include <list>

#include "h2_stream.h"
#include "rdmesh/xds/wire.h"
#include "tls_context.h"

namespace rdmesh::xds {

namespace {

// The server's error replies are short JSON; keep what a log line can hold.
constexpr size_t kMaxReplyBytes = 4096;

class H2RegistrationClient final : public RegistrationClient {
 public:
  H2RegistrationClient(event_base* base, Bootstrap connection, TokenSource token,
                       std::shared_ptr<const TlsContext> tls)
      : base_(base),
        connection_(std::move(connection)),
        token_(std::move(token)),
        tls_(std::move(tls)),
        dns_(evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS)) {}

  ~H2RegistrationClient() override {
    calls_.clear();  // their callbacks are not called
    if (dns_ != nullptr) evdns_base_free(dns_, /*fail_requests=*/0);
  }

  void putWorkload(const Workload& workload, RegistrationDone done) override {
    call("PUT", std::string(kWorkloadsPath) + workload.name, serialize(Resource(workload)),
         std::move(done));
  }

  void deleteWorkload(const std::string& name, RegistrationDone done) override {
    call("DELETE", std::string(kWorkloadsPath) + name, {}, std::move(done));
  }

  void preferServer(const std::string& server) override {
    for (size_t i = 0; i < connection_.servers.size(); ++i) {
      if (connection_.servers[i] == server) server_index_ = i;
    }
  }

 private:
  struct Call {
    std::unique_ptr<H2Stream> stream;
    std::string reply;
    std::string what;  // "PUT /v1/workloads/a/b at host:port", for messages
    RegistrationDone done;
  };

  void call(const char* method, std::string path, std::string body, RegistrationDone done) {
    const size_t server_index = server_index_;
    const std::string& server = connection_.servers[server_index];
    auto host_port = splitHostPort(server);  // checked by makeRegistrationClient
    Result<std::string> token = token_();
    H2Target target;
    target.host = host_port->first;
    target.port = host_port->second;
    target.path = std::move(path);
    target.method = method;
    target.content_type = "application/json";
    if (token) target.headers = {{"authorization", "Bearer " + *token}};
    target.unary = true;
    target.tls = tls_;
    target.tls_server_name = connection_.server_name;
    target.connect_timeout = connection_.connect_timeout;

    auto it = calls_.emplace(calls_.end());
    it->what = fmt::format("{} {} at {}", method, target.path, server);
    it->done = std::move(done);
    it->stream = std::make_unique<H2Stream>(
        base_, dns_,
        H2Stream::Callbacks{
            .on_open = nullptr,
            .on_data =
                [it](std::string_view bytes) {
                  if (it->reply.size() < kMaxReplyBytes) {
                    it->reply.append(bytes.substr(0, kMaxReplyBytes - it->reply.size()));
                  }
                },
            .on_closed = [this, it,
                          server_index](const Status& why) { finishCall(it, server_index, why); }});
    if (!token) {
      // No token: report it from the loop, as every other failure.
      it->stream->close(
          unavailable(fmt::format("{}: bearer token: {}", it->what, token.status().message())));
      return;
    }
    it->stream->open(target);
    it->stream->send(std::move(body));
    it->stream->finish();
  }

  void finishCall(std::list<Call>::iterator it, size_t server_index, const Status& transport) {
    int status = it->stream->statusCode();
    Status result;
    if (!transport) {
      result = unavailable(fmt::format("{}: {}", it->what, transport.message()));
    } else if (status >= 200 && status < 300) {
      result = Status::ok();
    } else if (status == 400 || status == 413) {
      result = invalidArgument(fmt::format("{}: HTTP {}: {}", it->what, status, it->reply));
    } else {
      result = unavailable(fmt::format("{}: HTTP {}: {}", it->what, status, it->reply));
    }
    if (!result.isOk() && !result.message().empty() && result.message().back() == '\n') {
      result = Status(result.code(), result.message().substr(0, result.message().size() - 1));
    }
    if (result.code() == StatusCode::kUnavailable && server_index == server_index_) {
      server_index_ = (server_index_ + 1) % connection_.servers.size();
    }
    RegistrationDone done = std::move(it->done);
    calls_.erase(it);  // H2Stream allows its owner to delete it in on_closed
    if (done) done(result);
  }

  event_base* base_;
  Bootstrap connection_;
  TokenSource token_;
  std::shared_ptr<const TlsContext> tls_;
  evdns_base* dns_;
  size_t server_index_ = 0;
  std::list<Call> calls_;
};

}  // namespace

Result<std::unique_ptr<RegistrationClient>> makeRegistrationClient(event_base* base,
                                                                   const Bootstrap& connection,
                                                                   TokenSource token) {
  if (Status s = checkBootstrap(connection, "xds"); !s) return s;
  if (!token) return invalidArgument("registration token: no source");
  std::shared_ptr<const TlsContext> tls;
  if (!connection.plaintext) {
    auto context = TlsContext::create(connection.ca_file, connection.ca_pem);
    if (!context) return context.status();
    tls = std::move(context.value());
  }
  return std::unique_ptr<RegistrationClient>(
      new H2RegistrationClient(base, connection, std::move(token), std::move(tls)));
}

Result<std::string> readTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return invalidArgument(fmt::format("{}: cannot read the token file", path));
  std::string token;
  std::getline(in, token);
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ' || token.back() == '\t')) {
    token.pop_back();
  }
  size_t start = token.find_first_not_of(" \t");
  token = start == std::string::npos ? std::string() : token.substr(start);
  if (token.empty()) return invalidArgument(fmt::format("{}: the token file is empty", path));
  return token;
}

}  // namespace rdmesh::xds
