#include "k8s_reflector.h"

#include <event2/event.h>
#include <event2/http.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>

#include "rdmesh/common/timeval.h"

namespace rdmesh::xds::k8s {
namespace {

constexpr int kHttpGone = 410;

std::string uriEncode(const std::string& text) {
  char* encoded = evhttp_uriencode(text.c_str(), static_cast<ev_ssize_t>(text.size()), 0);
  std::string out = encoded != nullptr ? encoded : "";
  std::free(encoded);
  return out;
}

std::string describeHttpError(int status, const std::string& body) {
  if (auto api = parseApiStatus(body)) {
    return fmt::format("HTTP {} {}: {}", status, api->reason, api->message);
  }
  return fmt::format("HTTP {}", status);
}

}  // namespace

Reflector::Reflector(event_base* base, HttpClient& http, const ApiConfig& api, Options options,
                     Callbacks callbacks)
    : base_(base),
      http_(http),
      api_(api),
      options_(std::move(options)),
      callbacks_(std::move(callbacks)) {
  timer_ = evtimer_new(base_, &Reflector::onTimer, this);
}

Reflector::~Reflector() {
  *alive_ = false;
  watch_.reset();
  event_free(timer_);
}

void Reflector::start() {
  list();
}

Result<HttpRequest> Reflector::request(std::string target) const {
  HttpRequest req;
  req.method = "GET";
  req.target = std::move(target);
  req.headers.emplace_back("Accept", "application/json");
  req.headers.emplace_back("User-Agent", "rdmesh-xds");
  auto authorization = api_.authorization();
  if (!authorization) return authorization.status();
  if (!authorization->empty()) req.headers.emplace_back("Authorization", *authorization);
  return req;
}

void Reflector::list() {
  listing_.clear();
  fetchPage("");
}

void Reflector::fetchPage(const std::string& continue_token) {
  std::string target = fmt::format("{}?limit={}", options_.path, options_.page_size);
  if (!continue_token.empty()) target += "&continue=" + uriEncode(continue_token);
  auto req = request(std::move(target));
  if (!req) {
    fail(Next::kList, req.status());
    return;
  }
  req->idle_timeout = std::chrono::seconds(60);
  Status started = http_.fetch(
      *req,
      [this, alive = alive_, paging = !continue_token.empty()](Result<HttpClient::Response> r) {
        if (!*alive) return;
        if (!r) {
          fail(Next::kList, r.status());
          return;
        }
        if (r->status == kHttpGone && paging) {
          // The continue token outlived the server's snapshot: start over.
          ++counters_.gone;
          list();
          return;
        }
        if (r->status != 200) {
          fail(Next::kList, unavailable(describeHttpError(r->status, r->body)));
          return;
        }
        auto page = parseListPage(r->body);
        if (!page) {
          fail(Next::kList, page.status());
          return;
        }
        for (auto& item : page->items) listing_.push_back(std::move(item));
        if (!page->continue_token.empty()) {
          fetchPage(page->continue_token);
          return;
        }
        ++counters_.lists;
        resource_version_ = page->resource_version;
        synced_ = true;
        std::vector<nlohmann::json> items;
        items.swap(listing_);
        if (callbacks_.on_list) callbacks_.on_list(std::move(items));
        watch();
      },
      kMaxBodyBytes);
  if (!started) fail(Next::kList, started);
}

void Reflector::watch() {
  auto req = request(
      fmt::format("{}?watch=1&allowWatchBookmarks=true&resourceVersion={}&timeoutSeconds={}",
                  options_.path, uriEncode(resource_version_), options_.watch_timeout.count()));
  if (!req) {
    fail(Next::kWatch, req.status());
    return;
  }
  // The server ends the watch after timeoutSeconds; bookmarks arrive about once a minute.
  req->idle_timeout = options_.watch_timeout + std::chrono::seconds(60);
  watch_status_ = 0;
  watch_error_body_.clear();
  watch_lines_ = StreamLines(kMaxWatchLineBytes);
  watch_abandoned_ = false;
  HttpCall::Callbacks callbacks;
  callbacks.on_status = [this](int status) { watch_status_ = status; };
  callbacks.on_body = [this](std::string_view bytes) {
    if (watch_abandoned_) return;
    if (watch_status_ != 200) {
      if (watch_error_body_.size() < 64 * 1024) watch_error_body_.append(bytes);
      return;
    }
    Status fed = watch_lines_.feed(bytes, [this](std::string_view line) {
      return onWatchLine(line) ? Status::ok() : Status(StatusCode::kInternal, "abandoned");
    });
    if (!fed && !watch_abandoned_) {
      watch_abandoned_ = true;
      ++counters_.malformed;
      watch_.reset();
      fail(Next::kWatch, fed);
    }
  };
  callbacks.on_done = [this](Status status) { onWatchDone(std::move(status)); };
  ++counters_.watches;
  auto call = http_.start(*req, std::move(callbacks));
  if (!call) {
    fail(Next::kWatch, call.status());
    return;
  }
  watch_ = std::move(*call);
}

// false: the watch was abandoned (watch_ is gone and what comes next is scheduled).
bool Reflector::onWatchLine(std::string_view line) {
  auto event = parseWatchEvent(line);
  if (!event) {
    ++counters_.malformed;
    watch_abandoned_ = true;
    watch_.reset();
    fail(Next::kWatch,
         protocolError(fmt::format("{}: malformed watch event after resourceVersion {}: {}",
                                   options_.path, resource_version_, event.status().message())));
    return false;
  }
  switch (event->type) {
    case WatchEventType::kError:
      watch_abandoned_ = true;
      watch_.reset();
      if (event->status.code == kHttpGone) {
        ++counters_.gone;
        spdlog::info("kubernetes {}: resourceVersion {} is gone ({}), listing again", options_.path,
                     resource_version_, event->status.message);
        list();
      } else {
        ++counters_.errors;
        fail(Next::kWatch,
             unavailable(fmt::format("{}: watch ERROR {} {}: {}", options_.path, event->status.code,
                                     event->status.reason, event->status.message)));
      }
      return false;
    case WatchEventType::kBookmark:
      ++counters_.bookmarks;
      resource_version_ = event->resource_version;
      break;
    default:
      ++counters_.events;
      resource_version_ = event->resource_version;
      backoff_ = std::chrono::milliseconds(0);
      if (callbacks_.on_event) callbacks_.on_event(event->type, event->object);
      break;
  }
  return true;
}

void Reflector::onWatchDone(Status status) {
  if (watch_abandoned_) return;
  watch_.reset();
  if (watch_status_ == kHttpGone) {
    ++counters_.gone;
    list();
    return;
  }
  if (watch_status_ != 0 && watch_status_ != 200) {
    ++counters_.errors;
    fail(Next::kWatch,
         unavailable(fmt::format("{}: watch: {}", options_.path,
                                 describeHttpError(watch_status_, watch_error_body_))));
    return;
  }
  if (!status) {
    fail(Next::kWatch, unavailable(fmt::format("{}: watch: {}", options_.path, status.message())));
    return;
  }
  // The server closed the stream (timeoutSeconds): resume at once from where we are.
  schedule(Next::kWatch, std::chrono::milliseconds(0));
}

void Reflector::fail(Next next, Status why) {
  backoff_ = std::clamp(backoff_ * 2, options_.min_backoff, options_.max_backoff);
  if (why.message() != last_error_.message()) {
    spdlog::warn("kubernetes {}: {}; retrying in {} ms", options_.path, why.message(),
                 backoff_.count());
  }
  last_error_ = std::move(why);
  schedule(next, backoff_);
}

void Reflector::schedule(Next next, std::chrono::milliseconds delay) {
  next_ = next;
  timeval tv = toTimeval(delay);
  evtimer_add(timer_, &tv);
}

void Reflector::onTimer(int /*fd*/, short /*what*/, void* arg) {
  auto* self = static_cast<Reflector*>(arg);
  if (self->next_ == Next::kList) {
    self->list();
  } else {
    self->watch();
  }
}

}  // namespace rdmesh::xds::k8s
