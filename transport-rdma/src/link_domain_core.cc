#include "link_domain_core.h"

#include <fmt/format.h>

#include "rdmesh/transport/link_wire.h"

namespace rdmesh::transport {

static_assert(kMaxLinkControlBytes == wire::link::kMaxControlBytes);

uint32_t LinkDomainCore::addRegistration(std::span<std::byte> bytes) {
  std::lock_guard lock(mu_);
  uint32_t id = next_id_++;
  if (next_id_ == 0) next_id_ = 1;  // 2^32 registrations later; 0 is never a key
  registrations_.emplace(id, bytes);
  return id;
}

void LinkDomainCore::removeRegistration(uint32_t id) {
  std::lock_guard lock(mu_);
  registrations_.erase(id);
}

Result<std::byte*> LinkDomainCore::resolve(uint32_t key, uint64_t offset, uint64_t length) const {
  std::lock_guard lock(mu_);
  auto it = registrations_.find(key);
  if (it == registrations_.end()) {
    return protocolError(fmt::format("write to unknown registration {}", key));
  }
  const auto& bytes = it->second;
  if (offset > bytes.size() || length > bytes.size() - offset) {
    return protocolError(fmt::format("write of {} bytes at {} outside registration {} ({} bytes)",
                                     length, offset, key, bytes.size()));
  }
  return bytes.data() + offset;
}

std::string LinkDomainCore::asyncError(const ibv_qp* qp, const ibv_cq* cq, bool read_device) {
  if (!context_) return {};
  std::lock_guard lock(mu_);
  ibv_async_event ev{};
  while (read_device && ibv_get_async_event(context_.get(), &ev) == 0) {
    if (isFatalAsyncEvent(ev.event_type)) {
      std::string what =
          fmt::format("async event on {}: {}", device_name_, ibv_event_type_str(ev.event_type));
      switch (ev.event_type) {
        case IBV_EVENT_CQ_ERR:
          async_errors_.emplace(ev.element.cq, what);
          break;
        case IBV_EVENT_QP_FATAL:
        case IBV_EVENT_QP_REQ_ERR:
        case IBV_EVENT_QP_ACCESS_ERR:
          async_errors_.emplace(ev.element.qp, what);
          break;
        default:
          if (device_error_.empty()) device_error_ = what;
          break;
      }
    }
    ibv_ack_async_event(&ev);
  }
  if (!device_error_.empty()) return device_error_;
  for (const void* key : {static_cast<const void*>(qp), static_cast<const void*>(cq)}) {
    if (auto it = async_errors_.find(key); it != async_errors_.end()) return it->second;
  }
  return {};
}

void LinkDomainCore::forgetAsync(const ibv_qp* qp, const ibv_cq* cq) {
  std::lock_guard lock(mu_);
  async_errors_.erase(qp);
  async_errors_.erase(cq);
}

const LinkRegistration* ownRegistration(const LinkDomainCore& core,
                                        const RegisteredMemory& memory) {
  auto* reg = dynamic_cast<const LinkRegistration*>(&memory);
  return reg != nullptr && reg->core() == &core ? reg : nullptr;
}

Result<const LinkRegistration*> checkWrite(const LinkDomainCore& core, const RegisteredMemory& src,
                                           uint64_t src_offset, uint32_t len,
                                           const RemoteMemory& dst, uint64_t dst_offset,
                                           uint32_t imm) {
  const LinkRegistration* reg = ownRegistration(core, src);
  if (reg == nullptr) return invalidArgument("pair link: source memory is not of this domain");
  uint64_t size = reg->bytes().size();
  if (src_offset > size || len > size - src_offset) {
    return invalidArgument(fmt::format(
        "pair link: source [{}, +{}) outside its {}-byte registration", src_offset, len, size));
  }
  if (dst_offset > dst.bytes || len > dst.bytes - dst_offset) {
    return invalidArgument(
        fmt::format("pair link: target [{}, +{}) outside the peer's {}-byte registration",
                    dst_offset, len, dst.bytes));
  }
  if (len > wire::link::kMaxWriteBytes) {
    return invalidArgument(
        fmt::format("pair link: write of {} bytes (at most {})", len, wire::link::kMaxWriteBytes));
  }
  if (wire::link::isLinkImm(imm)) {
    return invalidArgument(
        fmt::format("pair link: immediate {:#x} uses the link's reserved type", imm));
  }
  return reg;
}

Status checkCookie(bool any_posted, uint64_t last_cookie, uint64_t cookie) {
  if (any_posted && cookie <= last_cookie) {
    return invalidArgument(
        fmt::format("pair link: cookie {} after {} (cookies must increase)", cookie, last_cookie));
  }
  return {};
}

Status checkControl(std::span<const std::byte> message) {
  if (message.empty() || message.size() > kMaxLinkControlBytes) {
    return invalidArgument(fmt::format("pair link: control message of {} bytes (1..{})",
                                       message.size(), kMaxLinkControlBytes));
  }
  return {};
}

}  // namespace rdmesh::transport
