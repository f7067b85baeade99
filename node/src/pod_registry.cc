#include "pod_registry.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace rdmesh::node {

using nlohmann::json;

json PodRegistry::toJson(const PodRecord& r) {
  const PodAddRequest& s = r.spec;
  return json{{"v", kNodeProtocolVersion},
              {"container_id", s.container_id},
              {"netns", s.netns},
              {"ips", s.ips},
              {"interface", s.interface},
              {"pod_name", s.pod_name},
              {"pod_namespace", s.pod_namespace},
              {"pod_uid", s.pod_uid},
              {"exclude_outbound_ports", s.exclude_outbound_ports},
              {"service_account", s.service_account},
              {"ports", s.ports},
              {"labels", s.labels},
              {"netns_cookie", r.netns_cookie},
              {"sidecar_exclude_outbound_ports", r.sidecar_excluded_ports}};
}

Result<PodRecord> PodRegistry::fromJson(const json& j) {
  // A state record is a pod_add request plus the cookie: one parser for both.
  Result<PodAddRequest> spec = parsePodAdd(j);
  if (!spec) return spec.status();
  auto cookie = j.find("netns_cookie");
  if (cookie == j.end() || !cookie->is_number_unsigned()) {
    return invalidArgument("field 'netns_cookie': missing or not an unsigned integer");
  }
  Result<std::vector<uint16_t>> sidecar_ports = parsePortField(j, "sidecar_exclude_outbound_ports");
  if (!sidecar_ports) return sidecar_ports.status();
  return PodRecord{std::move(*spec), cookie->get<uint64_t>(), std::move(*sidecar_ports)};
}

Status PodRegistry::load() {
  if (state_file_.empty()) return {};
  std::ifstream in(state_file_);
  if (!in) return {};  // first start
  std::stringstream text;
  text << in.rdbuf();
  json j = json::parse(text.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("pods") || !j["pods"].is_array()) {
    return invalidArgument(fmt::format("{}: not a pod state file", state_file_));
  }
  std::map<std::string, PodRecord> pods;
  for (size_t i = 0; i < j["pods"].size(); ++i) {
    Result<PodRecord> r = fromJson(j["pods"][i]);
    if (!r)
      return invalidArgument(fmt::format("{}: pods[{}]: {}", state_file_, i, r.status().message()));
    pods[r->spec.container_id] = std::move(*r);
  }
  pods_ = std::move(pods);
  return {};
}

const PodRecord* PodRegistry::find(const std::string& container_id) const {
  auto it = pods_.find(container_id);
  return it == pods_.end() ? nullptr : &it->second;
}

const PodRecord* PodRegistry::findByCookie(uint64_t cookie, const std::string& except_id) const {
  for (const auto& [id, r] : pods_) {
    if (r.netns_cookie == cookie && id != except_id) return &r;
  }
  return nullptr;
}

Status PodRegistry::put(PodRecord record) {
  std::map<std::string, PodRecord> next = pods_;
  std::string id = record.spec.container_id;
  next[id] = std::move(record);
  if (Status s = save(next); !s) return s;
  pods_ = std::move(next);
  if (on_change_) on_change_();
  return {};
}

Status PodRegistry::erase(const std::string& container_id) {
  if (pods_.count(container_id) == 0) return {};
  std::map<std::string, PodRecord> next = pods_;
  next.erase(container_id);
  if (Status s = save(next); !s) return s;
  pods_ = std::move(next);
  if (on_change_) on_change_();
  return {};
}

// Written to a temporary file, fsynced, then renamed: a crash leaves the old or the new file.
Status PodRegistry::save(const std::map<std::string, PodRecord>& pods) const {
  if (state_file_.empty()) return {};
  json j = json::object();
  j["pods"] = json::array();
  for (const auto& [id, r] : pods) j["pods"].push_back(toJson(r));
  std::string text = j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
  std::string tmp = state_file_ + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return unavailable(fmt::format("{}: {}", tmp, strerror(errno)));
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return unavailable(fmt::format("write {}: {}", tmp, strerror(err)));
    }
    off += static_cast<size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), state_file_.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return unavailable(fmt::format("rename {}: {}", state_file_, strerror(err)));
  }
  return {};
}

}  // namespace rdmesh::node
