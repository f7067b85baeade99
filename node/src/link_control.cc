#include "link_control.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <cstring>

namespace rdmesh::node {

namespace {

using linkwire::MessageType;

// IP text <-> (family, 16 bytes). "" <-> kFamilyNone.
bool packIp(const std::string& ip, uint8_t* family, uint8_t (&out)[16]) {
  std::memset(out, 0, sizeof(out));
  if (ip.empty()) {
    *family = linkwire::kFamilyNone;
    return true;
  }
  if (::inet_pton(AF_INET, ip.c_str(), out) == 1) {
    *family = linkwire::kFamilyV4;
    return true;
  }
  if (::inet_pton(AF_INET6, ip.c_str(), out) == 1) {
    *family = linkwire::kFamilyV6;
    return true;
  }
  return false;
}

Result<std::string> unpackIp(uint8_t family, const uint8_t (&in)[16], const char* field,
                             bool required) {
  char text[INET6_ADDRSTRLEN] = {};
  switch (family) {
    case linkwire::kFamilyNone:
      if (required) return protocolError(fmt::format("{}: missing", field));
      return std::string();
    case linkwire::kFamilyV4:
      ::inet_ntop(AF_INET, in, text, sizeof(text));
      return std::string(text);
    case linkwire::kFamilyV6:
      ::inet_ntop(AF_INET6, in, text, sizeof(text));
      return std::string(text);
    default:
      return protocolError(fmt::format("{}: unknown address family {}", field, family));
  }
}

linkwire::WireMemory packMemory(const SessionMemory& m) {
  linkwire::WireMemory w{};
  w.addr = m.region.addr;
  w.bytes = m.region.bytes;
  w.key = m.region.key;
  w.receive_offset = m.receive_offset;
  w.receive_bytes = m.receive_bytes;
  return w;
}

Result<SessionMemory> unpackMemory(const linkwire::WireMemory& w) {
  if (w.receive_offset > w.bytes || w.receive_bytes > w.bytes - w.receive_offset) {
    return protocolError(
        fmt::format("memory: receive area [{}, +{}) lies outside the {}-byte registration",
                    w.receive_offset, w.receive_bytes, w.bytes));
  }
  if (w.receive_bytes == 0) return protocolError("memory: empty receive area");
  SessionMemory m;
  m.region = {w.addr, w.key, w.bytes};
  m.receive_offset = w.receive_offset;
  m.receive_bytes = w.receive_bytes;
  return m;
}

Status checkSession(uint32_t id, const char* field, bool unknown_allowed) {
  if (id < wire::agent::kMaxLinkSessions) return {};
  if (unknown_allowed && id == linkwire::kUnknownSession) return {};
  return protocolError(fmt::format("{}: session id {} out of range", field, id));
}

template <typename Body>
void append(std::vector<std::byte>& out, const Body& body) {
  const auto* p = reinterpret_cast<const std::byte*>(&body);
  out.insert(out.end(), p, p + sizeof(Body));
}

// Reads the fixed body and checks that exactly `tail` bytes follow it.
template <typename Body>
Result<Body> readBody(std::span<const std::byte> rest, const char* what) {
  if (rest.size() < sizeof(Body)) {
    return protocolError(
        fmt::format("{}: {} bytes, the body needs {}", what, rest.size(), sizeof(Body)));
  }
  Body body;
  std::memcpy(&body, rest.data(), sizeof(Body));
  return body;
}

Status checkTail(std::span<const std::byte> rest, size_t body, size_t tail, const char* what) {
  if (rest.size() != body + tail) {
    return protocolError(
        fmt::format("{}: {} bytes, expected {} (body) + {}", what, rest.size(), body, tail));
  }
  return {};
}

}  // namespace

const char* toString(MessageType type) {
  switch (type) {
    case MessageType::kOpen:
      return "open";
    case MessageType::kAccepted:
      return "accepted";
    case MessageType::kRefused:
      return "refused";
    case MessageType::kClose:
      return "close";
    case MessageType::kCloseAck:
      return "close_ack";
  }
  return "?";
}

LinkMessage openMessage(uint32_t sender_session, std::string destination_ip, std::string source_ip,
                        std::vector<std::byte> hello, SessionMemory memory) {
  LinkMessage m;
  m.type = MessageType::kOpen;
  m.session = sender_session;
  m.destination_ip = std::move(destination_ip);
  m.source_ip = std::move(source_ip);
  m.hello = std::move(hello);
  m.memory = memory;
  return m;
}

LinkMessage acceptedMessage(uint32_t opener_session, uint32_t acceptor_session,
                            std::vector<std::byte> hello, SessionMemory memory) {
  LinkMessage m;
  m.type = MessageType::kAccepted;
  m.session = opener_session;
  m.peer_session = acceptor_session;
  m.hello = std::move(hello);
  m.memory = memory;
  return m;
}

LinkMessage refusedMessage(uint32_t opener_session, std::string reason) {
  LinkMessage m;
  m.type = MessageType::kRefused;
  m.session = opener_session;
  if (reason.size() > linkwire::kMaxReasonBytes) reason.resize(linkwire::kMaxReasonBytes);
  m.reason = std::move(reason);
  return m;
}

LinkMessage closeMessage(uint32_t receiver_session, uint32_t sender_session) {
  LinkMessage m;
  m.type = MessageType::kClose;
  m.session = receiver_session;
  m.peer_session = sender_session;
  return m;
}

LinkMessage closeAckMessage(uint32_t closer_session) {
  LinkMessage m;
  m.type = MessageType::kCloseAck;
  m.session = closer_session;
  return m;
}

Result<std::vector<std::byte>> encodeLinkMessage(const LinkMessage& m) {
  std::vector<std::byte> out;
  linkwire::Header header{linkwire::kMagic, linkwire::kVersion, static_cast<uint8_t>(m.type), 0};
  append(out, header);
  if (m.hello.size() > linkwire::kMaxHelloBytes) {
    return invalidArgument(
        fmt::format("hello: {} bytes, more than {}", m.hello.size(), linkwire::kMaxHelloBytes));
  }
  switch (m.type) {
    case MessageType::kOpen: {
      linkwire::OpenBody body{};
      body.sender_session = m.session;
      body.hello_bytes = static_cast<uint16_t>(m.hello.size());
      if (!packIp(m.destination_ip, &body.destination_family, body.destination_ip) ||
          m.destination_ip.empty()) {
        return invalidArgument(fmt::format("destination ip '{}' is not an IP", m.destination_ip));
      }
      if (!packIp(m.source_ip, &body.source_family, body.source_ip)) {
        return invalidArgument(fmt::format("source ip '{}' is not an IP", m.source_ip));
      }
      body.memory = packMemory(m.memory);
      append(out, body);
      out.insert(out.end(), m.hello.begin(), m.hello.end());
      break;
    }
    case MessageType::kAccepted: {
      linkwire::AcceptedBody body{};
      body.opener_session = m.session;
      body.acceptor_session = m.peer_session;
      body.memory = packMemory(m.memory);
      body.hello_bytes = static_cast<uint16_t>(m.hello.size());
      append(out, body);
      out.insert(out.end(), m.hello.begin(), m.hello.end());
      break;
    }
    case MessageType::kRefused: {
      if (m.reason.size() > linkwire::kMaxReasonBytes) {
        return invalidArgument("reason: longer than the limit");
      }
      linkwire::RefusedBody body{};
      body.opener_session = m.session;
      body.reason_bytes = static_cast<uint16_t>(m.reason.size());
      append(out, body);
      const auto* p = reinterpret_cast<const std::byte*>(m.reason.data());
      out.insert(out.end(), p, p + m.reason.size());
      break;
    }
    case MessageType::kClose:
      append(out, linkwire::CloseBody{m.session, m.peer_session});
      break;
    case MessageType::kCloseAck:
      append(out, linkwire::CloseAckBody{m.session, 0});
      break;
    default:
      return invalidArgument("unknown message type");
  }
  return out;
}

Result<LinkMessage> parseLinkMessage(std::span<const std::byte> bytes) {
  if (bytes.size() < sizeof(linkwire::Header)) {
    return protocolError(
        fmt::format("link control message of {} bytes: shorter than its header", bytes.size()));
  }
  linkwire::Header header;
  std::memcpy(&header, bytes.data(), sizeof(header));
  if (header.magic != linkwire::kMagic) {
    return protocolError(fmt::format("link control message: bad magic {:#x}", header.magic));
  }
  if (header.version != linkwire::kVersion) {
    return protocolError(fmt::format("link control message: version {} (this agent speaks {})",
                                     header.version, linkwire::kVersion));
  }
  if (header.type == 0 || header.type > linkwire::kMaxMessageType) {
    return protocolError(fmt::format("link control message: unknown type {}", header.type));
  }
  LinkMessage m;
  m.type = static_cast<MessageType>(header.type);
  std::span<const std::byte> rest = bytes.subspan(sizeof(header));
  const char* what = toString(m.type);
  switch (m.type) {
    case MessageType::kOpen: {
      Result<linkwire::OpenBody> body = readBody<linkwire::OpenBody>(rest, what);
      if (!body) return body.status();
      if (body->hello_bytes > linkwire::kMaxHelloBytes)
        return protocolError("open: hello too long");
      if (Status s = checkTail(rest, sizeof(linkwire::OpenBody), body->hello_bytes, what); !s) {
        return s;
      }
      if (Status s = checkSession(body->sender_session, "open: sender session", false); !s) {
        return s;
      }
      Result<std::string> dst =
          unpackIp(body->destination_family, body->destination_ip, "open: destination ip", true);
      if (!dst) return dst.status();
      Result<std::string> src =
          unpackIp(body->source_family, body->source_ip, "open: source ip", false);
      if (!src) return src.status();
      Result<SessionMemory> memory = unpackMemory(body->memory);
      if (!memory) return memory.status();
      m.session = body->sender_session;
      m.destination_ip = std::move(*dst);
      m.source_ip = std::move(*src);
      m.memory = *memory;
      auto hello = rest.subspan(sizeof(linkwire::OpenBody));
      m.hello.assign(hello.begin(), hello.end());
      return m;
    }
    case MessageType::kAccepted: {
      Result<linkwire::AcceptedBody> body = readBody<linkwire::AcceptedBody>(rest, what);
      if (!body) return body.status();
      if (body->hello_bytes > linkwire::kMaxHelloBytes) {
        return protocolError("accepted: hello too long");
      }
      if (Status s = checkTail(rest, sizeof(linkwire::AcceptedBody), body->hello_bytes, what); !s) {
        return s;
      }
      if (Status s = checkSession(body->opener_session, "accepted: opener session", false); !s) {
        return s;
      }
      if (Status s = checkSession(body->acceptor_session, "accepted: acceptor session", false);
          !s) {
        return s;
      }
      Result<SessionMemory> memory = unpackMemory(body->memory);
      if (!memory) return memory.status();
      m.session = body->opener_session;
      m.peer_session = body->acceptor_session;
      m.memory = *memory;
      auto hello = rest.subspan(sizeof(linkwire::AcceptedBody));
      m.hello.assign(hello.begin(), hello.end());
      return m;
    }
    case MessageType::kRefused: {
      Result<linkwire::RefusedBody> body = readBody<linkwire::RefusedBody>(rest, what);
      if (!body) return body.status();
      if (body->reason_bytes > linkwire::kMaxReasonBytes) {
        return protocolError("refused: reason too long");
      }
      if (Status s = checkTail(rest, sizeof(linkwire::RefusedBody), body->reason_bytes, what); !s) {
        return s;
      }
      if (Status s = checkSession(body->opener_session, "refused: opener session", false); !s) {
        return s;
      }
      m.session = body->opener_session;
      auto reason = rest.subspan(sizeof(linkwire::RefusedBody));
      m.reason.assign(reinterpret_cast<const char*>(reason.data()), reason.size());
      return m;
    }
    case MessageType::kClose: {
      Result<linkwire::CloseBody> body = readBody<linkwire::CloseBody>(rest, what);
      if (!body) return body.status();
      if (Status s = checkTail(rest, sizeof(linkwire::CloseBody), 0, what); !s) return s;
      if (Status s = checkSession(body->receiver_session, "close: receiver session", true); !s) {
        return s;
      }
      if (Status s = checkSession(body->sender_session, "close: sender session", false); !s) {
        return s;
      }
      m.session = body->receiver_session;
      m.peer_session = body->sender_session;
      return m;
    }
    case MessageType::kCloseAck: {
      Result<linkwire::CloseAckBody> body = readBody<linkwire::CloseAckBody>(rest, what);
      if (!body) return body.status();
      if (Status s = checkTail(rest, sizeof(linkwire::CloseAckBody), 0, what); !s) return s;
      if (Status s = checkSession(body->receiver_session, "close_ack: session", false); !s) {
        return s;
      }
      m.session = body->receiver_session;
      return m;
    }
  }
  return protocolError("link control message: unknown type");
}

}  // namespace rdmesh::node
