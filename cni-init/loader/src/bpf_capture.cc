#include "rdmesh/capture/bpf_capture.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <filesystem>
#include <span>
#include <vector>

#include "capture.skel.h"
#include "capture_abi.h"

namespace rdmesh::capture {

static_assert(sizeof(rdmesh_port_key) == 16);
static_assert(sizeof(rdmesh_orig_dst) == 32);
static_assert(sizeof(rdmesh_dst_slot) == 40);
static_assert((RDMESH_DST_SLOTS & (RDMESH_DST_SLOTS - 1)) == 0, "a cookie's low bits pick a slot");

namespace {

namespace fs = std::filesystem;

constexpr const char* kBpffsRoot = "/sys/fs/bpf";
// Slots of the rdmesh_counters map (enum rdmesh_counter in capture.bpf.c).
constexpr uint32_t kCounterSlots = 6;

std::string errnoText(int err) {
  return strerror(err > 0 ? err : -err);
}

int libbpfLog(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  std::array<char, 1024> line{};
  int n = vsnprintf(line.data(), line.size(), format, args);
  std::string_view text(line.data(), n > 0 ? std::min<size_t>(n, line.size() - 1) : 0);
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (level == LIBBPF_WARN) {
    spdlog::warn("libbpf: {}", text);
  } else {
    spdlog::debug("libbpf: {}", text);
  }
  return 0;
}

bool isFs(const std::string& path, int64_t magic) {
  struct statfs st {};
  return ::statfs(path.c_str(), &st) == 0 && static_cast<int64_t>(st.f_type) == magic;
}

// The pin directory must live on a bpffs; mount one at /sys/fs/bpf if it is missing there.
Status ensurePinDir(const std::string& pin_dir) {
  fs::path parent = fs::path(pin_dir).parent_path();
  if (!isFs(parent.string(), BPF_FS_MAGIC)) {
    if (parent != kBpffsRoot) {
      return invalidArgument(
          fmt::format("bpf pin dir '{}': '{}' is not a bpffs mount", pin_dir, parent.string()));
    }
    ::mkdir(kBpffsRoot, 0700);
    if (::mount("bpf", kBpffsRoot, "bpf", 0, "mode=0700") != 0) {
      return unavailable(fmt::format("mount bpffs at {}: {}", kBpffsRoot, errnoText(errno)));
    }
    spdlog::info("mounted bpffs at {}", kBpffsRoot);
  }
  if (::mkdir(pin_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return unavailable(fmt::format("mkdir {}: {}", pin_dir, errnoText(errno)));
  }
  return {};
}

Result<uint64_t> cgroupId(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return invalidArgument(fmt::format("cgroup '{}': {}", path, errnoText(errno)));
  }
  if (!isFs(path, CGROUP2_SUPER_MAGIC)) {
    return invalidArgument(fmt::format("cgroup '{}': not a cgroup v2 directory", path));
  }
  return static_cast<uint64_t>(st.st_ino);  // a cgroup v2 id is its directory's inode number
}

// Cgroup a pinned link is attached to, or 0 if it is no longer attached.
uint64_t linkCgroup(int link_fd) {
  bpf_link_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(link_fd, &info, &len) != 0) return 0;
  return info.cgroup.cgroup_id;
}

std::vector<std::pair<std::string, bpf_program*>> programs(rdmesh_capture_bpf* skel) {
  return {{"connect4", skel->progs.rdmesh_connect4},
          {"connect6", skel->progs.rdmesh_connect6},
          {"getsockname4", skel->progs.rdmesh_getsockname4},
          {"getsockname6", skel->progs.rdmesh_getsockname6},
          {"getpeername4", skel->progs.rdmesh_getpeername4},
          {"getpeername6", skel->progs.rdmesh_getpeername6}};
}

const std::array<const char*, 4> kMapNames = {"rdmesh_pods", "rdmesh_excl", "rdmesh_dst_slots",
                                              "rdmesh_counters"};
const std::array<const char*, 6> kLinkNames = {"connect4",     "connect6",     "getsockname4",
                                               "getsockname6", "getpeername4", "getpeername6"};
// Links and maps of earlier versions that this one no longer makes: detached and removed at
// install (so an upgraded node stops running them) and at uninstall.
const std::array<const char*, 3> kObsoleteLinks = {"sockops", "getsockopt", "sock_release"};
const std::array<const char*, 3> kObsoleteMaps = {"rdmesh_dst_sk", "rdmesh_pending_connect",
                                                  "rdmesh_dst_conn"};

std::string linkPin(const std::string& dir, const std::string& name) {
  return dir + "/link_" + name;
}

// Detaches a pinned link now, even if an old agent still holds it open, and removes the pin.
Status detachPinnedLink(const std::string& pin) {
  int fd = bpf_obj_get(pin.c_str());
  if (fd >= 0) {
    bpf_link_detach(fd);
    ::close(fd);
  }
  if (::unlink(pin.c_str()) != 0 && errno != ENOENT) {
    return unavailable(fmt::format("unpin {}: {}", pin, errnoText(errno)));
  }
  return {};
}

Status removeObsoletePins(const std::string& dir) {
  for (const char* name : kObsoleteLinks) {
    if (Status s = detachPinnedLink(linkPin(dir, name)); !s) return s;
  }
  for (const char* name : kObsoleteMaps) {
    std::string pin = dir + "/" + name;
    if (::unlink(pin.c_str()) != 0 && errno != ENOENT) {
      return unavailable(fmt::format("unpin {}: {}", pin, errnoText(errno)));
    }
  }
  return {};
}

// Keys of a hash map whose value (or key) matches `pred`; collected first, deleted after, so
// deleting does not disturb the iteration.
template <typename Key, typename Value, typename Pred>
std::vector<Key> keysWhere(int map_fd, Pred pred) {
  std::vector<Key> keys;
  Key key{};
  Key next{};
  Value value{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(map_fd, prev, &next) == 0) {
    if (bpf_map_lookup_elem(map_fd, &next, &value) == 0 && pred(next, value)) keys.push_back(next);
    key = next;
    prev = &key;
  }
  return keys;
}

class BpfInterceptionMaps final : public InterceptionMaps {
 public:
  BpfInterceptionMaps(rdmesh_capture_bpf* skel, std::vector<bpf_link*> links,
                      std::span<rdmesh_dst_slot> slots)
      : skel_(skel), links_(std::move(links)), slots_(slots) {}
  ~BpfInterceptionMaps() override {
    // Closing our fds leaves the pinned links attached and the pinned maps alive.
    ::munmap(slots_.data(), slots_.size_bytes());
    for (bpf_link* l : links_) bpf_link__destroy(l);
    rdmesh_capture_bpf__destroy(skel_);
  }

  Status addPod(const PodCapture& pod) override {
    std::vector<rdmesh_port_key> added;
    auto undo = [&] {
      for (const rdmesh_port_key& k : added) bpf_map_delete_elem(fd(skel_->maps.rdmesh_excl), &k);
    };
    for (uint16_t port : pod.excluded_ports) {
      rdmesh_port_key key = portKey(pod.netns_cookie, port);
      uint8_t one = 1;
      if (bpf_map_update_elem(fd(skel_->maps.rdmesh_excl), &key, &one, BPF_ANY) != 0) {
        int err = errno;
        undo();
        return unavailable(fmt::format("excluded port {}: map update: {}", port, errnoText(err)));
      }
      added.push_back(key);
    }
    // Membership last: capture starts only once the pod's exclusions are in place.
    rdmesh_pod_value value{};
    if (bpf_map_update_elem(fd(skel_->maps.rdmesh_pods), &pod.netns_cookie, &value, BPF_ANY) != 0) {
      int err = errno;
      undo();
      return unavailable(fmt::format("pod membership: map update: {}", errnoText(err)));
    }
    return {};
  }

  Status removePod(const PodCapture& pod) override {
    uint64_t netns = pod.netns_cookie;
    // Membership first: no new captures while the rest goes.
    bpf_map_delete_elem(fd(skel_->maps.rdmesh_pods), &netns);
    int excl = fd(skel_->maps.rdmesh_excl);
    for (const auto& k : keysWhere<rdmesh_port_key, uint8_t>(
             excl, [&](const rdmesh_port_key&k, uint8_t) { return k.netns_cookie == netns; })) {
      bpf_map_delete_elem(excl, &k);
    }
    for (rdmesh_dst_slot& slot : slots_) {
      __u64 cookie = ownerOf(slot);
      if (cookie == 0 || slot.dst.netns_cookie != netns) continue;
      // Only if no connect has taken the slot meanwhile (another pod's socket, same low bits).
      __atomic_compare_exchange_n(&slot.socket_cookie, &cookie, 0, false, __ATOMIC_RELAXED,
                                  __ATOMIC_RELAXED);
    }
    return {};
  }

  Status checkPod(const PodCapture& pod) override {
    rdmesh_pod_value value{};
    if (bpf_map_lookup_elem(fd(skel_->maps.rdmesh_pods), &pod.netns_cookie, &value) != 0) {
      return {StatusCode::kNotFound,
              fmt::format("netns cookie {} is not in the membership map", pod.netns_cookie)};
    }
    for (uint16_t port : pod.excluded_ports) {
      rdmesh_port_key key = portKey(pod.netns_cookie, port);
      uint8_t one = 0;
      if (bpf_map_lookup_elem(fd(skel_->maps.rdmesh_excl), &key, &one) != 0) {
        return {StatusCode::kNotFound,
                fmt::format("excluded port {} is not in the excluded-ports map", port)};
      }
    }
    return {};
  }

  size_t connectionRecords(uint64_t netns) override {
    return std::ranges::count_if(slots_, [&](const rdmesh_dst_slot& slot) {
      return ownerOf(slot) != 0 && slot.dst.netns_cookie == netns;
    });
  }

  CaptureCounters counters() override {
    int cpus = libbpf_num_possible_cpus();
    std::array<uint64_t, kCounterSlots> sums{};
    std::vector<uint64_t> per_cpu(cpus > 0 ? static_cast<size_t>(cpus) : 1);
    for (uint32_t slot = 0; slot < kCounterSlots; ++slot) {
      if (bpf_map_lookup_elem(fd(skel_->maps.rdmesh_counters), &slot, per_cpu.data()) != 0) {
        continue;
      }
      for (uint64_t v : per_cpu) sums[slot] += v;
    }
    auto records = std::ranges::count_if(
        slots_, [](const rdmesh_dst_slot& slot) { return ownerOf(slot) != 0; });
    return {sums[0], sums[1], sums[2], sums[3], sums[4], sums[5], static_cast<uint64_t>(records)};
  }

 private:
  static int fd(bpf_map* map) { return bpf_map__fd(map); }
  // The cookie of the socket whose record a slot holds (0: empty); the programs write it.
  static __u64 ownerOf(const rdmesh_dst_slot& slot) {
    return __atomic_load_n(&slot.socket_cookie, __ATOMIC_RELAXED);
  }
  static rdmesh_port_key portKey(uint64_t netns, uint16_t port) {
    rdmesh_port_key key{};
    key.netns_cookie = netns;
    key.port = port;
    return key;
  }

  rdmesh_capture_bpf* skel_;
  std::vector<bpf_link*> links_;
  std::span<rdmesh_dst_slot> slots_;  // rdmesh_dst_slots, mapped
};

// The record slots, mapped into our memory (scanned for pod_del and the record count).
Result<std::span<rdmesh_dst_slot>> mapSlots(bpf_map* map) {
  size_t bytes = sizeof(rdmesh_dst_slot) * RDMESH_DST_SLOTS;
  void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(map), 0);
  if (mem == MAP_FAILED) {
    return unavailable(fmt::format("mmap rdmesh_dst_slots: {}", errnoText(errno)));
  }
  return std::span<rdmesh_dst_slot>(static_cast<rdmesh_dst_slot*>(mem), RDMESH_DST_SLOTS);
}

// Attaches `prog` at the cgroup through the pinned link if there is one (swapping the program in
// atomically), else through a new link that is then pinned.
Result<bpf_link*> attachPinned(bpf_program* prog, const std::string& pin, int cgroup_fd,
                               uint64_t cgroup_id) {
  if (::access(pin.c_str(), F_OK) == 0) {
    bpf_link* link = bpf_link__open(pin.c_str());
    if (link != nullptr && linkCgroup(bpf_link__fd(link)) == cgroup_id) {
      if (bpf_link__update_program(link, prog) == 0) return link;
      spdlog::warn("bpf: cannot update pinned link {}: {}; attaching anew", pin, errnoText(errno));
    } else {
      spdlog::info("bpf: pinned link {} is attached elsewhere; replacing it", pin);
    }
    if (link != nullptr) {
      bpf_link_detach(bpf_link__fd(link));
      bpf_link__destroy(link);
    }
    ::unlink(pin.c_str());
  }
  bpf_link* link = bpf_program__attach_cgroup(prog, cgroup_fd);
  if (link == nullptr) {
    return unavailable(
        fmt::format("attach {} at cgroup: {}", bpf_program__name(prog), errnoText(errno)));
  }
  if (int rc = bpf_link__pin(link, pin.c_str()); rc != 0) {
    bpf_link__destroy(link);
    return unavailable(fmt::format("pin {}: {}", pin, errnoText(rc)));
  }
  return link;
}

}  // namespace

Result<std::string> cgroupV2Root() {
  for (const char* candidate : {"/sys/fs/cgroup/unified", "/sys/fs/cgroup"}) {
    if (isFs(candidate, CGROUP2_SUPER_MAGIC)) return std::string(candidate);
  }
  return unavailable("no cgroup v2 mount at /sys/fs/cgroup/unified or /sys/fs/cgroup");
}

Result<std::unique_ptr<InterceptionMaps>> installBpfCapture(const BpfCaptureOptions& options) {
  libbpf_set_print(libbpfLog);
  std::string cgroup = options.cgroup_path;
  if (cgroup.empty()) {
    Result<std::string> root = cgroupV2Root();
    if (!root) return root.status();
    cgroup = *root;
  }
  Result<uint64_t> cgroup_id = cgroupId(cgroup);
  if (!cgroup_id) return cgroup_id.status();
  if (Status s = ensurePinDir(options.pin_dir); !s) return s;
  if (Status s = removeObsoletePins(options.pin_dir); !s) return s;

  rdmesh_capture_bpf* skel = rdmesh_capture_bpf__open();
  if (skel == nullptr) return internalError(fmt::format("bpf open: {}", errnoText(errno)));
  bpf_object* obj = skel->obj;
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, obj) {
    // .rodata/.bss have no business outliving us; the five named maps do.
    std::string name = bpf_map__name(map);
    if (name.rfind("rdmesh_", 0) != 0) continue;
    bpf_map__set_pin_path(map, (options.pin_dir + "/" + name).c_str());
  }
  if (int rc = rdmesh_capture_bpf__load(skel); rc != 0) {
    rdmesh_capture_bpf__destroy(skel);
    return unavailable(fmt::format(
        "bpf load: {} (pinned maps of an incompatible version? run rdmesh-node --uninstall)",
        errnoText(rc)));
  }

  int cgroup_fd = ::open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cgroup_fd < 0) {
    rdmesh_capture_bpf__destroy(skel);
    return invalidArgument(fmt::format("cgroup '{}': {}", cgroup, errnoText(errno)));
  }
  std::vector<bpf_link*> links;
  for (const auto& [name, prog] : programs(skel)) {
    Result<bpf_link*> link =
        attachPinned(prog, linkPin(options.pin_dir, name), cgroup_fd, *cgroup_id);
    if (!link) {
      ::close(cgroup_fd);
      for (bpf_link* l : links) bpf_link__destroy(l);
      rdmesh_capture_bpf__destroy(skel);
      return link.status();
    }
    links.push_back(*link);
  }
  ::close(cgroup_fd);
  Result<std::span<rdmesh_dst_slot>> slots = mapSlots(skel->maps.rdmesh_dst_slots);
  if (!slots) {
    for (bpf_link* l : links) bpf_link__destroy(l);  // pinned: capture goes on, as at exit
    rdmesh_capture_bpf__destroy(skel);
    return slots.status();
  }
  spdlog::info("bpf capture attached at {} (pins in {})", cgroup, options.pin_dir);
  return std::unique_ptr<InterceptionMaps>(
      std::make_unique<BpfInterceptionMaps>(skel, std::move(links), *slots));
}

Status uninstallBpfCapture(const BpfCaptureOptions& options) {
  for (const char* name : kLinkNames) {
    if (Status s = detachPinnedLink(linkPin(options.pin_dir, name)); !s) return s;
  }
  if (Status s = removeObsoletePins(options.pin_dir); !s) return s;
  for (const char* name : kMapNames) {
    std::string pin = options.pin_dir + "/" + name;
    if (::unlink(pin.c_str()) != 0 && errno != ENOENT) {
      return unavailable(fmt::format("unpin {}: {}", pin, errnoText(errno)));
    }
  }
  if (::rmdir(options.pin_dir.c_str()) != 0 && errno != ENOENT) {
    return unavailable(fmt::format("rmdir {}: {}", options.pin_dir, errnoText(errno)));
  }
  return {};
}

}  // namespace rdmesh::capture
