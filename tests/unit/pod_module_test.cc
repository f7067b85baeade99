#include "pod_module.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "../common/memory_interception_maps.h"
#include "op_table.h"

namespace rdmesh::node {
namespace {

using nlohmann::json;

class PodModuleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("rdmesh-pod-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    state_ = (dir_ / "pods.json").string();
    rebuild();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A fresh registry + module over the same state file and maps (an agent restart).
  void rebuild() {
    ops_ = std::make_unique<OpTable>();
    module_.reset();
    registry_ = std::make_unique<PodRegistry>(state_);
    ASSERT_TRUE(registry_->load());
    module_ = std::make_unique<PodModule>(
        *registry_, &maps_,
        [this](const std::string& path) -> Result<uint64_t> {
          auto it = cookies_.find(path);
          if (it == cookies_.end()) return invalidArgument("no such netns");
          return it->second;
        },
        stats_);
    module_->registerOps(*ops_);
  }

  json call(const std::string& request) {
    RequestFds fds;
    return json::parse(ops_->dispatch(request, fds).datagram);
  }
  static std::string add(const std::string& id, const std::string& netns,
                         const std::string& extra = "") {
    return R"({"v":1,"op":"pod_add","container_id":")" + id + R"(","netns":")" + netns +
           R"(","ips":["10.1.0.5"],"interface":"eth0")" + extra + "}";
  }

  std::filesystem::path dir_;
  std::string state_;
  std::map<std::string, uint64_t> cookies_{{"/run/netns/a", 11}, {"/run/netns/b", 22}};
  StatsStore stats_;
  testing::MemoryInterceptionMaps maps_;
  std::unique_ptr<PodRegistry> registry_;
  std::unique_ptr<PodModule> module_;
  std::unique_ptr<OpTable> ops_;
};

TEST_F(PodModuleTest, AddCheckListDel) {
  json r = call(add("c1", "/run/netns/a", R"(,"exclude_outbound_ports":[5432])"));
  ASSERT_EQ(r["ok"], true) << r;
  EXPECT_EQ(r["netns_cookie"], 11);
  EXPECT_EQ(maps_.pods, (std::set<uint64_t>{11}));
  EXPECT_EQ(maps_.excluded.count({11, 5432}), 1u);
  EXPECT_EQ(call(R"({"v":1,"op":"pod_check","container_id":"c1"})")["ok"], true);
  json list = call(R"({"v":1,"op":"pod_list"})");
  ASSERT_EQ(list["pods"].size(), 1u);
  EXPECT_EQ(list["pods"][0]["container_id"], "c1");
  EXPECT_EQ(list["pods"][0]["ips"][0], "10.1.0.5");

  EXPECT_EQ(call(R"({"v":1,"op":"pod_del","container_id":"c1"})")["ok"], true);
  EXPECT_TRUE(maps_.pods.empty());
  EXPECT_TRUE(maps_.excluded.empty());
  json check = call(R"({"v":1,"op":"pod_check","container_id":"c1"})");
  EXPECT_EQ(check["ok"], false);
  EXPECT_EQ(check["error"], "container 'c1' is not registered");
  EXPECT_EQ(call(R"({"v":1,"op":"pod_del","container_id":"c1"})")["ok"], true);  // idempotent
}

TEST_F(PodModuleTest, AddIsIdempotentForTheSameDataAndRejectsDifferentData) {
  ASSERT_EQ(call(add("c1", "/run/netns/a"))["ok"], true);
  json again = call(add("c1", "/run/netns/a"));
  EXPECT_EQ(again["ok"], true);
  EXPECT_EQ(again["netns_cookie"], 11);
  json changed = call(add("c1", "/run/netns/b"));
  EXPECT_EQ(changed["ok"], false);
  EXPECT_NE(changed["error"].get<std::string>().find("already registered with different data"),
            std::string::npos);
  json same_netns = call(add("c2", "/run/netns/a"));
  EXPECT_EQ(same_netns["ok"], false);
  EXPECT_NE(same_netns["error"].get<std::string>().find("already registered by container 'c1'"),
            std::string::npos);
}

TEST_F(PodModuleTest, FailedAddLeavesNothing) {
  json bad_netns = call(add("c1", "/run/netns/missing"));
  EXPECT_EQ(bad_netns["ok"], false);
  EXPECT_EQ(bad_netns["error"], "field 'netns': no such netns");
  maps_.failNextAdd();
  json map_failure = call(add("c1", "/run/netns/a"));
  EXPECT_EQ(map_failure["ok"], false);
  EXPECT_TRUE(maps_.pods.empty());
  EXPECT_TRUE(call(R"({"v":1,"op":"pod_list"})")["pods"].empty());
  // A state file that cannot be written: the maps entry is taken back.
  std::filesystem::remove_all(dir_);
  json write_failure = call(add("c1", "/run/netns/a"));
  EXPECT_EQ(write_failure["ok"], false);
  EXPECT_TRUE(maps_.pods.empty());
  std::filesystem::create_directories(dir_);
}

TEST_F(PodModuleTest, RegistrySurvivesARestartAndRestoresFreshMaps) {
  ASSERT_EQ(
      call(add("c1", "/run/netns/a", R"(,"pod_name":"web","exclude_outbound_ports":[22])"))["ok"],
      true);
  maps_.pods.clear();  // as if the pinned maps were lost (after --uninstall)
  maps_.excluded.clear();
  rebuild();
  module_->restoreMaps();
  EXPECT_EQ(maps_.pods, (std::set<uint64_t>{11}));
  EXPECT_EQ(maps_.excluded.count({11, 22}), 1u);
  json list = call(R"({"v":1,"op":"pod_list"})");
  ASSERT_EQ(list["pods"].size(), 1u);
  EXPECT_EQ(list["pods"][0]["pod_name"], "web");
  EXPECT_EQ(call(R"({"v":1,"op":"pod_check","container_id":"c1"})")["ok"], true);
}

TEST_F(PodModuleTest, SidecarExcludedPortsJoinThePodsAndSurviveARestart) {
  ASSERT_EQ(call(add("c1", "/run/netns/a", R"(,"exclude_outbound_ports":[22])"))["ok"], true);
  ASSERT_TRUE(module_->excludeSidecarPorts("c1", {5432, 6379}));
  EXPECT_EQ(maps_.excluded,
            (std::set<std::pair<uint64_t, uint16_t>>{{11, 22}, {11, 5432}, {11, 6379}}));
  // Sent again on every (re)attach: nothing changes.
  ASSERT_TRUE(module_->excludeSidecarPorts("c1", {6379}));
  EXPECT_EQ(maps_.excluded.size(), 3u);
  EXPECT_FALSE(module_->excludeSidecarPorts("nope", {80}));

  maps_.pods.clear();
  maps_.excluded.clear();
  rebuild();
  module_->restoreMaps();
  EXPECT_EQ(maps_.excluded.size(), 3u);
  EXPECT_EQ(call(R"({"v":1,"op":"pod_check","container_id":"c1"})")["ok"], true);
  // A retried CNI ADD with rdmesh-cni's own data is still the same pod.
  EXPECT_EQ(call(add("c1", "/run/netns/a", R"(,"exclude_outbound_ports":[22])"))["ok"], true);
  EXPECT_EQ(call(R"({"v":1,"op":"pod_del","container_id":"c1"})")["ok"], true);
  EXPECT_TRUE(maps_.excluded.empty());
}

TEST_F(PodModuleTest, CorruptStateFileIsAnError) {
  std::ofstream(state_) << "{not json";
  PodRegistry registry(state_);
  Status s = registry.load();
  EXPECT_FALSE(s);
  EXPECT_NE(s.message().find("not a pod state file"), std::string::npos);
}

TEST_F(PodModuleTest, UnknownOpListsTheKnownOnes) {
  json r = call(R"({"v":1,"op":"attach"})");
  EXPECT_EQ(r["ok"], false);
  EXPECT_EQ(r["error"],
            "field 'op': unknown op 'attach' (known: pod_add, pod_check, pod_del, pod_list)");
}

}  // namespace
}  // namespace rdmesh::node
