// rdmesh-fake-sidecar: the sidecar's half of mesh mode for the node agent's integration tests,
// as a process of its own (so that killing it is a real sidecar death). One line per event on
// stdout, which the test reads from the log:
//   rdmesh-fake-sidecar listen SOCKET IP NODE      session_listen IP, accept the first offer,
//       print "LISTENING", "ACCEPTED mode=M", "ARRIVAL imm=I len=L data=TEXT" per arrival (the
//       bytes at offset 0 of the receive area), "CLOSED closed_flag=F" when the session ends.
//   rdmesh-fake-sidecar open SOCKET IP NODE TEXT   session_open to IP on NODE, write TEXT at
//       offset 0 of the peer's receive area, print "OPENED mode=M", "SENT", then
//       "HANGUP closed_flag=F" when the agent ends the session.
#include <poll.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "fake_sidecar.h"
#include "rdmesh/common/hex.h"

using namespace std::chrono_literals;
using rdmesh::testing::FakeRegion;
using rdmesh::testing::NodeSocketClient;

namespace {

void say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

int fail(const std::string& why) {
  say("ERROR " + why);
  return 1;
}

bool hungUp(NodeSocketClient& c) {
  pollfd pfd{c.fd(), POLLIN | POLLRDHUP, 0};
  return ::poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLRDHUP)) != 0;
}

int listenMode(const std::string& socket, const std::string& ip, const std::string& node) {
  auto listener = NodeSocketClient::connect(socket);
  if (!listener) return fail(listener.status().message());
  auto listening = listener->request({{"op", "session_listen"}, {"pod_ips", {ip}}});
  if (!listening || (*listening)["ok"] != true) {
    return fail(listening ? listening->dump() : listening.status().message());
  }
  say("LISTENING");
  auto offer = listener->receive(nullptr, 60s);
  if (!offer) return fail(offer.status().message());
  auto hello = rdmesh::testing::smallHello(node);
  auto region = FakeRegion::create(hello);
  if (!region) return fail(region.status().message());
  auto session = NodeSocketClient::connect(socket);
  if (!session) return fail(session.status().message());
  auto accepted =
      session->request({{"op", "session_accept"},
                        {"offer_id", (*offer)["offer_id"]},
                        {"hello", rdmesh::toHex(rdmesh::transport::encodeHello(hello))}},
                       (*region)->fds());
  if (!accepted || (*accepted)["ok"] != true) {
    return fail(accepted ? accepted->dump() : accepted.status().message());
  }
  say("ACCEPTED mode=" + (*accepted)["mode"].get<std::string>());
  for (;;) {
    if (auto a = (*region)->nextArrival(100ms)) {
      std::string data(reinterpret_cast<const char*>((*region)->receiveArea().data()), a->byte_len);
      say("ARRIVAL imm=" + std::to_string(a->imm) + " len=" + std::to_string(a->byte_len) +
          " data=" + data);
      continue;
    }
    if (hungUp(*session)) {
      say("CLOSED closed_flag=" + std::to_string((*region)->header().closed.load()));
      return 0;
    }
  }
}

int openMode(const std::string& socket, const std::string& ip, const std::string& node,
             const std::string& text) {
  auto session = NodeSocketClient::connect(socket);
  if (!session) return fail(session.status().message());
  auto hello = rdmesh::testing::smallHello("sidecar");
  auto region = FakeRegion::create(hello);
  if (!region) return fail(region.status().message());
  auto reply = session->request({{"op", "session_open"},
                                 {"destination_ip", ip},
                                 {"node", node},
                                 {"hello", rdmesh::toHex(rdmesh::transport::encodeHello(hello))}},
                                (*region)->fds(), nullptr, 30s);
  if (!reply || (*reply)["ok"] != true)
    return fail(reply ? reply->dump() : reply.status().message());
  say("OPENED mode=" + (*reply)["mode"].get<std::string>());
  std::vector<std::byte> bytes(text.size());
  std::memcpy(bytes.data(), text.data(), text.size());
  if (auto s = (*region)->submit(0, 0, bytes); !s) return fail(s.message());
  if (!(*region)->waitCompleted(10s)) return fail("the write did not complete");
  say("SENT");
  while (!session->hungUp(1s)) {
  }
  say("HANGUP closed_flag=" + std::to_string((*region)->header().closed.load()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "listen" && argc == 5) return listenMode(argv[2], argv[3], argv[4]);
  if (mode == "open" && argc == 6) return openMode(argv[2], argv[3], argv[4], argv[5]);
  std::fprintf(stderr,
               "usage: rdmesh-fake-sidecar listen SOCKET IP NODE | open SOCKET IP NODE TEXT\n");
  return 2;
}
