#include "xds_server.h"

#include <event2/event.h>
#include <malloc.h>
#include <openssl/crypto.h>

#include <nlohmann/json.hpp>

#include "fmt/format.h"
#include "rdmesh/common/timeval.h"
#include "rdmesh/xds/wire.h"
#include "spdlog/spdlog.h"

namespace rdmesh::xds_server {
namespace {

using nlohmann::json;

// Registration bodies are one resource: kilobytes.
constexpr size_t kMaxRegistrationBodyBytes = 1u << 20;
constexpr std::string_view kBearerPrefix = "Bearer ";
constexpr std::chrono::seconds kTrimInterval{5};

bool startsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// Constant-time comparison, so the token cannot be guessed byte by byte from response times.
bool tokenMatches(std::string_view presented, std::string_view expected) {
  return presented.size() == expected.size() &&
         CRYPTO_memcmp(presented.data(), expected.data(), expected.size()) == 0;
}

HttpReply jsonReply(const json& body) {
  return {.status = 200,
          .content_type = "application/json",
          .body = body.dump(2, ' ', false, json::error_handler_t::replace) + "\n"};
}

}  // namespace

XdsServer::XdsServer(event_base* base, Registry& registry, StatsStore& stats,
                     XdsServerOptions options)
    : base_(base),
      registry_(registry),
      stats_(stats),
      options_(std::move(options)),
      catalog_(std::make_shared<Catalog>()),
      connected_clients_(stats.gauge("xds", "connected_clients")),
      pushes_total_(stats.counter("xds", "pushes_total")),
      acks_total_(stats.counter("xds", "acks_total")),
      nacks_total_(stats.counter("xds", "nacks_total")),
      bad_requests_total_(stats.counter("xds", "bad_requests_total")),
      registrations_total_(stats.counter("xds", "registrations_total")),
      registry_revision_(stats.gauge("xds", "registry_revision")) {
  push_timer_ = evtimer_new(base_, &XdsServer::onPushTimer, this);
  trim_timer_ = event_new(base_, -1, EV_PERSIST, &XdsServer::onTrimTimer, this);
  timeval interval = toTimeval(kTrimInterval);
  evtimer_add(trim_timer_, &interval);
}

XdsServer::~XdsServer() {
  event_free(push_timer_);
  event_free(trim_timer_);
}

void XdsServer::onTrimTimer(int, short, void* arg) {
  auto* self = static_cast<XdsServer*>(arg);
  if (self->pushes_total_.value() == self->pushes_at_last_trim_) return;
  self->pushes_at_last_trim_ = self->pushes_total_.value();
  malloc_trim(0);
  struct mallinfo2 heap = mallinfo2();
  spdlog::debug("xds: heap after trim: {} KiB in use, {} KiB free", heap.uordblks / 1024,
                heap.fordblks / 1024);
}

void XdsServer::start() {
  registry_.setOnChange([this](const SnapshotPtr&) { onRegistryChange(); });
  catalog_ = buildCatalog(*registry_.snapshot());
  registry_revision_.set(catalog_->revision);
  started_ = true;
}

void XdsServer::drain() {
  draining_ = true;
  // finish() may close streams synchronously later, from the loop; copy first.
  std::vector<DiscoveryHandler*> handlers(handlers_.begin(), handlers_.end());
  for (DiscoveryHandler* handler : handlers) handler->finish();
}

void XdsServer::onRegistryChange() {
  if (!first_unpublished_change_) first_unpublished_change_ = Clock::now();
  if (!evtimer_pending(push_timer_, nullptr)) {
    timeval delay = toTimeval(options_.push_delay);
    evtimer_add(push_timer_, &delay);
  }
}

void XdsServer::onPushTimer(int, short, void* arg) {
  static_cast<XdsServer*>(arg)->publish();
}

void XdsServer::publish() {
  const Clock::time_point changed_at = first_unpublished_change_.value_or(Clock::now());
  first_unpublished_change_.reset();
  SnapshotPtr snapshot = registry_.snapshot();
  if (snapshot->revision == catalog_->revision) return;
  const auto started = Clock::now();
  catalog_ = buildCatalog(*snapshot);
  registry_revision_.set(catalog_->revision);
  for (DiscoveryHandler* handler : handlers_) handler->updateCatalog(catalog_, changed_at);
  spdlog::debug(
      "xds: revision {} published to {} clients in {} us", catalog_->revision, handlers_.size(),
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started).count());
}

std::unique_ptr<H2StreamHandler> XdsServer::route(H2Stream& stream) {
  const H2Request& request = stream.request();
  std::string_view path = request.path;
  auto reply = [&stream](HttpReply fixed) {
    return std::make_unique<UnaryHandler>(
        stream, 0,
        [fixed = std::move(fixed)](const H2Request&, std::string_view) { return fixed; });
  };
  if (path == xds::kStreamPath || path == xds::kDeltaStreamPath) {
    if (request.method != "POST") return reply(errorReply(405, "discovery streams are POST"));
    if (draining_) return reply(errorReply(503, "draining: connect to another replica"));
    // A (re)connecting client starts from the newest registry, not from the last coalesced one.
    if (registry_.snapshot()->revision != catalog_->revision) publish();
    stream.respond(200, xds::kNdjsonContentType);
    return std::make_unique<DiscoveryHandler>(
        *this, stream,
        path == xds::kDeltaStreamPath ? StreamMode::kDelta : StreamMode::kStateOfTheWorld, catalog_,
        *this);
  }
  if (startsWith(path, xds::kWorkloadsPath) || startsWith(path, xds::kNodesPath)) {
    return std::make_unique<UnaryHandler>(
        stream, kMaxRegistrationBodyBytes,
        [this](const H2Request& r, std::string_view body) { return handleRegistration(r, body); });
  }
  return std::make_unique<UnaryHandler>(
      stream, 0, [this](const H2Request& r, std::string_view) { return handleStatus(r); });
}

HttpReply XdsServer::handleStatus(const H2Request& request) {
  std::string_view path = std::string_view(request.path).substr(0, request.path.find('?'));
  if (path != "/ready" && path != "/metrics" && path != "/debug/syncz" &&
      path != "/debug/registry") {
    return errorReply(404, fmt::format("no such path: {}", path.substr(0, 200)));
  }
  if (request.method != "GET" && request.method != "HEAD") {
    return errorReply(405, "status endpoints are GET");
  }
  if (path == "/ready") {
    return ready() ? HttpReply{.status = 200, .content_type = "text/plain", .body = "ready\n"}
                   : HttpReply{.status = 503,
                               .content_type = "text/plain",
                               .body = draining_ ? "draining\n" : "registry not loaded\n"};
  }
  if (path == "/metrics") {
    return {.status = 200, .content_type = "text/plain; version=0.0.4", .body = metrics()};
  }
  if (path == "/debug/syncz") return {.status = 200, .body = syncz()};
  return {.status = 200, .body = registryDump()};
}

HttpReply XdsServer::handleRegistration(const H2Request& request, std::string_view body) {
  if (options_.registration_token.empty()) {
    return errorReply(403,
                      "registration API disabled: start rdmesh-xds with "
                      "--registration-token-file");
  }
  if (!startsWith(request.authorization, kBearerPrefix) ||
      !tokenMatches(std::string_view(request.authorization).substr(kBearerPrefix.size()),
                    options_.registration_token)) {
    return errorReply(401, "missing or wrong bearer token");
  }
  const bool is_workload = startsWith(request.path, xds::kWorkloadsPath);
  const xds::ResourceType type =
      is_workload ? xds::ResourceType::kWorkload : xds::ResourceType::kNode;
  const std::string name =
      request.path.substr(is_workload ? xds::kWorkloadsPath.size() : xds::kNodesPath.size());
  if (name.empty() || name.find('?') != std::string::npos) {
    return errorReply(400, is_workload ? "path must be /v1/workloads/<namespace>/<pod>"
                                       : "path must be /v1/nodes/<name>");
  }
  RegistryChange change;
  if (request.method == "PUT") {
    Result<xds::Resource> resource = xds::parseResourceText(type, body);
    if (!resource.isOk()) return errorReply(400, resource.status().message());
    if (xds::nameOf(*resource) != name) {
      return errorReply(400, fmt::format("name: \"{}\" does not match the path (\"{}\")",
                                         xds::nameOf(*resource), name.substr(0, 200)));
    }
    if (is_workload) {
      change.put_workloads.push_back(std::get<xds::Workload>(std::move(*resource)));
    } else {
      change.put_nodes.push_back(std::get<xds::Node>(std::move(*resource)));
    }
  } else if (request.method == "DELETE") {
    (is_workload ? change.delete_workloads : change.delete_nodes).push_back(name);
  } else {
    return errorReply(405, "registration takes PUT or DELETE");
  }
  Result<uint64_t> revision = registry_.apply(change);
  if (!revision.isOk()) return errorReply(503, revision.status().message());
  registrations_total_.inc();
  spdlog::info("xds: {} {} {} (revision {})", request.method, xds::shortName(type), name,
               *revision);
  return jsonReply({{"revision", *revision}});
}

void XdsServer::attach(DiscoveryHandler* handler) {
  handlers_.insert(handler);
  connected_clients_.set(handlers_.size());
}

void XdsServer::detach(DiscoveryHandler* handler) {
  handlers_.erase(handler);
  connected_clients_.set(handlers_.size());
}

void XdsServer::onBadRequest(const DiscoveryHandler& handler, const Status& error) {
  bad_requests_total_.inc();
  spdlog::info("xds: {}: bad request, resetting the stream: {}", handler.peer(), error.message());
}

void XdsServer::onPush(xds::ResourceType) {
  pushes_total_.inc();
}

void XdsServer::onAck(xds::ResourceType, Clock::duration change_to_ack) {
  acks_total_.inc();
  push_latency_.observe(std::chrono::duration<double>(change_to_ack).count());
}

void XdsServer::onNack(xds::ResourceType) {
  nacks_total_.inc();
}

std::string XdsServer::syncz() const {
  json clients = json::array();
  for (const DiscoveryHandler* handler : handlers_) clients.push_back(handler->status());
  std::sort(clients.begin(), clients.end(),
            [](const json& a, const json& b) { return a.value("id", "") < b.value("id", ""); });
  return json({{"revision", catalog_->revision}, {"clients", std::move(clients)}})
             .dump(2, ' ', false, json::error_handler_t::replace) +
         "\n";
}

std::string XdsServer::metrics() const {
  return stats_.renderPrometheus() +
         push_latency_.renderPrometheus("rdmesh_xds_push_latency_seconds");
}

std::string XdsServer::registryDump() const {
  SnapshotPtr snapshot = registry_.snapshot();
  json nodes = json::array(), workloads = json::array(), services = json::array();
  for (const auto& [name, node] : snapshot->nodes) nodes.push_back(xds::toJson(node));
  for (const auto& [name, workload] : snapshot->workloads)
    workloads.push_back(xds::toJson(workload));
  for (const auto& [name, service] : snapshot->services) services.push_back(xds::toJson(service));
  return json({{"revision", snapshot->revision},
               {"nodes", std::move(nodes)},
               {"workloads", std::move(workloads)},
               {"services", std::move(services)}})
             .dump(2, ' ', false, json::error_handler_t::replace) +
         "\n";
}

}  // namespace rdmesh::xds_server
