// A stand-in for the Kubernetes API server that answers from recorded responses
// (tests/integration/fixtures/k8s), as the test scripts them: plain HTTP or HTTPS, chunked
// bodies (a list in one piece, a watch as one event per chunk), a stream ended cleanly, cut off
// mid-stream, or held open for events the test pushes later. Every request is recorded.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "harness.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace rdmesh::it {

// Reads tests/integration/fixtures/k8s/<name>.
std::string k8sFixture(const std::string& name);
// The lines of an NDJSON fixture, each with its "\n" (one watch event per chunk).
std::vector<std::string> k8sFixtureLines(const std::string& name);

// A throwaway CA and a server certificate for 127.0.0.1 (openssl CLI), in `dir`.
struct TestCertificates {
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
};
TestCertificates makeTestCertificates(const std::string& dir);

class ReplayApiServer {
 public:
  struct Request {
    std::string method;
    std::string path;                           // without the query
    std::map<std::string, std::string> params;  // query parameters, decoded
    std::string authorization;
    bool watch() const { return params.count("watch") != 0; }
    std::string param(const std::string& name) const {
      auto it = params.find(name);
      return it == params.end() ? "" : it->second;
    }
  };
  enum class End { kComplete, kDrop, kHold };
  struct Reply {
    int status = 200;
    std::vector<std::string> chunks;  // body, one HTTP chunk each
    End end = End::kComplete;         // kHold: open until release() / drop(), pushes appended
  };
  using Handler = std::function<Reply(const Request&)>;

  // tls: serve HTTPS with `certs` (cert_file/key_file).
  explicit ReplayApiServer(Handler handler, const TestCertificates* certs = nullptr);
  ~ReplayApiServer();
  ReplayApiServer(const ReplayApiServer&) = delete;
  ReplayApiServer& operator=(const ReplayApiServer&) = delete;

  std::string url() const;
  std::vector<Request> requests() const;
  std::vector<Request> requestsFor(const std::string& path, bool watch) const;
  // Held streams on `path`: how many are open; send a chunk to each; end them.
  size_t held(const std::string& path) const;
  void push(const std::string& path, const std::string& chunk);
  void release(const std::string& path);  // clean end (terminating chunk)
  void drop(const std::string& path);     // connection cut off

 private:
  struct Held;
  void serve(int fd);

  Handler handler_;
  bool tls_ = false;
  SSL_CTX* ssl_ctx_ = nullptr;
  uint16_t port_ = 0;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Request> requests_;
  std::vector<std::shared_ptr<Held>> held_;
  bool stopping_ = false;
  std::unique_ptr<ThreadedServer> server_;
};

}  // namespace rdmesh::it
