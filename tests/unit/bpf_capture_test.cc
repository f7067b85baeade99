// The eBPF loader against the real kernel (root only): install at a test cgroup, maps through
// InterceptionMaps, reuse of pins on a second install, uninstall; netns cookies.
#include "rdmesh/capture/bpf_capture.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "rdmesh/capture/netns_cookie.h"

namespace rdmesh::capture {
namespace {

class BpfCaptureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (BPF, cgroups)";
    Result<std::string> root = cgroupV2Root();
    if (!root) GTEST_SKIP() << root.status().message();
    std::string tag = "rdmesh-unit-" + std::to_string(::getpid());
    cgroup_ = *root + "/" + tag;
    ASSERT_EQ(::mkdir(cgroup_.c_str(), 0755), 0) << strerror(errno);
    options_ = {cgroup_, "/sys/fs/bpf/" + tag};
  }
  void TearDown() override {
    if (cgroup_.empty()) return;
    EXPECT_TRUE(uninstallBpfCapture(options_));
    ::rmdir(cgroup_.c_str());
  }
  std::string cgroup_;
  BpfCaptureOptions options_;
};

TEST_F(BpfCaptureTest, InstallFillReuseUninstall) {
  {
    auto maps = installBpfCapture(options_);
    ASSERT_TRUE(maps) << maps.status().message();
    PodCapture pod{0x1234, {22, 5432}};
    ASSERT_TRUE((*maps)->addPod(pod));
    EXPECT_TRUE((*maps)->checkPod(pod));
    EXPECT_EQ((*maps)->counters().captured, 0u);
  }  // the agent goes away: links and maps stay pinned
  for (const char* pin : {"link_connect4", "link_getsockname4", "link_getpeername6", "rdmesh_pods",
                          "rdmesh_dst_slots"}) {
    EXPECT_TRUE(std::filesystem::exists(options_.pin_dir + "/" + pin)) << pin;
  }
  {
    auto maps = installBpfCapture(options_);  // a restarted agent reuses the pinned maps
    ASSERT_TRUE(maps) << maps.status().message();
    PodCapture pod{0x1234, {22, 5432}};
    EXPECT_TRUE((*maps)->checkPod(pod));
    ASSERT_TRUE((*maps)->removePod(pod));
    Status missing = (*maps)->checkPod(pod);
    EXPECT_FALSE(missing);
    EXPECT_EQ(missing.message(), "netns cookie 4660 is not in the membership map");
    EXPECT_TRUE((*maps)->removePod(pod));  // idempotent
    EXPECT_EQ((*maps)->connectionRecords(0x1234), 0u);
  }
  ASSERT_TRUE(uninstallBpfCapture(options_));
  EXPECT_FALSE(std::filesystem::exists(options_.pin_dir));
  EXPECT_TRUE(uninstallBpfCapture(options_));  // idempotent
}

// Programs attached at the cgroup for one attach type.
uint32_t attachedPrograms(const std::string& cgroup, bpf_attach_type type) {
  int fd = ::open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  uint32_t ids[8] = {};
  uint32_t count = 8;
  int rc = bpf_prog_query(fd, type, 0, nullptr, ids, &count);
  ::close(fd);
  return rc == 0 ? count : 0;
}

// An agent upgraded from a version with other programs: their pinned links are detached (not
// just unpinned) and their maps' pins removed, so the old programs stop running.
TEST_F(BpfCaptureTest, UpgradeDetachesLinksOfEarlierVersions) {
  ASSERT_TRUE(installBpfCapture(options_));
  // Stand-ins for an earlier version's pins: a link it attached, a map it pinned.
  std::string old_link = options_.pin_dir + "/link_getsockopt";
  std::string old_map = options_.pin_dir + "/rdmesh_pending_connect";
  ASSERT_EQ(::rename((options_.pin_dir + "/link_getsockname4").c_str(), old_link.c_str()), 0);
  ASSERT_EQ(::rename((options_.pin_dir + "/rdmesh_counters").c_str(), old_map.c_str()), 0);
  ASSERT_EQ(attachedPrograms(cgroup_, BPF_CGROUP_INET4_GETSOCKNAME), 1u);

  ASSERT_TRUE(installBpfCapture(options_));
  EXPECT_FALSE(std::filesystem::exists(old_link));
  EXPECT_FALSE(std::filesystem::exists(old_map));
  // The renamed link was detached; the new install attached (and pinned) its own.
  EXPECT_EQ(attachedPrograms(cgroup_, BPF_CGROUP_INET4_GETSOCKNAME), 1u);
  EXPECT_TRUE(std::filesystem::exists(options_.pin_dir + "/link_getsockname4"));
}

TEST_F(BpfCaptureTest, BadCgroupIsAClearError) {
  BpfCaptureOptions bad = options_;
  bad.cgroup_path = "/tmp";
  auto maps = installBpfCapture(bad);
  ASSERT_FALSE(maps);
  EXPECT_EQ(maps.status().message(), "cgroup '/tmp': not a cgroup v2 directory");
}

TEST(NetnsCookieTest, OwnNamespaceAndErrors) {
  if (::geteuid() != 0) GTEST_SKIP() << "setns needs root";
  Result<uint64_t> own = currentNetnsCookie();
  ASSERT_TRUE(own) << own.status().message();
  Result<uint64_t> by_path = netnsCookie("/proc/self/ns/net");
  ASSERT_TRUE(by_path) << by_path.status().message();
  EXPECT_EQ(*own, *by_path);
  Result<uint64_t> not_ns = netnsCookie("/etc/hostname");
  ASSERT_FALSE(not_ns);
  EXPECT_EQ(not_ns.status().message(), "netns '/etc/hostname': not a network namespace");
  EXPECT_FALSE(netnsCookie("/nonexistent/netns"));
}

}  // namespace
}  // namespace rdmesh::capture
