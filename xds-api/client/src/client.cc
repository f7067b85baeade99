#include "rdmesh/xds/client.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <random>

#include "h2_stream.h"
#include "rdmesh/common/timeval.h"
#include "rdmesh/xds/delta_state.h"
#include "rdmesh/xds/ndjson_framer.h"
#include "tls_context.h"

namespace rdmesh::xds {

namespace {

std::string statScope(ResourceType type) {
  std::string name(shortName(type));
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return "xds." + name;
}

// The type and nonce of a response the strict parser refused, so it can still be NACKed.
struct LenientHeader {
  ResourceType type;
  std::string nonce;
};
std::optional<LenientHeader> readLeniently(std::string_view line) {
  nlohmann::json json = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return std::nullopt;
  auto type_url = json.find("type_url");
  auto nonce = json.find("nonce");
  if (type_url == json.end() || !type_url->is_string() || nonce == json.end() ||
      !nonce->is_string()) {
    return std::nullopt;
  }
  std::optional<ResourceType> type = resourceTypeFromUrl(type_url->get<std::string>());
  if (!type) return std::nullopt;
  return LenientHeader{*type, nonce->get<std::string>()};
}

// What one response line led to, for the client's stats and logs.
struct Outcome {
  enum Kind { kJudged, kUnreadable, kNotSubscribed } kind = kJudged;
  ResourceType type = ResourceType::kNode;
  std::string version;
  size_t resources = 0;
  Status verdict;     // kJudged: the handler's; kUnreadable: why it could not be read
  std::string reply;  // the ACK or NACK line to send
};

// What differs between the two stream variants (docs/xds.md): the path, the requests that open
// a stream, and how a response becomes a verdict and a reply.
class StreamProtocol {
 public:
  virtual ~StreamProtocol() = default;
  virtual std::string_view path() const = 0;
  virtual std::vector<std::string> openingLines() const = 0;
  // A protocol error (the stream must be reset) when the line is not a response at all.
  virtual Result<Outcome> onLine(std::string_view line, const ResourceHandler& handler) = 0;
  virtual const std::vector<TypeStatus>& status() const = 0;
};

// A response the strict parser refused but whose type and nonce are readable: NACKed.
template <typename State>
Result<Outcome> unreadable(State& state, std::string_view line, const Status& why) {
  std::optional<LenientHeader> header = readLeniently(line);
  if (!header) return protocolError("unreadable response: " + why.message());
  Outcome outcome;
  outcome.kind = state.isSubscribed(header->type) ? Outcome::kUnreadable : Outcome::kNotSubscribed;
  outcome.type = header->type;
  outcome.verdict = why;
  outcome.reply =
      toLine(serialize(state.onUnreadableResponse(header->type, header->nonce, why.message())));
  return outcome;
}

class SotwProtocol final : public StreamProtocol {
 public:
  explicit SotwProtocol(const ClientOptions& options)
      : state_(options.identity, options.subscriptions) {}
  std::string_view path() const override { return kStreamPath; }
  std::vector<std::string> openingLines() const override {
    std::vector<std::string> lines;
    for (const DiscoveryRequest& r : state_.onStreamOpen()) lines.push_back(toLine(serialize(r)));
    return lines;
  }
  Result<Outcome> onLine(std::string_view line, const ResourceHandler& handler) override {
    Result<DiscoveryResponse> response = parseDiscoveryResponse(line);
    if (!response) return unreadable(state_, line, response.status());
    Outcome outcome;
    outcome.type = response->type;
    outcome.version = response->version_info;
    outcome.resources = response->resources.size();
    if (!state_.isSubscribed(response->type)) {
      outcome.kind = Outcome::kNotSubscribed;
    } else {
      outcome.verdict = handler(response->type, response->version_info, response->resources);
    }
    outcome.reply = toLine(serialize(state_.onResponse(*response, outcome.verdict)));
    return outcome;
  }
  const std::vector<TypeStatus>& status() const override { return state_.status(); }

 private:
  SotwState state_;
};

class DeltaProtocol final : public StreamProtocol {
 public:
  explicit DeltaProtocol(const ClientOptions& options)
      : state_(options.identity, options.subscriptions) {}
  std::string_view path() const override { return kDeltaStreamPath; }
  std::vector<std::string> openingLines() const override {
    std::vector<std::string> lines;
    for (const DeltaDiscoveryRequest& r : state_.onStreamOpen()) {
      lines.push_back(toLine(serialize(r)));
    }
    return lines;
  }
  Result<Outcome> onLine(std::string_view line, const ResourceHandler& handler) override {
    Result<DeltaDiscoveryResponse> response = parseDeltaDiscoveryResponse(line);
    if (!response) return unreadable(state_, line, response.status());
    Outcome outcome;
    outcome.type = response->type;
    outcome.version = response->system_version_info;
    if (!state_.isSubscribed(response->type)) {
      outcome.kind = Outcome::kNotSubscribed;
    } else {
      // The handler judges the whole set the response would leave in force.
      Result<std::vector<Resource>> next = state_.candidate(*response);
      outcome.resources = next ? next->size() : 0;
      outcome.verdict =
          next ? handler(response->type, response->system_version_info, *next) : next.status();
    }
    outcome.reply = toLine(serialize(state_.onResponse(*response, outcome.verdict)));
    return outcome;
  }
  const std::vector<TypeStatus>& status() const override { return state_.status(); }

 private:
  DeltaState state_;
};

class ClientImpl final : public Client {
 public:
  ClientImpl(event_base* base, ClientOptions options, ResourceHandler handler, StatsStore& stats,
             std::shared_ptr<const TlsContext> tls)
      : base_(base),
        options_(std::move(options)),
        handler_(std::move(handler)),
        tls_(std::move(tls)),
        protocol_(options_.delta ? std::unique_ptr<StreamProtocol>(new DeltaProtocol(options_))
                                 : std::unique_ptr<StreamProtocol>(new SotwProtocol(options_))),
        random_(std::random_device{}()),
        connected_(stats.gauge("xds", "connected")),
        connect_attempts_(stats.counter("xds", "connect_attempts")),
        streams_opened_(stats.counter("xds", "streams_opened")),
        disconnects_(stats.counter("xds", "disconnects")),
        stream_errors_(stats.counter("xds", "stream_errors")),
        stats_(stats) {
    dns_ = evdns_base_new(base_, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    retry_ev_ = event_new(base_, -1, 0, &ClientImpl::onRetry, this);
    for (const Subscription& s : options_.subscriptions) {
      std::string scope = statScope(s.type);
      per_type_.push_back({&stats.counter(scope, "update_attempt"),
                           &stats.counter(scope, "update_success"),
                           &stats.counter(scope, "update_rejected")});
      stats.setText(scope, "version", "");
    }
  }

  ~ClientImpl() override {
    stream_.reset();
    event_free(retry_ev_);
    if (dns_ != nullptr) evdns_base_free(dns_, /*fail_requests=*/0);
  }

  void start() override { connect(); }
  bool connected() const override { return stream_ && stream_->isOpen(); }
  std::string server() const override { return options_.servers[server_index_]; }
  std::string lastError() const override { return last_error_; }
  const std::vector<TypeStatus>& status() const override { return protocol_->status(); }

 private:
  struct TypeStats {
    Stat* attempts;
    Stat* successes;
    Stat* rejections;
  };

  void connect() {
    connect_attempts_.inc();
    const std::string& server = options_.servers[server_index_];
    auto host_port = splitHostPort(server);  // checked by makeClient
    H2Target target;
    target.host = host_port->first;
    target.port = host_port->second;
    target.path = std::string(protocol_->path());
    target.content_type = std::string(kNdjsonContentType);
    target.tls = tls_;
    target.tls_server_name = options_.server_name;
    target.connect_timeout = options_.connect_timeout;
    framer_ = NdjsonFramer();
    stream_ = std::make_unique<H2Stream>(
        base_, dns_,
        H2Stream::Callbacks{[this] { onOpen(); }, [this](std::string_view bytes) { onData(bytes); },
                            [this](const Status& why) { onClosed(why); }});
    stream_->open(target);
  }

  void onOpen() {
    connected_.set(1);
    streams_opened_.inc();
    spdlog::info("xds: connected to {} ({}, {})", server(), tls_ ? "TLS" : "plaintext h2c",
                 options_.delta ? "delta" : "state of the world");
    for (std::string& line : protocol_->openingLines()) stream_->send(std::move(line));
  }

  void onData(std::string_view bytes) {
    Status framed = framer_.feed(bytes, [this](std::string_view line) { return onLine(line); });
    if (!framed) {
      stream_errors_.inc();
      stream_->close(framed);
    }
  }

  Status onLine(std::string_view line) {
    if (std::optional<StreamError> error = parseStreamError(line)) {
      return protocolError(fmt::format("server error {}: {}", error->code, error->message));
    }
    backoff_attempt_ = 0;  // the server answers: the stream is healthy
    Result<Outcome> outcome = protocol_->onLine(line, handler_);
    if (!outcome) return outcome.status();
    std::string_view type = shortName(outcome->type);
    switch (outcome->kind) {
      case Outcome::kNotSubscribed:
        spdlog::warn("xds: NACKed a {} response: not subscribed", type);
        break;
      case Outcome::kUnreadable:
        countRejected(outcome->type);
        spdlog::warn("xds: rejected {} response: {}", type, outcome->verdict.message());
        break;
      case Outcome::kJudged: {
        TypeStats& counters = per_type_[typeIndex(outcome->type)];
        counters.attempts->inc();
        if (outcome->verdict) {
          counters.successes->inc();
          stats_.setText(statScope(outcome->type), "version", outcome->version);
          spdlog::info("xds: accepted {} version {} ({} resources)", type, outcome->version,
                       outcome->resources);
        } else {
          counters.rejections->inc();
          spdlog::warn("xds: rejected {} version {}: {}", type, outcome->version,
                       outcome->verdict.message());
        }
        break;
      }
    }
    stream_->send(std::move(outcome->reply));
    return {};
  }

  void countRejected(ResourceType type) {
    TypeStats& counters = per_type_[typeIndex(type)];
    counters.attempts->inc();
    counters.rejections->inc();
  }

  size_t typeIndex(ResourceType type) const {
    const auto& subscriptions = options_.subscriptions;
    auto it = std::find_if(subscriptions.begin(), subscriptions.end(),
                           [type](const Subscription& s) { return s.type == type; });
    return static_cast<size_t>(it - subscriptions.begin());
  }

  void onClosed(const Status& why) {
    bool was_open = connected_.value() != 0;
    connected_.set(0);
    if (was_open) disconnects_.inc();
    if (why.message() != last_error_ || was_open) {
      spdlog::warn("xds: {}; keeping the last accepted configuration, retrying", why.message());
    }
    last_error_ = why.message();
    stream_.reset();
    server_index_ = (server_index_ + 1) % options_.servers.size();
    scheduleRetry();
  }

  // Exponential backoff with jitter: uniform in [base/2, base], base doubling up to the cap.
  void scheduleRetry() {
    auto base = options_.initial_backoff * (int64_t{1} << std::min(backoff_attempt_, 20));
    base = std::min(base, options_.max_backoff);
    ++backoff_attempt_;
    std::uniform_int_distribution<int64_t> jitter(base.count() / 2, base.count());
    timeval tv = toTimeval(std::chrono::milliseconds(jitter(random_)));
    event_add(retry_ev_, &tv);
  }

  static void onRetry(int, short, void* arg) { static_cast<ClientImpl*>(arg)->connect(); }

  event_base* base_;
  ClientOptions options_;
  ResourceHandler handler_;
  std::shared_ptr<const TlsContext> tls_;
  std::unique_ptr<StreamProtocol> protocol_;
  std::mt19937_64 random_;
  evdns_base* dns_ = nullptr;
  event* retry_ev_ = nullptr;
  std::unique_ptr<H2Stream> stream_;
  NdjsonFramer framer_;
  size_t server_index_ = 0;
  int backoff_attempt_ = 0;
  std::string last_error_;
  Stat& connected_;
  Stat& connect_attempts_;
  Stat& streams_opened_;
  Stat& disconnects_;
  Stat& stream_errors_;
  StatsStore& stats_;
  std::vector<TypeStats> per_type_;
};

}  // namespace

Result<std::unique_ptr<Client>> makeClient(event_base* base, ClientOptions options,
                                           ResourceHandler handler, StatsStore& stats) {
  if (options.servers.empty()) return invalidArgument("xds: no server address given");
  for (const std::string& server : options.servers) {
    if (auto parsed = splitHostPort(server); !parsed) return parsed.status();
  }
  if (options.subscriptions.empty()) return invalidArgument("xds: nothing to subscribe to");
  std::shared_ptr<const TlsContext> tls;
  if (!options.plaintext) {
    if (options.ca_file.empty() && options.ca_pem.empty()) {
      return invalidArgument("xds: TLS needs a CA file (or ask for plaintext explicitly)");
    }
    auto context = TlsContext::create(options.ca_file, options.ca_pem);
    if (!context) return context.status();
    tls = std::move(context.value());
  }
  return std::unique_ptr<Client>(std::make_unique<ClientImpl>(
      base, std::move(options), std::move(handler), stats, std::move(tls)));
}

}  // namespace rdmesh::xds
