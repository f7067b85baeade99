#include "fake_node_agent.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "rdmesh/capture/netns_cookie.h"

namespace rdmesh::testing {

using Json = nlohmann::json;

namespace {

std::string field(const Json& request, const char* key) {
  auto it = request.find(key);
  return it != request.end() && it->is_string() ? it->get<std::string>() : std::string();
}

Json error(const std::string& why) {
  return Json{{"ok", false}, {"error", why}};
}

}  // namespace

FakeNodeAgent::FakeNodeAgent(std::string socket_path) : path_(std::move(socket_path)) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path_.size() >= sizeof(addr.sun_path)) throw std::runtime_error("socket path too long");
  std::memcpy(addr.sun_path, path_.data(), path_.size());
  ::unlink(path_.c_str());
  listen_.reset(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listen_ || ::bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listen_.get(), 64) != 0) {
    throw std::runtime_error("fake node agent: cannot listen on " + path_ + ": " +
                             std::strerror(errno));
  }
  wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  thread_ = std::thread([this] { loop(); });
}

FakeNodeAgent::~FakeNodeAgent() {
  const uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof(one));
  thread_.join();
  ::unlink(path_.c_str());
}

std::vector<Json> FakeNodeAgent::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

std::vector<std::string> FakeNodeAgent::ops() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& r : requests_) out.push_back(r.is_object() ? field(r, "op") : "<not json>");
  return out;
}

std::map<std::string, FakeNodeAgent::Pod> FakeNodeAgent::pods() const {
  std::lock_guard lock(mu_);
  return pods_;
}

void FakeNodeAgent::misbehaveOnce(const std::string& op, Misbehaviour how) {
  std::lock_guard lock(mu_);
  misbehave_[op] = how;
}

void FakeNodeAgent::loop() {
  std::vector<UniqueFd> clients;
  for (;;) {
    std::vector<pollfd> fds{{wake_.get(), POLLIN, 0}, {listen_.get(), POLLIN, 0}};
    for (const auto& c : clients) fds.push_back({c.get(), POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[0].revents) return;
    if (fds[1].revents & POLLIN) {
      int c = ::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) clients.emplace_back(c);
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      std::string buf(size_t{64} * 1024 + 1, '\0');
      const ssize_t n = ::recv(fds[i].fd, buf.data(), buf.size(), MSG_DONTWAIT);
      if (n > 0) {
        buf.resize(static_cast<size_t>(n));
        handle(fds[i].fd, buf);
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        clients[i - 2].reset();
      }
    }
    std::erase_if(clients, [](const UniqueFd& c) { return !c; });
  }
}

void FakeNodeAgent::handle(int fd, const std::string& datagram) {
  Json request = Json::parse(datagram, nullptr, false);
  std::optional<Misbehaviour> how;
  {
    std::lock_guard lock(mu_);
    requests_.push_back(request.is_discarded() ? Json("<not json>") : request);
    const std::string op = request.is_object() ? field(request, "op") : "";
    if (auto it = misbehave_.find(op); it != misbehave_.end()) {
      how = it->second;
      misbehave_.erase(it);
    }
  }
  std::string reply;
  if (!how) {
    reply = answer(request).dump();
  } else {
    switch (*how) {
      case Misbehaviour::kRefuse:
        reply = error("refused by the test").dump();
        break;
      case Misbehaviour::kSilent:
        answer(request);  // applied, but the reply is lost
        return;
      case Misbehaviour::kGarbage:
        reply = "{\"ok\": tru";
        break;
      case Misbehaviour::kOversized:
        reply = R"({"ok":true,"pad":")" + std::string(70 * 1024, 'x') + "\"}";
        break;
      case Misbehaviour::kCloseConnection:
        ::shutdown(fd, SHUT_RDWR);
        return;
    }
  }
  (void)!::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
}

Json FakeNodeAgent::answer(const Json& request) {
  if (!request.is_object()) return error("request is not a JSON object");
  auto version = request.find("v");
  if (version == request.end() || !version->is_number_integer() || *version != 1) {
    return error("\"v\" must be 1");
  }
  const std::string op = field(request, "op");
  const std::string id = field(request, "container_id");
  std::lock_guard lock(mu_);
  if (op == "pod_add") {
    if (id.empty()) return error("pod_add: \"container_id\" must be a non-empty string");
    auto ips = request.find("ips");
    if (ips == request.end() || !ips->is_array() || ips->empty()) {
      return error("pod_add: \"ips\" must be a non-empty list of strings");
    }
    auto cookie = capture::netnsCookie(field(request, "netns"));
    if (!cookie) return error("pod_add: \"netns\": " + cookie.status().message());
    if (auto it = pods_.find(id); it != pods_.end()) {
      Json previous = it->second.request;
      if (previous != request) return error("pod_add: " + id + " is registered with other data");
    }
    pods_[id] = Pod{request, *cookie};
    return Json{{"ok", true}, {"netns_cookie", *cookie}};
  }
  if (op == "pod_del") {
    if (id.empty()) return error("pod_del: \"container_id\" must be a non-empty string");
    pods_.erase(id);
    return Json{{"ok", true}};
  }
  if (op == "pod_check") {
    if (pods_.count(id) == 0) return error("pod_check: pod " + id + " is not registered");
    return Json{{"ok", true}};
  }
  if (op == "pod_list") {
    Json list = Json::array();
    for (const auto& [pid, pod] : pods_) {
      list.push_back({{"container_id", pid},
                      {"netns_cookie", pod.netns_cookie},
                      {"ips", pod.request["ips"]},
                      {"pod_name", pod.request.value("pod_name", "")},
                      {"pod_namespace", pod.request.value("pod_namespace", "")}});
    }
    return Json{{"ok", true}, {"pods", list}};
  }
  return error("unknown op \"" + op + "\"");
}

}  // namespace rdmesh::testing
