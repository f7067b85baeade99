#include "k8s_replay_server.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sstream>
#include <stdexcept>

#include "etcd_server.h"

#ifndef RDMESH_K8S_FIXTURES_DIR
#error "RDMESH_K8S_FIXTURES_DIR must point at tests/integration/fixtures/k8s"
#endif

namespace rdmesh::it {
namespace {

std::string percentDecode(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += text[i] == '+' ? ' ' : text[i];
    }
  }
  return out;
}

const char* reasonOf(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 410:
      return "Gone";
    default:
      return "Error";
  }
}

// Byte I/O over a plain socket or a TLS session.
class Conn {
 public:
  Conn(int fd, SSL* ssl) : fd_(fd), ssl_(ssl) {}
  ~Conn() {
    if (ssl_ != nullptr) SSL_free(ssl_);
  }
  ssize_t read(char* buf, size_t len) {
    if (ssl_ == nullptr) return ::read(fd_, buf, len);
    int n = SSL_read(ssl_, buf, static_cast<int>(len));
    return n > 0 ? n : -1;
  }
  bool write(const std::string& data) {
    if (ssl_ == nullptr) return sendAll(fd_, data);
    return SSL_write(ssl_, data.data(), static_cast<int>(data.size())) ==
           static_cast<int>(data.size());
  }

 private:
  int fd_;
  SSL* ssl_;
};

std::string chunk(const std::string& data) {
  std::ostringstream out;
  out << std::hex << data.size() << "\r\n" << data << "\r\n";
  return out.str();
}

}  // namespace

struct ReplayApiServer::Held {
  std::string path;
  std::vector<std::string> pending;
  bool release = false;
  bool drop = false;
};

std::string k8sFixture(const std::string& name) {
  std::string path = std::string(RDMESH_K8S_FIXTURES_DIR) + "/" + name;
  std::string content = readFile(path);
  if (content.empty()) throw std::runtime_error("missing fixture " + path);
  return content;
}

std::vector<std::string> k8sFixtureLines(const std::string& name) {
  std::vector<std::string> lines;
  std::istringstream in(k8sFixture(name));
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line + "\n");
  }
  return lines;
}

TestCertificates makeTestCertificates(const std::string& dir) {
  TestCertificates certs{dir + "/ca.crt", dir + "/server.crt", dir + "/server.key"};
  writeFile(dir + "/san.ext", "subjectAltName=IP:127.0.0.1,DNS:kubernetes.default.svc\n");
  const std::vector<std::vector<std::string>> steps = {
      {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
       "-nodes", "-keyout", dir + "/ca.key", "-out", certs.ca_file, "-subj", "/CN=rdmesh-test-ca",
       "-days", "2"},
      {"openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
       "-keyout", certs.key_file, "-out", dir + "/server.csr", "-subj", "/CN=kubernetes"},
      {"openssl", "x509", "-req", "-in", dir + "/server.csr", "-CA", certs.ca_file, "-CAkey",
       dir + "/ca.key", "-CAcreateserial", "-out", certs.cert_file, "-days", "2", "-extfile",
       dir + "/san.ext"},
  };
  for (const auto& argv : steps) {
    CommandResult r = runCommand(argv, dir + "/openssl.log", {}, 30s);
    if (!r.ok()) throw std::runtime_error("openssl failed: " + r.output);
  }
  return certs;
}

ReplayApiServer::ReplayApiServer(Handler handler, const TestCertificates* certs)
    : handler_(std::move(handler)), tls_(certs != nullptr), port_(freeLocalPort()) {
  if (tls_) {
    ssl_ctx_ = SSL_CTX_new(TLS_server_method());
    if (ssl_ctx_ == nullptr ||
        SSL_CTX_use_certificate_chain_file(ssl_ctx_, certs->cert_file.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ssl_ctx_, certs->key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      throw std::runtime_error("ReplayApiServer: cannot load the test certificate");
    }
  }
  server_ = std::make_unique<ThreadedServer>("", "127.0.0.1", port_, [this](int fd) { serve(fd); });
}

ReplayApiServer::~ReplayApiServer() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (auto& h : held_) h->drop = true;
  }
  cv_.notify_all();
  server_.reset();
  if (ssl_ctx_ != nullptr) SSL_CTX_free(ssl_ctx_);
}

std::string ReplayApiServer::url() const {
  return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_);
}

std::vector<ReplayApiServer::Request> ReplayApiServer::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

std::vector<ReplayApiServer::Request> ReplayApiServer::requestsFor(const std::string& path,
                                                                   bool watch) const {
  std::vector<Request> out;
  for (auto& r : requests()) {
    if (r.path == path && r.watch() == watch) out.push_back(r);
  }
  return out;
}

size_t ReplayApiServer::held(const std::string& path) const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& h : held_) n += h->path == path && !h->release && !h->drop ? 1 : 0;
  return n;
}

void ReplayApiServer::push(const std::string& path, const std::string& data) {
  {
    std::lock_guard lock(mu_);
    for (auto& h : held_) {
      if (h->path == path) h->pending.push_back(data);
    }
  }
  cv_.notify_all();
}

void ReplayApiServer::release(const std::string& path) {
  {
    std::lock_guard lock(mu_);
    for (auto& h : held_) h->release |= h->path == path;
  }
  cv_.notify_all();
}

void ReplayApiServer::drop(const std::string& path) {
  {
    std::lock_guard lock(mu_);
    for (auto& h : held_) h->drop |= h->path == path;
  }
  cv_.notify_all();
}

void ReplayApiServer::serve(int fd) {
  SSL* ssl = nullptr;
  if (tls_) {
    ssl = SSL_new(ssl_ctx_);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) != 1) {
      SSL_free(ssl);
      return;  // the client refused our certificate (the wrong-CA test), or went away
    }
  }
  Conn conn(fd, ssl);
  std::string head;
  char buf[4096];
  while (head.find("\r\n\r\n") == std::string::npos) {
    ssize_t n = conn.read(buf, sizeof buf);
    if (n <= 0 || head.size() > 64 * 1024) return;
    head.append(buf, static_cast<size_t>(n));
  }
  // Request line and the one header the tests look at; request bodies are never sent here.
  Request request;
  std::istringstream lines(head);
  std::string target;
  lines >> request.method >> target;
  size_t q = target.find('?');
  request.path = target.substr(0, q);
  if (q != std::string::npos) {
    std::istringstream query(target.substr(q + 1));
    for (std::string kv; std::getline(query, kv, '&');) {
      size_t eq = kv.find('=');
      request.params[percentDecode(kv.substr(0, eq))] =
          eq == std::string::npos ? "" : percentDecode(kv.substr(eq + 1));
    }
  }
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("Authorization: ", 0) == 0 || line.rfind("authorization: ", 0) == 0) {
      request.authorization = line.substr(15);
      if (!request.authorization.empty() && request.authorization.back() == '\r') {
        request.authorization.pop_back();
      }
    }
  }
  {
    std::lock_guard lock(mu_);
    requests_.push_back(request);
  }
  Reply reply = handler_(request);
  std::string response = "HTTP/1.1 " + std::to_string(reply.status) + " " + reasonOf(reply.status) +
                         "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                         "Connection: close\r\n\r\n";
  if (!conn.write(response)) return;
  for (const auto& data : reply.chunks) {
    if (!conn.write(chunk(data))) return;
  }
  if (reply.end == End::kHold) {
    auto held = std::make_shared<Held>();
    held->path = request.path;
    std::unique_lock lock(mu_);
    held_.push_back(held);
    for (;;) {
      cv_.wait(lock, [&] { return !held->pending.empty() || held->release || held->drop; });
      std::vector<std::string> pending;
      pending.swap(held->pending);
      bool release = held->release;
      bool drop = held->drop;
      lock.unlock();
      for (const auto& data : pending) conn.write(chunk(data));
      lock.lock();
      if (drop) {
        reply.end = End::kDrop;
        break;
      }
      if (release && held->pending.empty()) break;
    }
    std::erase(held_, held);
  }
  if (reply.end != End::kDrop) conn.write("0\r\n\r\n");
  // kDrop: close without the terminating chunk; the client must see a cut-off stream.
  shutdown(fd, SHUT_RDWR);
}

}  // namespace rdmesh::it
