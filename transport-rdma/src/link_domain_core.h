// What a LinkDomain shares with its registrations and links, and outlives none of them: the
// device context and protection domain (verbs), the table that resolves a tcp frame's key to one
// of our registrations, and the device's async events, which any link may drain for all.
#pragma once

#include <infiniband/verbs.h>

#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>

#include "rdmesh/transport/pair_link.h"
#include "verbs_device.h"

namespace rdmesh::transport {

class LinkDomainCore {
 public:
  LinkDomainCore() = default;
  LinkDomainCore(VerbsPtr<ibv_context> context, std::string device_name, VerbsPtr<ibv_pd> pd)
      : context_(std::move(context)), device_name_(std::move(device_name)), pd_(std::move(pd)) {}
  LinkDomainCore(const LinkDomainCore&) = delete;
  LinkDomainCore& operator=(const LinkDomainCore&) = delete;

  bool hasRdma() const { return pd_ != nullptr; }
  ibv_context* context() const { return context_.get(); }
  ibv_pd* pd() const { return pd_.get(); }
  const std::string& deviceName() const { return device_name_; }

  // Registration ids are never reused, so a stale key cannot reach newer memory.
  uint32_t addRegistration(std::span<std::byte> bytes);
  void removeRegistration(uint32_t id);
  // [offset, offset + length) of registration `key`, or a protocol error saying what is wrong.
  Result<std::byte*> resolve(uint32_t key, uint64_t offset, uint64_t length) const;

  // Reads the device's async events (with `read_device`) and files the fatal ones under the QP
  // or CQ they name (or the whole device); returns what was filed for `qp` / `cq`, empty when
  // nothing.
  std::string asyncError(const ibv_qp* qp, const ibv_cq* cq, bool read_device);
  void forgetAsync(const ibv_qp* qp, const ibv_cq* cq);

 private:
  // Destroyed in reverse: the PD before the context.
  VerbsPtr<ibv_context> context_;
  std::string device_name_;
  VerbsPtr<ibv_pd> pd_;

  mutable std::mutex mu_;  // registrations come and go on any thread
  std::unordered_map<uint32_t, std::span<std::byte>> registrations_;
  uint32_t next_id_ = 1;
  std::unordered_map<const void*, std::string> async_errors_;
  std::string device_error_;
};

// One registration: an MR on the domain's PD (verbs) and an entry in the key table (tcp links).
class LinkRegistration : public RegisteredMemory {
 public:
  LinkRegistration(std::shared_ptr<LinkDomainCore> core, std::span<std::byte> bytes,
                   VerbsPtr<ibv_mr> mr, bool on_demand)
      : core_(std::move(core)),
        bytes_(bytes),
        mr_(std::move(mr)),
        on_demand_(on_demand),
        id_(core_->addRegistration(bytes)) {}
  ~LinkRegistration() override { core_->removeRegistration(id_); }

  std::span<std::byte> bytes() const override { return bytes_; }
  uint64_t pinnedBytes() const override { return mr_ && !on_demand_ ? bytes_.size() : 0; }

  const LinkDomainCore* core() const { return core_.get(); }
  uint32_t id() const { return id_; }
  const ibv_mr* mr() const { return mr_.get(); }

 private:
  std::shared_ptr<LinkDomainCore> core_;  // first: the MR goes before the PD it is on
  std::span<std::byte> bytes_;
  VerbsPtr<ibv_mr> mr_;
  bool on_demand_;
  uint32_t id_;
};

// The registration behind `memory` if it belongs to `core`'s domain, else nullptr.
const LinkRegistration* ownRegistration(const LinkDomainCore& core, const RegisteredMemory& memory);

// The checks both link kinds make before posting a write: src is ours and in bounds, dst range
// within what the peer described, length and immediate allowed, cookies increasing.
Result<const LinkRegistration*> checkWrite(const LinkDomainCore& core, const RegisteredMemory& src,
                                           uint64_t src_offset, uint32_t len,
                                           const RemoteMemory& dst, uint64_t dst_offset,
                                           uint32_t imm);
Status checkCookie(bool any_posted, uint64_t last_cookie, uint64_t cookie);
Status checkControl(std::span<const std::byte> message);

}  // namespace rdmesh::transport
