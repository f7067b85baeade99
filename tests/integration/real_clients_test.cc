// Real servers and clients through the mesh: redis-server in node B with redis-cli and
// redis-benchmark in node A; nginx in node B with curl and wrk in node A.
#include <filesystem>
#include <iostream>
#include <regex>

#include "fixture.h"

namespace rdmesh::it {
namespace {

constexpr uint16_t kRedisPort = 6379, kRedisOut = 16379;
constexpr uint16_t kHttpPort = 8080, kHttpOut = 18080;

class RealClientsTest : public BackendTest {
 protected:
  // Two nodes; A's outbound `out` -> cluster `name` -> node-b:`port`, B delivers to
  // 127.0.0.1:`port`.
  void startMesh(const std::string& name, uint16_t port, uint16_t out) {
    mesh_ = std::make_unique<Mesh>(backend(), std::vector<std::string>{"node-a", "node-b"});
    SidecarSpec sa = mesh_->baseSpec("node-a");
    sa.outbound(name + "-out", "127.0.0.1:" + std::to_string(out), name)
        .cluster(name, {{"node-b", mesh_->ip("node-b") + ":" + std::to_string(port)}});
    SidecarSpec sb = mesh_->baseSpec("node-b");
    sb.inbound(name + "-in", port, "127.0.0.1:" + std::to_string(port));
    mesh_->add(sa);
    mesh_->add(sb);
    mesh_->startAll();
  }
  static std::string missing(std::initializer_list<const char*> tools) {
    std::string m;
    for (const char* t : tools) {
      if (findExecutable(t).empty()) m += std::string(m.empty() ? "" : ", ") + t;
    }
    return m;
  }
  std::unique_ptr<Mesh> mesh_;
};

TEST_P(RealClientsTest, RedisCliAndBenchmark) {
  if (auto m = missing({"redis-server", "redis-cli", "redis-benchmark"}); !m.empty()) {
    GTEST_SKIP() << "not installed: " << m << " (scripts/install-deps.sh installs them)";
  }
  startMesh("redis", kRedisPort, kRedisOut);
  const std::string a = mesh_->ns("node-a"), b = mesh_->ns("node-b");
  Process redis("redis-server",
                {"redis-server", "--port", std::to_string(kRedisPort), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no",
                 "--dir", mesh_->dir().path(), "--logfile", ""},
                mesh_->logPath("redis-server"), b);
  ASSERT_TRUE(waitForTcp(b, "127.0.0.1", kRedisPort, 20s)) << "redis-server did not start";

  auto cli = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {"redis-cli", "-h", "127.0.0.1", "-p",
                                     std::to_string(kRedisOut)};
    argv.insert(argv.end(), args.begin(), args.end());
    return runCommand(argv, mesh_->logPath("redis-cli"), a, 20s);
  };
  CommandResult set = cli({"SET", "rdmesh:key", "hello-through-the-mesh"});
  ASSERT_TRUE(set.ok()) << set.describe();
  EXPECT_NE(set.output.find("OK"), std::string::npos) << set.output;
  CommandResult get = cli({"GET", "rdmesh:key"});
  ASSERT_TRUE(get.ok()) << get.describe();
  EXPECT_NE(get.output.find("hello-through-the-mesh"), std::string::npos) << get.output;
  // A value bigger than one ring/frame: SETRANGE past 300 KB, then read its length back.
  CommandResult big = cli({"SETRANGE", "rdmesh:big", "300000", "tail"});
  ASSERT_TRUE(big.ok()) << big.describe();
  CommandResult len = cli({"STRLEN", "rdmesh:big"});
  EXPECT_NE(len.output.find("300004"), std::string::npos) << len.output;
  CommandResult getbig = cli({"GETRANGE", "rdmesh:big", "299990", "-1"});
  EXPECT_NE(getbig.output.find("tail"), std::string::npos) << getbig.output;

  CommandResult bench =
      runCommand({"redis-benchmark", "-h", "127.0.0.1", "-p", std::to_string(kRedisOut), "-t",
                  "set,get", "-n", "20000", "-c", "50", "-q"},
                 mesh_->logPath("redis-benchmark"), a, 180s);
  ASSERT_TRUE(bench.ok()) << bench.describe();
  // -q prints "SET: <rps> requests per second, p50=..." once finished (progress lines use \r).
  std::regex done(R"((SET|GET): ([0-9.]+) requests per second)");
  int finished = 0;
  for (std::sregex_iterator it(bench.output.begin(), bench.output.end(), done), end; it != end;
       ++it) {
    ++finished;
    std::cout << "[metric] " << backend() << " redis-benchmark " << (*it)[1] << " " << (*it)[2]
              << " rps (sanitizer build)\n";
  }
  EXPECT_EQ(finished, 2) << bench.output;
  std::string lower = bench.output;
  for (auto& ch : lower) ch = static_cast<char>(tolower(ch));
  EXPECT_EQ(lower.find("error"), std::string::npos) << bench.output;
  EXPECT_GE(mesh_->sidecar("node-a").statInt("rdmesh.listener.redis-out.downstream_cx_total"), 50);
}

TEST_P(RealClientsTest, NginxCurlAndWrk) {
  if (auto m = missing({"nginx", "curl", "wrk"}); !m.empty()) {
    GTEST_SKIP() << "not installed: " << m << " (scripts/install-deps.sh installs them)";
  }
  startMesh("http", kHttpPort, kHttpOut);
  const std::string a = mesh_->ns("node-a"), b = mesh_->ns("node-b");
  const std::string dir = mesh_->dir().path();
  const std::string www = dir + "/www";
  std::filesystem::create_directories(www);
  std::filesystem::permissions(www, std::filesystem::perms(0755));
  std::string body = PatternGen(0x1).bytes(1024);
  writeFile(www + "/1k.bin", body);
  std::filesystem::permissions(www + "/1k.bin", std::filesystem::perms(0644));
  std::string conf = dir + "/nginx.conf";
  writeFile(conf, "daemon off;\nmaster_process off;\nworker_processes 1;\npid " + dir +
                      "/nginx.pid;\n"
                      "error_log " +
                      dir +
                      "/nginx.err warn;\n"
                      "events { worker_connections 1024; }\n"
                      "http {\n  access_log off;\n  default_type application/octet-stream;\n"
                      "  keepalive_requests 1000000;\n"
                      "  client_body_temp_path " +
                      dir + "/ngx-body;\n  proxy_temp_path " + dir +
                      "/ngx-proxy;\n"
                      "  fastcgi_temp_path " +
                      dir + "/ngx-fcgi;\n  uwsgi_temp_path " + dir +
                      "/ngx-uwsgi;\n"
                      "  scgi_temp_path " +
                      dir +
                      "/ngx-scgi;\n"
                      "  server { listen 127.0.0.1:" +
                      std::to_string(kHttpPort) + "; root " + www + "; }\n}\n");
  Process nginx("nginx", {"nginx", "-p", dir + "/", "-e", dir + "/nginx.err", "-c", conf},
                mesh_->logPath("nginx"), b);
  ASSERT_TRUE(waitForTcp(b, "127.0.0.1", kHttpPort, 20s))
      << "nginx did not start: " << readFile(dir + "/nginx.err");

  std::string url = "http://127.0.0.1:" + std::to_string(kHttpOut) + "/1k.bin";
  std::string got_path = dir + "/curl-got.bin";
  CommandResult curl =
      runCommand({"curl", "-sS", "--max-time", "10", "-o", got_path, "-w", "%{http_code}", url},
                 mesh_->logPath("curl"), a, 30s);
  ASSERT_TRUE(curl.ok()) << curl.describe();
  EXPECT_NE(curl.output.find("200"), std::string::npos) << curl.output;
  EXPECT_TRUE(readFile(got_path) == body) << "curl got a different body";

  CommandResult wrk = runCommand({"wrk", "-t1", "-c16", "-d2s", "--timeout", "5s", url},
                                 mesh_->logPath("wrk"), a, 60s);
  ASSERT_TRUE(wrk.ok()) << wrk.describe();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(wrk.output, m, std::regex(R"(([0-9]+) requests in)")))
      << wrk.output;
  EXPECT_GT(std::stoll(m[1]), 0) << wrk.output;
  EXPECT_EQ(wrk.output.find("Socket errors"), std::string::npos) << wrk.output;
  EXPECT_EQ(wrk.output.find("Non-2xx"), std::string::npos) << wrk.output;
  std::smatch rps;
  if (std::regex_search(wrk.output, rps, std::regex(R"(Requests/sec:\s+([0-9.]+))"))) {
    std::cout << "[metric] " << backend() << " wrk " << rps[1] << " req/s (sanitizer build)\n";
  }
}

RDMESH_INSTANTIATE_BACKENDS(RealClientsTest);

}  // namespace
}  // namespace rdmesh::it
