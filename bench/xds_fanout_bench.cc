// rdmesh-xds fan-out benchmark: N simulated sidecars (one HTTP/2 connection each, nghttp2
// client, all in this process on one event loop) subscribe to Clusters and Listeners; then one
// service's endpoints change (a pod registered / removed over the registration API) and the
// time until every client has received the new version and ACKed it is measured, together with
// the server's CPU for the push and its RSS per idle client. Not a timed test: numbers depend on
// the machine and on this process competing with the server for CPU (see bench/README.md), so
// this process's own CPU per round is printed next to the server's, with the load average.
//
//   xds_fanout_bench [--clients 1000] [--members 1000] [--rounds 5] [--mode sotw|delta]
//                    [--xds PATH]
// --members: how many of the workloads are endpoints of the 10 services (push size: each
// sidecar's Cluster response lists them all).
#include <event2/event.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "h2_test_client.h"

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
using rdmesh::InetAddress;
using rdmesh::xds_test::H2TestClient;
using rdmesh::xds_test::runUntil;
using namespace std::chrono_literals;

constexpr int kServices = 10;
constexpr const char* kToken = "bench-token-0123456789abcdef";
constexpr const char* kClusterUrl = "type.rdmesh.io/rdmesh.v1.Cluster";
constexpr const char* kListenerUrl = "type.rdmesh.io/rdmesh.v1.Listener";

std::string workloadJson(int index, int service) {
  std::string pod = "w-" + std::to_string(index);
  return json({{"name", "bench/" + pod},
               {"namespace", "bench"},
               {"pod", pod},
               {"ip",
                {"10.80." + std::to_string(index / 250) + "." + std::to_string(index % 250 + 1)}},
               {"node", "node-" + std::to_string(index % 20)},
               {"identity", "spiffe://cluster.local/ns/bench/sa/app"},
               {"service_account", "app"},
               {"ports", {8080}},
               {"labels",
                {{"app", service < 0 ? std::string("client") : "svc-" + std::to_string(service)}}}})
      .dump();
}

// Registry: 20 nodes, `clients` workloads in namespace bench spread over 10 services.
std::string registryYaml(int clients, int members) {
  std::ostringstream out;
  out << "nodes:\n";
  for (int n = 0; n < 20; ++n) {
    out << "  - {name: node-" << n << ", addresses: [10.79.0." << n + 1
        << "], fabric: tcp, session_address: \"10.79.0." << n + 1 << ":15008\"}\n";
  }
  out << "workloads:\n";
  // Only the first `members` workloads are endpoints of a service (the others are clients only).
  for (int i = 0; i < clients; ++i) {
    out << "  - " << workloadJson(i, i < members ? i % kServices : -1) << "\n";
  }
  out << "services:\n";
  for (int s = 0; s < kServices; ++s) {
    out << "  - {name: bench/svc-" << s << ", cluster_ips: [10.96.1." << s + 1
        << "], ports: [{port: 80, target_port: 8080}], selector: {app: svc-" << s << "}}\n";
  }
  return out.str();
}

struct ProcStat {
  double cpu_seconds = 0;
  long rss_kb = 0;
};

ProcStat procStat(pid_t pid) {
  ProcStat stat;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) stat.rss_kb = std::stol(line.substr(6));
  }
  std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  stat.cpu_seconds = static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  return stat;
}

// What rdmesh's own xDS client (xds-api/client/src/h2_stream.cc) opens its receive window to:
// a push is not held back by WINDOW_UPDATE round trips.
constexpr uint32_t kClientReceiveWindow = 1u << 24;
// The simulated clients keep only the head of each response line (version, type, nonce).
constexpr size_t kLineHeadBytes = 512;

struct Sidecar {
  std::unique_ptr<H2TestClient> client;
  std::string cluster_version;      // last received
  std::string round_start_version;  // cluster version when the current round began
  bool changed_this_round = true;
  int cluster_responses = 0;
  int listener_responses = 0;
  Clock::time_point last_ack;
};

// The simulated clients only read what an ACK needs (a real client parses on its own CPU; here
// 1,000 of them share one core with the server): the string value of `key` in the line.
std::string field(std::string_view line, std::string_view key) {
  std::string pattern = "\"" + std::string(key) + "\":\"";
  size_t start = line.find(pattern);
  if (start == std::string_view::npos) return {};
  start += pattern.size();
  return std::string(line.substr(start, line.find('"', start) - start));
}

double cpuSecondsOfThisProcess() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

std::string loadAverage() {
  std::ifstream file("/proc/loadavg");
  std::string one, five, fifteen;
  file >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t index = static_cast<size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(index, values.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  int clients = 1000;
  int rounds = 5;
  bool delta = false;
  int members = 1000;  // workloads that are service endpoints (sets the size of each push)
  std::string xds_binary = RDMESH_XDS_BIN;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--clients") clients = std::stoi(argv[i + 1]);
    if (flag == "--rounds") rounds = std::stoi(argv[i + 1]);
    if (flag == "--xds") xds_binary = argv[i + 1];
    if (flag == "--members") members = std::stoi(argv[i + 1]);
    if (flag == "--mode") delta = std::string(argv[i + 1]) == "delta";
  }
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  signal(SIGPIPE, SIG_IGN);

  char dir_template[] = "/tmp/xds-bench-XXXXXX";
  std::string dir = mkdtemp(dir_template);
  std::ofstream(dir + "/registry.yaml") << registryYaml(clients, std::min(members, clients));
  std::ofstream(dir + "/token") << kToken << "\n";
  std::string log = dir + "/xds.log";

  pid_t server = fork();
  if (server == 0) {
    freopen(log.c_str(), "w", stdout);
    freopen(log.c_str(), "a", stderr);
    execl(
        xds_binary.c_str(), xds_binary.c_str(), "--listen-ip", "127.0.0.1", "--plaintext-port", "0",
        "--registry-file", (dir + "/registry.yaml").c_str(), "--registration-token-file",
        (dir + "/token").c_str(), "--log-level",
        std::getenv("XDS_BENCH_LOG_LEVEL") != nullptr ? std::getenv("XDS_BENCH_LOG_LEVEL") : "info",
        "--push-delay-ms", "20", nullptr);
    _exit(127);
  }
  std::unique_ptr<event_base, decltype(&event_base_free)> base(event_base_new(), event_base_free);
  // The server binds port 0 and logs "listening on 127.0.0.1:<port>".
  uint16_t port = 0;
  const std::regex listening(R"(listening on 127\.0\.0\.1:(\d+))");
  for (int attempt = 0; attempt < 500 && port == 0; ++attempt) {
    std::this_thread::sleep_for(10ms);
    std::ifstream file(log);
    std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    std::smatch match;
    if (std::regex_search(text, match, listening))
      port = static_cast<uint16_t>(std::stoi(match[1]));
  }
  if (port == 0) {
    std::fprintf(stderr, "rdmesh-xds did not start; log: %s\n", log.c_str());
    kill(server, SIGKILL);
    return 1;
  }
  const InetAddress address = *InetAddress::fromIp("127.0.0.1", port);
  // Wait until ready.
  std::this_thread::sleep_for(100ms);
  const ProcStat baseline = procStat(server);

  std::vector<Sidecar> sidecars(static_cast<size_t>(clients));
  int acked_initial = 0;
  int changed_clients = 0;  // this round: clients that received a new cluster version
  const auto connect_started = Clock::now();
  for (int i = 0; i < clients; ++i) {
    Sidecar& sidecar = sidecars[static_cast<size_t>(i)];
    sidecar.client = std::make_unique<H2TestClient>(
        base.get(), address,
        H2TestClient::Request{.method = "POST",
                              .path = delta ? "/rdmesh.xds.v1.Discovery/DeltaStream"
                                            : "/rdmesh.xds.v1.Discovery/Stream",
                              .headers = {{"content-type", "application/x-ndjson"}},
                              .receive_window = kClientReceiveWindow,
                              .max_line_bytes = kLineHeadBytes},
        [&sidecar, &acked_initial, &changed_clients, delta](std::string_view line) {
          const bool cluster = line.find(kClusterUrl) != std::string_view::npos;
          const std::string version = field(line, delta ? "system_version_info" : "version_info");
          const std::string nonce = field(line, "nonce");
          if (nonce.empty()) {
            std::fprintf(stderr, "bad response: %.200s\n", std::string(line).c_str());
            std::abort();
          }
          (cluster ? sidecar.cluster_responses : sidecar.listener_responses)++;
          if (cluster) sidecar.cluster_version = version;
          json ack = {{"type_url", cluster ? kClusterUrl : kListenerUrl},
                      {"response_nonce", nonce}};
          if (!delta) ack["version_info"] = version;
          sidecar.client->write(ack.dump() + "\n");
          sidecar.last_ack = Clock::now();
          if (sidecar.cluster_responses == 1 && cluster) ++acked_initial;
          if (cluster && !sidecar.changed_this_round && version != sidecar.round_start_version) {
            sidecar.changed_this_round = true;
            ++changed_clients;
          }
        });
    sidecar.client->start();
    std::string pod = "w-" + std::to_string(i);
    json node = {{"id", pod + ".bench"},
                 {"role", "sidecar"},
                 {"node_name", "node-" + std::to_string(i % 20)},
                 {"workload", "bench/" + pod},
                 {"namespace", "bench"}};
    sidecar.client->write(json({{"type_url", kClusterUrl}, {"node", node}}).dump() + "\n" +
                          json({{"type_url", kListenerUrl}}).dump() + "\n");
    // Let connections establish in batches (the listen backlog is large, but be polite).
    if (i % 100 == 99)
      runUntil(
          base.get(), [] { return false; }, 5ms);
  }
  if (!runUntil(
          base.get(), [&] { return acked_initial == clients; }, 60s)) {
    std::fprintf(stderr, "only %d of %d clients got their clusters\n", acked_initial, clients);
    kill(server, SIGKILL);
    return 1;
  }
  const double connect_seconds =
      std::chrono::duration<double>(Clock::now() - connect_started).count();
  // Settle: ACKs processed, buffers idle, and the server's 5 s heap trim after pushes done.
  runUntil(
      base.get(), [] { return false; }, 6s);
  const ProcStat idle = procStat(server);

  std::printf(
      "clients: %d (one HTTP/2 connection each, %s), services: %d with %d endpoints in "
      "all, workloads: %d\n",
      clients, delta ? "delta" : "state of the world", kServices, std::min(members, clients),
      clients);
  std::printf("load average at start: %s\n", loadAverage().c_str());
  std::printf("subscribe+first push+ACK for all: %.3f s\n", connect_seconds);
  std::printf(
      "server RSS: %ld KiB before clients, %ld KiB with %d idle clients: %.1f KiB per client\n",
      baseline.rss_kb, idle.rss_kb, clients,
      static_cast<double>(idle.rss_kb - baseline.rss_kb) / clients);

  std::vector<double> all_acks;
  double server_cpu_total = 0, bench_cpu_total = 0;
  std::printf("round  min_ms  p50_ms  p99_ms  max_ms  server_cpu_ms  bench_cpu_ms\n");
  for (int round = 0; round < rounds; ++round) {
    changed_clients = 0;
    for (Sidecar& sidecar : sidecars) {
      sidecar.round_start_version = sidecar.cluster_version;
      sidecar.changed_this_round = false;
    }
    // Even rounds add a pod to svc-0, odd rounds remove it: svc-0's endpoints change each time.
    const std::string pod_path = "/v1/workloads/bench/extra-0";
    const bool add = round % 2 == 0;
    const ProcStat cpu_before = procStat(server);
    const double bench_cpu_before = cpuSecondsOfThisProcess();
    const auto changed_at = Clock::now();
    H2TestClient put(base.get(), address,
                     {.method = add ? "PUT" : "DELETE",
                      .path = pod_path,
                      .headers = {{"authorization", std::string("Bearer ") + kToken}}});
    put.start();
    if (add) {
      std::string body = workloadJson(clients + 1, 0);
      body = std::regex_replace(body, std::regex("w-" + std::to_string(clients + 1)), "extra-0");
      put.write(body);
    }
    put.endRequest();
    bool all = runUntil(
        base.get(), [&] { return changed_clients == clients; }, 30s);
    runUntil(
        base.get(), [] { return false; }, 200ms);  // server reads the last ACKs
    const ProcStat cpu_after = procStat(server);
    const double bench_cpu = cpuSecondsOfThisProcess() - bench_cpu_before;
    if (!all || put.responseStatus() != 200) {
      std::fprintf(stderr, "round %d: not every client got the change (PUT status %d)\n", round,
                   put.responseStatus());
      kill(server, SIGKILL);
      return 1;
    }
    std::vector<double> acks;
    for (const Sidecar& sidecar : sidecars) {
      acks.push_back(
          std::chrono::duration<double, std::milli>(sidecar.last_ack - changed_at).count());
    }
    all_acks.insert(all_acks.end(), acks.begin(), acks.end());
    const double server_cpu = cpu_after.cpu_seconds - cpu_before.cpu_seconds;
    server_cpu_total += server_cpu;
    bench_cpu_total += bench_cpu;
    std::printf("%5d  %6.1f  %6.1f  %6.1f  %6.1f  %13.1f  %12.1f\n", round, percentile(acks, 0.0),
                percentile(acks, 0.5), percentile(acks, 0.99), percentile(acks, 1.0),
                server_cpu * 1000, bench_cpu * 1000);
  }
  std::printf("all rounds: change -> ACK p50 %.1f ms, p99 %.1f ms (push delay 20 ms included)\n",
              percentile(all_acks, 0.5), percentile(all_acks, 0.99));
  if (rounds > 0) {
    std::printf("per change: server CPU %.1f ms, benchmark (the %d clients) CPU %.1f ms\n",
                server_cpu_total * 1000 / rounds, clients, bench_cpu_total * 1000 / rounds);
  }
  std::printf("load average at end: %s\n", loadAverage().c_str());
  kill(server, SIGTERM);
  int status = 0;
  waitpid(server, &status, 0);
  if (std::getenv("XDS_BENCH_KEEP") == nullptr) std::filesystem::remove_all(dir);
  return 0;
}
