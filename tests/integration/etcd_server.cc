#include "etcd_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <stdexcept>

namespace rdmesh::it {

uint16_t freeLocalPort() {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (!fd || bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw std::runtime_error("freeLocalPort: cannot bind 127.0.0.1:0");
  }
  return ntohs(addr.sin_port);
}

std::string EtcdServer::unavailableReason() {
  if (findExecutable("etcd").empty()) return "etcd not installed (scripts/install-deps.sh)";
  if (findExecutable("etcdctl").empty()) return "etcdctl not installed (scripts/install-deps.sh)";
  return {};
}

EtcdServer::EtcdServer() : dir_("rdmetcd"), data_dir_(dir_.file("data")) {
  // Another process may take a port between our probe and etcd's bind: try a few pairs.
  for (int attempt = 0;; ++attempt) {
    client_port_ = freeLocalPort();
    peer_port_ = freeLocalPort();
    try {
      start();
      return;
    } catch (const std::exception&) {
      if (attempt == 3) throw;
    }
  }
}

EtcdServer::~EtcdServer() {
  kill();
}

void EtcdServer::start() {
  std::string client = "http://127.0.0.1:" + std::to_string(client_port_);
  std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
  ++starts_;
  proc_ = std::make_unique<Process>(
      "etcd",
      std::vector<std::string>{"etcd", "--name", "rdmesh-test", "--data-dir", data_dir_,
                               "--listen-client-urls", client, "--advertise-client-urls", client,
                               "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                               "--initial-cluster", "rdmesh-test=" + peer, "--log-level", "warn",
                               // Quiet clusters still prove a watch alive now and then.
                               "--experimental-watch-progress-notify-interval", "5s"},
      dir_.file("etcd-" + std::to_string(starts_) + ".log"));
  bool healthy = waitFor(
      [&] {
        if (!proc_->running()) return true;
        HttpResponse r = httpGet("", client + "/health", 1s);
        return r.status == 200 && r.body.find("\"true\"") != std::string::npos;
      },
      30s, 50ms);
  if (!healthy || !proc_->running()) {
    proc_->printLog();
    proc_.reset();
    throw std::runtime_error("etcd did not become healthy on " + client);
  }
}

void EtcdServer::kill() {
  if (proc_) proc_->kill();
}

void EtcdServer::restart() {
  kill();
  start();
}

bool EtcdServer::running() {
  return proc_ && proc_->running();
}

std::string EtcdServer::ctl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"etcdctl", "--endpoints", clientUrl()};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandResult r = runCommand(argv, dir_.file("etcdctl.log"), {}, 30s);
  if (!r.ok()) throw std::runtime_error("etcdctl failed: " + r.describe() + "\n" + r.output);
  return r.output;
}

int64_t EtcdServer::compactAll() {
  // "get / --prefix -w json" carries the current revision in its header.
  std::string out = ctl({"get", "--prefix", "/", "--keys-only", "--limit", "1", "-w", "json"});
  size_t at = out.find("\"revision\":");
  if (at == std::string::npos) throw std::runtime_error("etcdctl: no revision in " + out);
  int64_t revision = std::stoll(out.substr(at + 11));
  ctl({"compaction", std::to_string(revision)});
  return revision;
}

TcpRelay::TcpRelay(std::string target_ip, uint16_t target_port)
    : target_ip_(std::move(target_ip)), target_port_(target_port), port_(freeLocalPort()) {
  server_ = std::make_unique<ThreadedServer>("", "127.0.0.1", port_, [this](int fd) { relay(fd); });
}

TcpRelay::~TcpRelay() {
  cut();
  server_.reset();
}

void TcpRelay::cut() {
  refusing_ = true;
  std::lock_guard<std::mutex> lock(mu_);
  for (int fd : open_fds_) shutdown(fd, SHUT_RDWR);
}

void TcpRelay::restore() {
  refusing_ = false;
}

void TcpRelay::relay(int client_fd) {
  if (refusing_) return;  // closed by ThreadedServer: the client sees the connection drop
  UniqueFd upstream = tcpConnect("", target_ip_, target_port_, 5s);
  if (!upstream) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    open_fds_.insert(client_fd);
    open_fds_.insert(upstream.get());
  }
  if (refusing_) shutdown(client_fd, SHUT_RDWR);  // cut() ran before we registered
  setSocketTimeouts(upstream.get(), 0ms);
  char buf[16384];
  pollfd fds[2] = {{client_fd, POLLIN, 0}, {upstream.get(), POLLIN, 0}};
  for (bool open = true; open;) {
    if (poll(fds, 2, -1) < 0) break;
    for (int i = 0; i < 2 && open; ++i) {
      if (fds[i].revents == 0) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      open = n > 0 && sendAll(fds[1 - i].fd, buf, static_cast<size_t>(n));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  open_fds_.erase(client_fd);
  open_fds_.erase(upstream.get());
}

}  // namespace rdmesh::it
