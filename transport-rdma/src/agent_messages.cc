#include "rdmesh/transport/agent_messages.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "rdmesh/common/address.h"

namespace rdmesh::transport {

namespace {

using Json = nlohmann::json;
constexpr int kContractVersion = 1;
constexpr size_t kMaxHelloHex = 2 * (sizeof(wire::HelloHeader) + wire::kMaxNodeNameBytes);

std::string request(Json body) {
  body["v"] = kContractVersion;
  return body.dump();
}

Json helloHex(const Hello& hello) {
  return toHex(encodeHello(hello));
}

Result<std::string> stringField(const Json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end()) return protocolError(fmt::format("agent: field '{}' is missing", name));
  if (!it->is_string()) {
    return protocolError(fmt::format("agent: field '{}' is not a string", name));
  }
  return it->get<std::string>();
}

Result<Hello> helloField(const Json& j, const char* name) {
  auto hex = stringField(j, name);
  if (!hex) return hex.status();
  if (hex->size() > kMaxHelloHex) {
    return protocolError(fmt::format("agent: field '{}' is {} characters long", name, hex->size()));
  }
  auto bytes = fromHex(*hex);
  if (!bytes) {
    return protocolError(fmt::format("agent: field '{}': {}", name, bytes.status().message()));
  }
  auto hello = parseHello(*bytes);
  if (!hello) {
    return protocolError(fmt::format("agent: field '{}': {}", name, hello.status().message()));
  }
  return hello;
}

Result<std::string> ipField(const Json& j, const char* name) {
  auto text = stringField(j, name);
  if (!text) return text.status();
  auto ip = canonicalIp(*text);
  if (!ip) return protocolError(fmt::format("agent: field '{}': {}", name, ip.status().message()));
  return ip;
}

Result<AgentReply> parseReply(const Json& j) {
  AgentReply reply;
  const Json& ok = j["ok"];
  if (!ok.is_boolean()) return protocolError("agent: field 'ok' is not a boolean");
  reply.ok = ok.get<bool>();
  if (!reply.ok) {
    auto error = j.find("error");
    reply.error = error != j.end() && error->is_string() && !error->get<std::string>().empty()
                      ? error->get<std::string>()
                      : "the agent gave no reason";
    return reply;
  }
  if (j.contains("mode")) {
    auto mode = stringField(j, "mode");
    if (!mode) return mode.status();
    if (*mode == "agent") {
      reply.mode = SessionMode::kAgent;
    } else if (*mode == "shm") {
      reply.mode = SessionMode::kShm;
    } else {
      return protocolError(fmt::format("agent: field 'mode': unknown mode '{}'", *mode));
    }
  }
  if (j.contains("peer_hello")) {
    auto hello = helloField(j, "peer_hello");
    if (!hello) return hello.status();
    reply.has_peer_hello = true;
    reply.peer_hello = std::move(hello.value());
  }
  return reply;
}

Result<AgentOffer> parseOffer(const Json& j) {
  AgentOffer offer;
  auto id = j.find("offer_id");
  if (id == j.end() || !id->is_number_unsigned()) {
    return protocolError("agent: field 'offer_id' is missing or not an unsigned integer");
  }
  offer.offer_id = id->get<uint64_t>();
  auto node = stringField(j, "peer_node");
  if (!node) return node.status();
  if (!isValidNodeName(*node)) {
    return protocolError(fmt::format("agent: field 'peer_node': '{}' is not a node name", *node));
  }
  offer.peer_node = std::move(node.value());
  auto peer_ip = ipField(j, "peer_ip");
  if (!peer_ip) return peer_ip.status();
  offer.peer_ip = std::move(peer_ip.value());
  auto destination = ipField(j, "destination_ip");
  if (!destination) return destination.status();
  offer.destination_ip = std::move(destination.value());
  auto hello = helloField(j, "peer_hello");
  if (!hello) return hello.status();
  offer.peer_hello = std::move(hello.value());
  return offer;
}

}  // namespace

std::string encodeSessionListen(const std::vector<std::string>& pod_ips,
                                const std::vector<uint16_t>& exclude_outbound_ports) {
  nlohmann::json body = {{"op", "session_listen"}, {"pod_ips", pod_ips}};
  if (!exclude_outbound_ports.empty()) body["exclude_outbound_ports"] = exclude_outbound_ports;
  return request(std::move(body));
}

std::string encodeSessionOpen(std::string_view destination_ip, std::string_view node,
                              const Hello& hello) {
  return request({{"op", "session_open"},
                  {"destination_ip", destination_ip},
                  {"node", node},
                  {"hello", helloHex(hello)}});
}

std::string encodeSessionAccept(uint64_t offer_id, const Hello& hello) {
  return request({{"op", "session_accept"}, {"offer_id", offer_id}, {"hello", helloHex(hello)}});
}

std::string encodeSessionRefuse(uint64_t offer_id, std::string_view reason) {
  return request({{"op", "session_refuse"}, {"offer_id", offer_id}, {"reason", reason}});
}

Result<AgentMessage> parseAgentMessage(std::string_view datagram) {
  Json j = Json::parse(datagram, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return protocolError("agent: message is not a JSON object");
  }
  AgentMessage message;
  auto event = j.find("event");
  if (event == j.end()) {
    if (!j.contains("ok")) return protocolError("agent: message has neither 'ok' nor 'event'");
    auto reply = parseReply(j);
    if (!reply) return reply.status();
    message.reply = std::move(reply.value());
    return message;
  }
  if (!event->is_string()) return protocolError("agent: field 'event' is not a string");
  message.event = event->get<std::string>();
  if (message.event != "offer") {
    message.kind = AgentMessage::Kind::kUnknownEvent;
    return message;
  }
  auto offer = parseOffer(j);
  if (!offer) return offer.status();
  message.kind = AgentMessage::Kind::kOffer;
  message.offer = std::move(offer.value());
  return message;
}

std::string toHex(std::span<const std::byte> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (std::byte b : bytes) {
    auto v = std::to_integer<unsigned>(b);
    out.push_back(kDigits[v >> 4]);
    out.push_back(kDigits[v & 15]);
  }
  return out;
}

Result<std::vector<std::byte>> fromHex(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) return protocolError("hex string of odd length");
  std::vector<std::byte> out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = nibble(hex[2 * i]);
    int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return protocolError("not lowercase hex");
    out[i] = static_cast<std::byte>(hi << 4 | lo);
  }
  return out;
}

Result<std::string> canonicalIp(std::string_view ip) {
  auto address = InetAddress::fromIp(ip, 0);
  if (!address) {
    return invalidArgument(fmt::format("'{}' is not an IPv4 or IPv6 address", ip));
  }
  return address->ipString();
}

}  // namespace rdmesh::transport
