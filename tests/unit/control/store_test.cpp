// The daemon's SQLite store: definitions, tokens by hash, tenants' views, and
// quotas that parallel defines (threads, and separate connections as separate
// daemons would have) can never exceed.
#include <gtest/gtest.h>

#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "control/store.h"
#include "control/token.h"

namespace strata::control {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("strata-store-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    store_ = openStore();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::unique_ptr<Store> openStore() {
    auto store = Store::open((dir_ / "strata.db").string());
    EXPECT_TRUE(store) << store.error().message;
    return std::move(*store);
  }
  static VmSpec spec(const std::string& name, const std::string& tenant, unsigned cpus = 1, uint64_t memory = 256) {
    VmSpec spec;
    spec.name = name;
    spec.tenant = tenant;
    spec.cpus = cpus;
    spec.memoryMib = memory;
    return spec;
  }

  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, DefinitionsSurviveReopeningAndKeepTheirSpec) {
  ASSERT_TRUE(store_->addTenant("acme").ok());
  VmSpec web = spec("web", "acme", 2, 512);
  web.append = "console=ttyS0 quiet";
  web.disks.push_back({"/srv/web.qcow2", "qcow2", true});
  web.nets.push_back("switch=sw0,vlan=5");
  ASSERT_TRUE(store_->defineVm(web).ok());
  store_->recordRunning("web", 4242, 777, "/data/vms/web/api.sock");
  store_.reset();
  auto reopened = openStore();
  auto vm = reopened->vm("web");
  ASSERT_TRUE(vm);
  EXPECT_EQ(vm->spec.tenant, "acme");
  EXPECT_EQ(vm->spec.cpus, 2u);
  EXPECT_EQ(vm->spec.memoryMib, 512u);
  EXPECT_EQ(vm->spec.append, "console=ttyS0 quiet");
  ASSERT_EQ(vm->spec.disks.size(), 1u);
  EXPECT_EQ(vm->spec.disks[0].path, "/srv/web.qcow2");
  EXPECT_TRUE(vm->spec.disks[0].readOnly);
  EXPECT_EQ(vm->spec.nets, std::vector<std::string>{"switch=sw0,vlan=5"});
  EXPECT_EQ(vm->state, VmState::Running);
  EXPECT_EQ(vm->pid, 4242);
  EXPECT_EQ(vm->pidStartTime, 777u);
  EXPECT_EQ(vm->apiSocket, "/data/vms/web/api.sock");
}

TEST_F(StoreTest, RefusesDuplicatesUnknownTenantsAndDeletingARunningVm) {
  ASSERT_TRUE(store_->addTenant("acme").ok());
  EXPECT_EQ(store_->addTenant("acme").status, Outcome::Conflict);
  EXPECT_EQ(store_->defineVm(spec("a", "nobody")).status, Outcome::NotFound);
  ASSERT_TRUE(store_->defineVm(spec("a", "acme")).ok());
  EXPECT_EQ(store_->defineVm(spec("a", "acme")).status, Outcome::Conflict);
  ASSERT_TRUE(store_->claimStart("a").ok());
  EXPECT_EQ(store_->claimStart("a").status, Outcome::Conflict);  // a second start loses
  EXPECT_EQ(store_->deleteVm("a").status, Outcome::Conflict);
  store_->recordStopped("a", 0);
  EXPECT_TRUE(store_->deleteVm("a").ok());
  EXPECT_FALSE(store_->vm("a"));
  EXPECT_EQ(store_->deleteVm("a").status, Outcome::NotFound);
}

TEST_F(StoreTest, TokensAreKeptOnlyAsHashesAndNameTheirTenant) {
  ASSERT_TRUE(store_->addTenant("acme").ok());
  auto admin = newToken(), tenant = newToken();
  ASSERT_TRUE(admin && tenant);
  EXPECT_NE(*admin, *tenant);
  ASSERT_TRUE(store_->addToken(tokenHash(*admin), std::nullopt).ok());
  ASSERT_TRUE(store_->addToken(tokenHash(*tenant), "acme").ok());
  EXPECT_EQ(store_->addToken(tokenHash("x"), "nobody").status, Outcome::NotFound);
  auto asAdmin = store_->principalForToken(tokenHash(*admin));
  auto asTenant = store_->principalForToken(tokenHash(*tenant));
  ASSERT_TRUE(asAdmin && asTenant);
  EXPECT_TRUE(asAdmin->admin);
  EXPECT_FALSE(asTenant->admin);
  EXPECT_EQ(asTenant->tenant, "acme");
  EXPECT_FALSE(store_->principalForToken(*tenant));  // the token itself is not a key
  EXPECT_FALSE(store_->principalForToken(tokenHash(*tenant + "x")));
  // The database file holds no token in the clear.
  store_.reset();
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    std::ifstream file(entry.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    EXPECT_EQ(bytes.find(*tenant), std::string::npos) << entry.path();
    EXPECT_EQ(bytes.find(*admin), std::string::npos) << entry.path();
  }
}

TEST_F(StoreTest, ListsOnlyTheTenantsOwnVms) {
  ASSERT_TRUE(store_->addTenant("acme").ok());
  ASSERT_TRUE(store_->addTenant("globex").ok());
  ASSERT_TRUE(store_->defineVm(spec("a1", "acme")).ok());
  ASSERT_TRUE(store_->defineVm(spec("g1", "globex")).ok());
  ASSERT_TRUE(store_->defineVm(spec("a2", "acme")).ok());
  auto acme = store_->vms("acme");
  ASSERT_EQ(acme.size(), 2u);
  EXPECT_EQ(acme[0].spec.name, "a1");
  EXPECT_EQ(acme[1].spec.name, "a2");
  EXPECT_EQ(store_->vms().size(), 3u);
}

TEST_F(StoreTest, QuotaCountsEveryResourceAndNamesTheOneExceeded) {
  ASSERT_TRUE(store_->addTenant("acme").ok());
  ASSERT_TRUE(store_->setQuota("acme", {10, 4, 1024, std::nullopt}).ok());
  ASSERT_TRUE(store_->defineVm(spec("a", "acme", 3, 256)).ok());
  auto cpus = store_->defineVm(spec("b", "acme", 2, 256));
  EXPECT_EQ(cpus.status, Outcome::OverQuota);
  EXPECT_NE(cpus.message.find("vcpus 3 in use + 2 asked > 4"), std::string::npos) << cpus.message;
  auto memory = store_->defineVm(spec("c", "acme", 1, 1024));
  EXPECT_EQ(memory.status, Outcome::OverQuota);
  EXPECT_NE(memory.message.find("memory_mib"), std::string::npos) << memory.message;
  EXPECT_TRUE(store_->defineVm(spec("d", "acme", 1, 768)).ok());
  auto tenant = store_->tenant("acme");
  ASSERT_TRUE(tenant);
  EXPECT_EQ(tenant->used.vms, 2u);
  EXPECT_EQ(tenant->used.vcpus, 4u);
  EXPECT_EQ(tenant->used.memoryMib, 1024u);
  EXPECT_EQ(store_->setQuota("nobody", {}).status, Outcome::NotFound);
}

// 8 threads, each with its own connection (as if each were a daemon), race
// to define 10 VMs each against a quota of 5: exactly 5 definitions win.
TEST_F(StoreTest, ParallelDefinesNeverExceedTheQuota) {
  ASSERT_TRUE(store_->addTenant("acme").ok());
  ASSERT_TRUE(store_->setQuota("acme", {5, std::nullopt, std::nullopt, std::nullopt}).ok());
  std::atomic<int> accepted = 0, refused = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      auto connection = openStore();
      for (int i = 0; i < 10; ++i) {
        auto outcome = connection->defineVm(spec("vm" + std::to_string(t) + "-" + std::to_string(i), "acme"));
        (outcome.ok() ? accepted : refused)++;
        if (!outcome.ok()) {
          EXPECT_EQ(outcome.status, Outcome::OverQuota) << outcome.message;
        }
      }
    });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(accepted, 5);
  EXPECT_EQ(refused, 75);
  EXPECT_EQ(store_->vms("acme").size(), 5u);
}

// The same race on one shared connection (the daemon's HTTP threads).
TEST_F(StoreTest, ParallelDefinesOnOneConnectionNeverExceedTheQuota) {
  ASSERT_TRUE(store_->addTenant("acme").ok());
  ASSERT_TRUE(store_->setQuota("acme", {std::nullopt, 7, std::nullopt, std::nullopt}).ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) (void)store_->defineVm(spec("v" + std::to_string(t * 5 + i), "acme", 2));
    });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(store_->tenant("acme")->used.vcpus, 6u);  // three 2-vCPU VMs fit in 7
}

TEST_F(StoreTest, UsageRecordsAreSelectedByIntervalAndTenant) {
  ASSERT_TRUE(store_->addTenant("acme").ok());
  ASSERT_TRUE(store_->defineVm(spec("a", "acme")).ok());
  store_->addUsage({"a", "acme", 100, 130, 12.5, 0.01, 0.5, 1000, 200}, {1250, 1000, 200});
  store_->addUsage({"a", "acme", 130, 160, 7.5, 0.01, 0.25, 3000, 4000}, {2000, 4000, 4200});
  store_->addUsage({"g", "globex", 100, 130, 3, 0.02}, {300});
  auto marked = store_->vm("a");  // where a restarted daemon continues
  EXPECT_EQ(marked->metered.cpuTicks, 2000u);
  EXPECT_EQ(marked->metered.rxBytes, 4000u);
  EXPECT_EQ(marked->metered.txBytes, 4200u);
  EXPECT_EQ(marked->meteredAt, 160);
  EXPECT_EQ(store_->usage(0, 1000, std::nullopt).size(), 3u);
  EXPECT_EQ(store_->usage(0, 1000, "acme").size(), 2u);
  auto late = store_->usage(140, 1000, std::nullopt);
  ASSERT_EQ(late.size(), 1u);
  EXPECT_DOUBLE_EQ(late[0].vcpuSeconds, 7.5);
  EXPECT_DOUBLE_EQ(late[0].diskGibHours, 0.25);
  EXPECT_EQ(late[0].rxBytes, 3000u);
  EXPECT_EQ(late[0].txBytes, 4000u);
  EXPECT_TRUE(store_->usage(200, 300, std::nullopt).empty());
  // A new run starts its counters from 0.
  store_->recordRunning("a", 4242, 1, "/nowhere.sock");
  EXPECT_EQ(store_->vm("a")->metered.rxBytes, 0u);
  EXPECT_EQ(store_->vm("a")->metered.cpuTicks, 0u);
}

TEST_F(StoreTest, ADataDirectoryFromBeforeDiskAndNetworkMeteringKeepsItsRecords) {
  store_.reset();
  std::filesystem::remove(dir_ / "strata.db");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "strata.db").c_str(), &db), SQLITE_OK);
  // The tables as they were: no disk or network columns.
  std::string old = R"sql(
    CREATE TABLE tenants(name TEXT PRIMARY KEY,
      max_vms INTEGER, max_vcpus INTEGER, max_memory_mib INTEGER, max_disk_gib INTEGER);
    CREATE TABLE vms(name TEXT PRIMARY KEY, tenant TEXT NOT NULL REFERENCES tenants(name), spec TEXT NOT NULL,
      cpus INTEGER NOT NULL, memory_mib INTEGER NOT NULL, disk_gib INTEGER NOT NULL,
      state TEXT NOT NULL DEFAULT 'stopped', pid INTEGER, pid_start INTEGER, api_socket TEXT, last_exit INTEGER,
      metered_ticks INTEGER NOT NULL DEFAULT 0, metered_at INTEGER NOT NULL DEFAULT 0, changed INTEGER NOT NULL);
    CREATE TABLE usage(id INTEGER PRIMARY KEY, vm TEXT NOT NULL, tenant TEXT NOT NULL,
      start INTEGER NOT NULL, end INTEGER NOT NULL, vcpu_seconds REAL NOT NULL, memory_gib_hours REAL NOT NULL);
    INSERT INTO tenants(name) VALUES('acme');
    INSERT INTO usage(vm, tenant, start, end, vcpu_seconds, memory_gib_hours) VALUES('a', 'acme', 50, 100, 5.5, 0.125);
  )sql";
  old += "INSERT INTO vms(name, tenant, spec, cpus, memory_mib, disk_gib, metered_ticks, metered_at, changed) "
         "VALUES('a', 'acme', '" + toJson(spec("a", "acme")).dump() + "', 1, 256, 0, 550, 100, 1);";
  ASSERT_EQ(sqlite3_exec(db, old.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  sqlite3_close(db);

  store_ = openStore();
  ASSERT_TRUE(store_);
  auto kept = store_->usage(0, 1000, std::nullopt);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_DOUBLE_EQ(kept[0].vcpuSeconds, 5.5);
  EXPECT_DOUBLE_EQ(kept[0].memoryGibHours, 0.125);
  EXPECT_DOUBLE_EQ(kept[0].diskGibHours, 0.0);
  EXPECT_EQ(kept[0].rxBytes, 0u);
  auto vm = store_->vm("a");
  ASSERT_TRUE(vm);
  EXPECT_EQ(vm->metered.cpuTicks, 550u);
  EXPECT_EQ(vm->meteredAt, 100);
  store_->addUsage({"a", "acme", 100, 130, 1.5, 0.01, 0.75, 700, 800}, {700, 700, 800});
  store_ = openStore();  // and opening it again changes nothing
  auto both = store_->usage(0, 1000, "acme");
  ASSERT_EQ(both.size(), 2u);
  EXPECT_DOUBLE_EQ(both[0].vcpuSeconds, 5.5);
  EXPECT_DOUBLE_EQ(both[1].diskGibHours, 0.75);
  EXPECT_EQ(both[1].rxBytes, 700u);
  EXPECT_EQ(both[1].txBytes, 800u);
  EXPECT_EQ(store_->vm("a")->metered.txBytes, 800u);
}

TEST_F(StoreTest, PruningForgetsOldFinishedOperationsButNeverRunningOnesOrReusesAnId) {
  int64_t running = store_->addOperation("import", "t1", "");
  std::vector<int64_t> finished;
  for (const char* state : {"succeeded", "failed", "succeeded"}) {
    finished.push_back(store_->addOperation("snapshot", "t2", "acme"));
    store_->finishOperation({finished.back(), "snapshot", "t2", "acme", state, 1, 1, ""});
  }
  EXPECT_EQ(store_->pruneOperations(::time(nullptr) - 3600), 0);  // all younger than an hour
  EXPECT_EQ(store_->pruneOperations(::time(nullptr) + 10), 2);
  EXPECT_EQ(store_->operation(running)->state, "running");
  EXPECT_FALSE(store_->operation(finished[0]));
  EXPECT_FALSE(store_->operation(finished[1]));
  EXPECT_EQ(store_->operation(finished[2])->state, "succeeded");  // the newest stays: ids go on from it
  store_->finishOperation({running, "import", "t1", "", "succeeded", 1, 1, ""});
  EXPECT_EQ(store_->pruneOperations(::time(nullptr) + 10), 1);
  EXPECT_GT(store_->addOperation("import", "t3", ""), finished[2]);
}

TEST_F(StoreTest, TemplatesCountInTheDiskQuotaAndStayWhileAVmIsClonedFromThem) {
  ASSERT_TRUE(store_->addTenant("acme").ok());
  ASSERT_TRUE(store_->setQuota("acme", {std::nullopt, std::nullopt, std::nullopt, 3}).ok());
  std::vector<VmChange> changes;
  store_->setVmObserver([&](const VmChange& change) { changes.push_back(change); });
  ASSERT_TRUE(store_->reserveTemplate({"base", "acme", "/t/base.qcow2", 1 << 30, 2, false}).ok());
  EXPECT_EQ(store_->reserveTemplate({"base", std::nullopt, "/t/x.qcow2", 1, 1, false}).status, Outcome::Conflict);
  auto over = store_->reserveTemplate({"big", "acme", "/t/big.qcow2", 1, 2, false});
  EXPECT_EQ(over.status, Outcome::OverQuota);
  EXPECT_EQ(over.message, "quota exceeded: disk_gib 2 in use + 2 asked > 3 allowed");
  VmSpec clone = spec("web", "acme");
  clone.templateName = "base";
  EXPECT_EQ(store_->defineVm(clone).status, Outcome::NotFound) << "an unready template backs no VM";
  store_->markTemplateReady("base");
  clone.diskGib = 1;
  ASSERT_TRUE(store_->defineVm(clone).ok());
  EXPECT_EQ(store_->tenant("acme")->used.diskGib, 3u);
  EXPECT_EQ(store_->deleteTemplate("base").status, Outcome::Conflict);
  ASSERT_TRUE(store_->deleteVm("web").ok());
  EXPECT_TRUE(store_->deleteTemplate("base").ok());
  EXPECT_FALSE(store_->templateNamed("base"));
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].state, "defined");
  EXPECT_EQ(changes[1].state, "deleted");
  EXPECT_EQ(changes[1].tenant, "acme");

  ASSERT_TRUE(store_->reserveTemplate({"shared", std::nullopt, "/t/shared.qcow2", 1, 1, false}).ok());
  ASSERT_TRUE(store_->reserveTemplate({"half", "acme", "/t/half.qcow2", 1, 1, false}).ok());
  store_->markTemplateReady("shared");
  EXPECT_EQ(store_->dropUnreadyTemplates(), std::vector<std::string>{"/t/half.qcow2"});
  auto visible = store_->templates("acme");
  ASSERT_EQ(visible.size(), 1u);
  EXPECT_EQ(visible[0].name, "shared");
  EXPECT_FALSE(visible[0].tenant);
}

// What a kill -9 may leave between a request's database change and its files.
TEST_F(StoreTest, PendingDefinitionsHoldNameAndQuotaUnseenUntilFinishedOrDropped) {
  ASSERT_TRUE(store_->addTenant("acme").ok());
  ASSERT_TRUE(store_->setQuota("acme", {2, std::nullopt, std::nullopt, std::nullopt}).ok());
  std::vector<VmChange> changes;
  store_->setVmObserver([&](const VmChange& change) { changes.push_back(change); });
  ASSERT_TRUE(store_->defineVm(spec("made", "acme"), true).ok());
  EXPECT_FALSE(store_->vm("made"));
  EXPECT_TRUE(store_->vms().empty());
  EXPECT_TRUE(changes.empty()) << "a pending definition was announced";
  EXPECT_EQ(store_->defineVm(spec("made", "acme")).status, Outcome::Conflict);
  EXPECT_EQ(store_->deleteVm("made").status, Outcome::NotFound);
  store_->finishDefinition("made");
  ASSERT_TRUE(store_->vm("made"));
  EXPECT_EQ(store_->vm("made")->state, VmState::Stopped);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].state, "defined");

  ASSERT_TRUE(store_->defineVm(spec("half", "acme"), true).ok());
  EXPECT_EQ(store_->defineVm(spec("third", "acme")).status, Outcome::OverQuota) << "a pending definition counts";
  ASSERT_TRUE(store_->deleteVm("made", true).ok());  // its files are going: unseen, its name still taken
  EXPECT_FALSE(store_->vm("made"));
  EXPECT_EQ(store_->defineVm(spec("made", "acme")).status, Outcome::Conflict);
  EXPECT_EQ(changes.back().state, "deleted");
  store_.reset();  // the daemon killed here
  auto reopened = openStore();
  EXPECT_EQ(reopened->dropPendingVms(), (std::vector<std::string>{"half", "made"}));
  EXPECT_TRUE(reopened->defineVm(spec("made", "acme")).ok());
  ASSERT_TRUE(reopened->defineVm(spec("half", "acme"), true).ok());
  reopened->dropPendingVm("half");
  reopened->dropPendingVm("made");  // not pending: stays
  EXPECT_FALSE(reopened->vm("half"));
  EXPECT_TRUE(reopened->vm("made"));
}

}  // namespace
}  // namespace strata::control
