// The store's pools, volumes and networks: volume sizes and networks count in
// the tenant's quota inside the same transaction as the insert, a volume a VM
// names cannot be removed, VLANs are handed out once, and a data directory from
// before these tables gets them (and the network quota column) when opened.
#include <gtest/gtest.h>

#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>

#include "control/store.h"

namespace strata::control {
namespace {

class StoreResourcesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("strata-store-resources-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::unique_ptr<Store> openStore() {
    auto store = Store::open((dir_ / "strata.db").string());
    EXPECT_TRUE(store) << store.error().message;
    return store ? std::move(*store) : nullptr;
  }
  std::filesystem::path dir_;
};

TEST_F(StoreResourcesTest, VolumesCountInTheDiskQuotaAndAVmsVolumeStays) {
  auto store = openStore();
  ASSERT_TRUE(store->addTenant("acme").ok());
  ASSERT_TRUE(store->setQuota("acme", {.diskGib = 3}).ok());
  ASSERT_TRUE(store->addPool({"fast", {"/dev/null"}, 512}).ok());
  EXPECT_EQ(store->addPool({"fast", {"/dev/zero"}, 0}).status, Outcome::Conflict);
  EXPECT_EQ(store->reserveVolume({"v", "acme", "nopool", "thin", 1024}).status, Outcome::NotFound);
  ASSERT_TRUE(store->reserveVolume({"data", "acme", "fast", "thin", 1500}).ok());  // 2 GiB counted
  EXPECT_EQ(store->reserveVolume({"data", "acme", "fast", "thin", 1}).status, Outcome::Conflict);
  auto over = store->reserveVolume({"more", "acme", "fast", "thin", 1025});
  EXPECT_EQ(over.status, Outcome::OverQuota) << over.message;
  EXPECT_EQ(store->tenant("acme")->used.diskGib, 2u);
  EXPECT_EQ(store->setVolumeSize("data", 4000).status, Outcome::OverQuota);
  EXPECT_TRUE(store->setVolumeSize("data", 3000).ok());
  // Not ready (being made) cannot be removed; a VM's disk cannot either.
  EXPECT_EQ(store->beginVolumeRemoval("data").status, Outcome::Conflict);
  store->markVolumeReady("data");
  VmSpec vm;
  vm.name = "box", vm.tenant = "acme";
  vm.disks.push_back({"pool:fast/data", "", false, "data"});
  ASSERT_TRUE(store->defineVm(vm).ok());
  auto used = store->beginVolumeRemoval("data");
  EXPECT_EQ(used.status, Outcome::Conflict);
  EXPECT_NE(used.message.find("VM box"), std::string::npos) << used.message;
  ASSERT_TRUE(store->deleteVm("box").ok());
  EXPECT_TRUE(store->beginVolumeRemoval("data").ok());
  // A daemon killed now: the half-removed volume is dropped at the next start.
  store.reset();
  store = openStore();
  auto dropped = store->dropUnreadyVolumes();
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0].name, "data");
  EXPECT_EQ(store->tenant("acme")->used.diskGib, 0u);
}

TEST_F(StoreResourcesTest, NetworksGetFreeVlansWithinTheQuotaAndStayWhileAVmUsesThem) {
  auto store = openStore();
  ASSERT_TRUE(store->addTenant("acme").ok());
  ASSERT_TRUE(store->addTenant("default").ok());
  ASSERT_TRUE(store->setQuota("acme", {.networks = 2}).ok());
  NetworkRecord first{"lan", "acme"}, second{"dmz", "acme"}, third{"more", "acme"}, chosen{"wan", "default", 101};
  ASSERT_TRUE(store->addNetwork(chosen).ok());
  ASSERT_TRUE(store->addNetwork(first).ok());
  ASSERT_TRUE(store->addNetwork(second).ok());
  EXPECT_EQ(first.vlan, 100u);
  EXPECT_EQ(second.vlan, 102u);  // 101 is taken
  EXPECT_EQ(store->addNetwork(third).status, Outcome::OverQuota);
  NetworkRecord clash{"clash", "default", 100};
  EXPECT_EQ(store->addNetwork(clash).status, Outcome::Conflict);
  EXPECT_EQ(store->networks(std::string("acme")).size(), 2u);
  VmSpec vm;
  vm.name = "box", vm.tenant = "acme", vm.networks = {"lan"};
  ASSERT_TRUE(store->defineVm(vm).ok());
  EXPECT_EQ(store->deleteNetwork("lan").status, Outcome::Conflict);
  EXPECT_TRUE(store->deleteNetwork("dmz").ok());
  EXPECT_EQ(store->deleteNetwork("dmz").status, Outcome::NotFound);
}

TEST_F(StoreResourcesTest, ADataDirectoryFromBeforeNetworksGetsItsTablesAndQuotaColumn) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "strata.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "CREATE TABLE tenants(name TEXT PRIMARY KEY, max_vms INTEGER, max_vcpus INTEGER, "
                         "max_memory_mib INTEGER, max_disk_gib INTEGER);"
                         "INSERT INTO tenants(name, max_vms) VALUES('old', 4);",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto store = openStore();
  ASSERT_TRUE(store);
  auto old = store->tenant("old");
  ASSERT_TRUE(old);
  EXPECT_EQ(old->quota.vms, 4u);
  EXPECT_FALSE(old->quota.networks);
  ASSERT_TRUE(store->setQuota("old", {.networks = 1}).ok());
  NetworkRecord lan{"lan", "old"};
  EXPECT_TRUE(store->addNetwork(lan).ok());
  store.reset();
  EXPECT_EQ(openStore()->tenant("old")->quota.networks, 1u);  // and opening it again changes nothing
}

}  // namespace
}  // namespace strata::control
