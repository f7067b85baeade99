#include "rdmesh/transport/control_codec.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <cstring>

namespace rdmesh::transport {

using wire::ControlType;

void ControlEncoder::append(ControlType type, uint32_t stream, const void* body, size_t body_bytes,
                            std::string_view tail) {
  wire::ControlRecordHeader h{static_cast<uint8_t>(type), 0,
                              static_cast<uint16_t>(body_bytes + tail.size()), stream};
  size_t at = buf_.size();
  buf_.resize(at + sizeof(h) + body_bytes + tail.size());
  std::memcpy(buf_.data() + at, &h, sizeof(h));
  if (body_bytes) std::memcpy(buf_.data() + at + sizeof(h), body, body_bytes);
  if (!tail.empty()) {
    std::memcpy(buf_.data() + at + sizeof(h) + body_bytes, tail.data(), tail.size());
  }
}

void ControlEncoder::open(uint32_t opener_stream, const InetAddress& destination,
                          std::string_view identity) {
  wire::OpenBody body{};
  body.family = static_cast<uint8_t>(destination.isV4() ? wire::AddressFamily::kIpv4
                                                        : wire::AddressFamily::kIpv6);
  identity = identity.substr(0, wire::kMaxIdentityBytes);
  body.identity_bytes = static_cast<uint8_t>(identity.size());
  body.port = destination.port();
  std::string_view raw = destination.rawIp();
  std::memcpy(body.address, raw.data(), raw.size());
  append(ControlType::kOpen, opener_stream, &body, sizeof(body), identity);
}

void ControlEncoder::openAck(uint32_t opener_stream, uint32_t acceptor_stream) {
  wire::OpenAckBody body{acceptor_stream};
  append(ControlType::kOpenAck, opener_stream, &body, sizeof(body));
}

void ControlEncoder::fin(uint32_t stream) {
  append(ControlType::kFin, stream, nullptr, 0);
}

void ControlEncoder::reset(uint32_t stream, wire::ResetReason reason) {
  wire::ResetBody body{static_cast<uint32_t>(reason)};
  append(ControlType::kReset, stream, &body, sizeof(body));
}

void ControlEncoder::credit(uint32_t stream, uint64_t consumed_total) {
  wire::CreditBody body{consumed_total};
  append(ControlType::kCredit, stream, &body, sizeof(body));
}

void ControlEncoder::sessionCredit(uint64_t completions_total, uint64_t control_bytes_total) {
  wire::SessionCreditBody body{completions_total, control_bytes_total};
  append(ControlType::kSessionCredit, 0, &body, sizeof(body));
}

void ControlEncoder::ping(uint64_t nonce) {
  wire::PingBody body{nonce};
  append(ControlType::kPing, 0, &body, sizeof(body));
}

void ControlEncoder::pong(uint64_t nonce) {
  wire::PingBody body{nonce};
  append(ControlType::kPong, 0, &body, sizeof(body));
}

void ControlEncoder::goAway() {
  append(ControlType::kGoAway, 0, nullptr, 0);
}

void ControlEncoder::idleClose(wire::IdleCloseStep step) {
  wire::IdleCloseBody body{static_cast<uint32_t>(step)};
  append(ControlType::kIdleClose, 0, &body, sizeof(body));
}

namespace {

size_t fixedBodyBytes(ControlType type) {
  switch (type) {
    case ControlType::kOpen:
      return sizeof(wire::OpenBody);
    case ControlType::kOpenAck:
      return sizeof(wire::OpenAckBody);
    case ControlType::kFin:
      return 0;
    case ControlType::kReset:
      return sizeof(wire::ResetBody);
    case ControlType::kCredit:
      return sizeof(wire::CreditBody);
    case ControlType::kSessionCredit:
      return sizeof(wire::SessionCreditBody);
    case ControlType::kPing:
    case ControlType::kPong:
      return sizeof(wire::PingBody);
    case ControlType::kGoAway:
      return 0;
    case ControlType::kIdleClose:
      return sizeof(wire::IdleCloseBody);
  }
  return 0;
}

template <typename T>
T load(const std::byte* p) {
  T v{};
  std::memcpy(&v, p, sizeof(T));
  return v;
}

Status decodeOpen(const std::byte* body, size_t body_bytes, ControlRecord& rec) {
  auto open = load<wire::OpenBody>(body);
  if (sizeof(open) + open.identity_bytes != body_bytes) {
    return protocolError(fmt::format("open: body of {} bytes does not match identity of {}",
                                     body_bytes, open.identity_bytes));
  }
  sockaddr_storage ss{};
  if (open.family == static_cast<uint8_t>(wire::AddressFamily::kIpv4)) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(open.port);
    std::memcpy(&sin->sin_addr, open.address, 4);
    rec.destination = InetAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), sizeof(*sin));
  } else if (open.family == static_cast<uint8_t>(wire::AddressFamily::kIpv6)) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(open.port);
    std::memcpy(&sin6->sin6_addr, open.address, 16);
    rec.destination = InetAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), sizeof(*sin6));
  } else {
    return protocolError(fmt::format("open: unknown address family {}", open.family));
  }
  rec.identity = {reinterpret_cast<const char*>(body) + sizeof(open), open.identity_bytes};
  return {};
}

}  // namespace

Status parseControlBatch(std::span<const std::byte> batch, std::vector<ControlRecord>& out) {
  size_t first = out.size();
  size_t pos = 0;
  while (pos < batch.size()) {
    if (batch.size() - pos < sizeof(wire::ControlRecordHeader)) {
      out.resize(first);
      return protocolError(
          fmt::format("control batch: {} trailing bytes at offset {}", batch.size() - pos, pos));
    }
    auto h = load<wire::ControlRecordHeader>(batch.data() + pos);
    pos += sizeof(h);
    if (h.type == 0 || h.type > wire::kMaxControlType) {
      out.resize(first);
      return protocolError(fmt::format("control batch: unknown record type {}", h.type));
    }
    if (h.body_bytes > batch.size() - pos) {
      out.resize(first);
      return protocolError(
          fmt::format("control batch: record body of {} bytes overruns batch", h.body_bytes));
    }
    auto type = static_cast<ControlType>(h.type);
    size_t fixed = fixedBodyBytes(type);
    bool size_ok = type == ControlType::kOpen ? h.body_bytes >= fixed : h.body_bytes == fixed;
    if (!size_ok) {
      out.resize(first);
      return protocolError(fmt::format("control batch: {} record with body of {} bytes",
                                       toString(type), h.body_bytes));
    }
    ControlRecord rec;
    rec.type = type;
    rec.stream = h.stream;
    const std::byte* body = batch.data() + pos;
    switch (type) {
      case ControlType::kOpen:
        if (Status s = decodeOpen(body, h.body_bytes, rec); !s) {
          out.resize(first);
          return s;
        }
        break;
      case ControlType::kOpenAck:
        rec.acceptor_stream = load<wire::OpenAckBody>(body).acceptor_stream;
        break;
      case ControlType::kReset:
        rec.reason = static_cast<wire::ResetReason>(load<wire::ResetBody>(body).reason);
        break;
      case ControlType::kCredit:
        rec.value = load<wire::CreditBody>(body).consumed_total;
        break;
      case ControlType::kSessionCredit: {
        auto sc = load<wire::SessionCreditBody>(body);
        rec.value = sc.completions_total;
        rec.value2 = sc.control_bytes_total;
        break;
      }
      case ControlType::kPing:
      case ControlType::kPong:
        rec.value = load<wire::PingBody>(body).nonce;
        break;
      case ControlType::kIdleClose: {
        uint32_t step = load<wire::IdleCloseBody>(body).step;
        if (step == 0 || step > wire::kMaxIdleCloseStep) {
          out.resize(first);
          return protocolError(fmt::format("control batch: IDLE_CLOSE with step {}", step));
        }
        rec.value = step;
        break;
      }
      case ControlType::kFin:
      case ControlType::kGoAway:
        break;
    }
    pos += h.body_bytes;
    out.push_back(rec);
  }
  return {};
}

const char* toString(ControlType type) {
  switch (type) {
    case ControlType::kOpen:
      return "OPEN";
    case ControlType::kOpenAck:
      return "OPEN_ACK";
    case ControlType::kFin:
      return "FIN";
    case ControlType::kReset:
      return "RESET";
    case ControlType::kCredit:
      return "CREDIT";
    case ControlType::kSessionCredit:
      return "SESSION_CREDIT";
    case ControlType::kPing:
      return "PING";
    case ControlType::kPong:
      return "PONG";
    case ControlType::kGoAway:
      return "GOAWAY";
    case ControlType::kIdleClose:
      return "IDLE_CLOSE";
  }
  return "UNKNOWN";
}

const char* toString(wire::ResetReason reason) {
  switch (reason) {
    case wire::ResetReason::kUnknown:
      return "unknown";
    case wire::ResetReason::kLocalReset:
      return "peer_app_reset";
    case wire::ResetReason::kUpstreamRefused:
      return "upstream_refused";
    case wire::ResetReason::kNoRoute:
      return "no_route";
    case wire::ResetReason::kStreamsExhausted:
      return "streams_exhausted";
    case wire::ResetReason::kProtocolError:
      return "protocol_error";
    case wire::ResetReason::kSessionLost:
      return "session_lost";
    case wire::ResetReason::kDraining:
      return "draining";
  }
  return "unknown";
}

}  // namespace rdmesh::transport
