#include "control/store.h"

#include <sqlite3.h>

#include <algorithm>
#include <ctime>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "control/store_sql.h"

namespace strata::control {
namespace {

using sql::Statement;
using sql::Transaction;
using sql::now;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS tenants(
  name TEXT PRIMARY KEY,
  max_vms INTEGER, max_vcpus INTEGER, max_memory_mib INTEGER, max_disk_gib INTEGER);
CREATE TABLE IF NOT EXISTS tokens(
  hash TEXT PRIMARY KEY,
  tenant TEXT REFERENCES tenants(name),
  created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS vms(
  name TEXT PRIMARY KEY,
  tenant TEXT NOT NULL REFERENCES tenants(name),
  spec TEXT NOT NULL,
  cpus INTEGER NOT NULL, memory_mib INTEGER NOT NULL, disk_gib INTEGER NOT NULL,
  state TEXT NOT NULL DEFAULT 'stopped',
  pid INTEGER, pid_start INTEGER, api_socket TEXT, last_exit INTEGER,
  metered_ticks INTEGER NOT NULL DEFAULT 0, metered_at INTEGER NOT NULL DEFAULT 0,
  changed INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS usage(
  id INTEGER PRIMARY KEY,
  vm TEXT NOT NULL, tenant TEXT NOT NULL,
  start INTEGER NOT NULL, end INTEGER NOT NULL,
  vcpu_seconds REAL NOT NULL, memory_gib_hours REAL NOT NULL);
CREATE INDEX IF NOT EXISTS usage_by_end ON usage(end);
CREATE TABLE IF NOT EXISTS operations(
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL, target TEXT NOT NULL, tenant TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'running', done INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL DEFAULT 0,
  error TEXT NOT NULL DEFAULT '', created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS templates(
  name TEXT PRIMARY KEY,
  tenant TEXT REFERENCES tenants(name),
  path TEXT NOT NULL, virtual_size INTEGER NOT NULL, disk_gib INTEGER NOT NULL,
  ready INTEGER NOT NULL DEFAULT 0,
  created INTEGER NOT NULL);
)sql";


VmState parseState(const std::string& text) {
  if (text == "running") return VmState::Running;
  if (text == "paused") return VmState::Paused;
  if (text == "starting") return VmState::Starting;
  return VmState::Stopped;
}

constexpr const char* kVmColumns =
    "name, tenant, spec, state, pid, pid_start, api_socket, last_exit, metered_ticks, metered_at, metered_rx, "
    "metered_tx";
// The states of a definition whose files are still being made or removed: it
// holds its name and quota, but nothing shows it (kShown filters it out).
constexpr const char* kCreating = "creating";
constexpr const char* kShown = "state NOT IN ('creating', 'deleting')";

VmRecord readVm(const Statement& row) {
  VmRecord vm;
  vm.spec = vmSpecFromStored(row.text(0), row.text(1), row.text(2));
  vm.state = parseState(row.text(3));
  vm.pid = static_cast<pid_t>(row.integer(4));
  vm.pidStartTime = static_cast<uint64_t>(row.integer(5));
  vm.apiSocket = row.text(6);
  if (!row.isNull(7)) vm.lastExit = static_cast<int>(row.integer(7));
  vm.metered = {static_cast<uint64_t>(row.integer(8)), static_cast<uint64_t>(row.integer(10)),
                static_cast<uint64_t>(row.integer(11))};
  vm.meteredAt = row.integer(9);
  return vm;
}

std::string overQuota(const char* what, uint64_t used, uint64_t asked, uint64_t limit) {
  return fmt::format("quota exceeded: {} {} in use + {} asked > {} allowed", what, used, asked, limit);
}

}  // namespace

const char* vmStateName(VmState state) {
  switch (state) {
    case VmState::Stopped: return "stopped";
    case VmState::Starting: return "starting";
    case VmState::Running: return "running";
    case VmState::Paused: return "paused";
  }
  return "stopped";
}

Result<std::unique_ptr<Store>> Store::open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    Error error{fmt::format("{}: {}", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc))};
    sqlite3_close(db);
    return error;
  }
  std::unique_ptr<Store> store(new Store(db));
  sqlite3_busy_timeout(db, 10000);  // other connections' transactions are short
  try {
    store->exec("PRAGMA journal_mode=WAL");
    store->exec("PRAGMA synchronous=NORMAL");
    store->exec("PRAGMA foreign_keys=ON");
    store->exec(kSchema);
    store->migrateUsage();
    store->migrateResources();
  } catch (const StoreFailure& failure) {
    return Error{fmt::format("{}: {}", path, failure.what())};
  }
  return store;
}

Store::~Store() { sqlite3_close(db_); }

void Store::addColumnIfMissing(const char* table, const char* column, const char* definition) {
  Statement columns(db_, "SELECT 1 FROM pragma_table_info(?) WHERE name=?");
  if (columns.bind(1, std::string(table)).bind(2, std::string(column)).step()) return;
  exec(fmt::format("ALTER TABLE {} ADD COLUMN {} {}", table, column, definition).c_str());
}

// Records made before disk and network metering keep their values and read 0 for those.
void Store::migrateUsage() {
  addColumnIfMissing("usage", "disk_gib_hours", "REAL NOT NULL DEFAULT 0");
  addColumnIfMissing("usage", "rx_bytes", "INTEGER NOT NULL DEFAULT 0");
  addColumnIfMissing("usage", "tx_bytes", "INTEGER NOT NULL DEFAULT 0");
  addColumnIfMissing("vms", "metered_rx", "INTEGER NOT NULL DEFAULT 0");
  addColumnIfMissing("vms", "metered_tx", "INTEGER NOT NULL DEFAULT 0");
}

void Store::exec(const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    std::string text = message ? message : sqlite3_errmsg(db_);
    sqlite3_free(message);
    throw StoreFailure("database: " + text);
  }
}

Outcome Store::addTenant(const std::string& name) {
  std::lock_guard lock(mutex_);
  Statement insert(db_, "INSERT INTO tenants(name) VALUES(?)");
  if (!insert.bind(1, name).stepUnlessConstraint())
    return {Outcome::Conflict, fmt::format("tenant {} already exists", name)};
  return {};
}

ResourceUse Store::usedBy(const std::string& tenant) {
  Statement sum(db_,
                "SELECT count(*), coalesce(sum(cpus),0), coalesce(sum(memory_mib),0), coalesce(sum(disk_gib),0) "
                "FROM vms WHERE tenant=?");
  sum.bind(1, tenant).step();
  Statement templates(db_, "SELECT coalesce(sum(disk_gib),0) FROM templates WHERE tenant=?");
  templates.bind(1, tenant).step();
  Statement volumes(db_, "SELECT coalesce(sum((size_mib + 1023) / 1024),0) FROM volumes WHERE tenant=?");
  volumes.bind(1, tenant).step();
  Statement networks(db_, "SELECT count(*) FROM networks WHERE tenant=?");
  networks.bind(1, tenant).step();
  return {static_cast<uint64_t>(sum.integer(0)), static_cast<uint64_t>(sum.integer(1)),
          static_cast<uint64_t>(sum.integer(2)),
          static_cast<uint64_t>(sum.integer(3) + templates.integer(0) + volumes.integer(0)),
          static_cast<uint64_t>(networks.integer(0))};
}

std::vector<TenantRecord> Store::tenants() {
  std::lock_guard lock(mutex_);
  std::vector<TenantRecord> result;
  Statement rows(db_, "SELECT name, max_vms, max_vcpus, max_memory_mib, max_disk_gib, max_networks FROM tenants ORDER BY name");
  while (rows.step())
    result.push_back({rows.text(0),
                      {rows.optionalCount(1), rows.optionalCount(2), rows.optionalCount(3), rows.optionalCount(4),
                       rows.optionalCount(5)},
                      {}});
  for (auto& tenant : result) tenant.used = usedBy(tenant.name);
  return result;
}

std::optional<TenantRecord> Store::tenant(const std::string& name) {
  for (auto& tenant : tenants())
    if (tenant.name == name) return tenant;
  return std::nullopt;
}

Outcome Store::setQuota(const std::string& tenant, const Quota& quota) {
  std::lock_guard lock(mutex_);
  Statement update(db_, "UPDATE tenants SET max_vms=?, max_vcpus=?, max_memory_mib=?, max_disk_gib=?, max_networks=? WHERE name=?");
  update.bind(1, quota.vms).bind(2, quota.vcpus).bind(3, quota.memoryMib).bind(4, quota.diskGib);
  update.bind(5, quota.networks).bind(6, tenant).step();
  if (sqlite3_changes(db_) == 0) return {Outcome::NotFound, fmt::format("no tenant {}", tenant)};
  return {};
}

Outcome Store::addToken(const std::string& hash, const std::optional<std::string>& tenant) {
  std::lock_guard lock(mutex_);
  Statement insert(db_, "INSERT INTO tokens(hash, tenant, created) VALUES(?,?,?)");
  if (!insert.bind(1, hash).bindOptionalText(2, tenant).bind(3, now()).stepUnlessConstraint())
    return {Outcome::NotFound, fmt::format("no tenant {}", tenant.value_or(""))};
  return {};
}

std::optional<Principal> Store::principalForToken(const std::string& hash) {
  std::lock_guard lock(mutex_);
  Statement row(db_, "SELECT tenant FROM tokens WHERE hash=?");
  if (!row.bind(1, hash).step()) return std::nullopt;
  if (row.isNull(0)) return Principal{true, ""};
  return Principal{false, row.text(0)};
}

Outcome Store::checkQuota(const std::string& tenant, const ResourceUse& asked) {
  Statement limits(db_, "SELECT max_vms, max_vcpus, max_memory_mib, max_disk_gib, max_networks FROM tenants WHERE name=?");
  if (!limits.bind(1, tenant).step()) return {Outcome::NotFound, fmt::format("no tenant {}", tenant)};
  ResourceUse used = usedBy(tenant);
  struct Check {
    const char* what;
    std::optional<uint64_t> limit;
    uint64_t used, asked;
  } checks[] = {{"vms", limits.optionalCount(0), used.vms, asked.vms},
                {"vcpus", limits.optionalCount(1), used.vcpus, asked.vcpus},
                {"memory_mib", limits.optionalCount(2), used.memoryMib, asked.memoryMib},
                {"disk_gib", limits.optionalCount(3), used.diskGib, asked.diskGib},
                {"networks", limits.optionalCount(4), used.networks, asked.networks}};
  for (const auto& check : checks)
    if (check.limit && check.asked > 0 && check.used + check.asked > *check.limit)
      return {Outcome::OverQuota, overQuota(check.what, check.used, check.asked, *check.limit)};
  return {};
}

Outcome Store::defineVm(const VmSpec& spec, bool pending) {
  {
    std::lock_guard lock(mutex_);
    Transaction transaction(db_);
    Statement existing(db_, "SELECT 1 FROM vms WHERE name=?");
    if (existing.bind(1, spec.name).step())
      return {Outcome::Conflict, fmt::format("a VM named {} already exists", spec.name)};
    if (!spec.templateName.empty()) {  // checked again here: a template deleted meanwhile backs no new VM
      Statement backing(db_, "SELECT 1 FROM templates WHERE name=? AND ready=1");
      if (!backing.bind(1, spec.templateName).step())
        return {Outcome::NotFound, fmt::format("no template {}", spec.templateName)};
    }
    if (auto quota = checkQuota(spec.tenant, resourcesOf(spec)); !quota.ok()) return quota;
    Statement insert(db_,
                     "INSERT INTO vms(name, tenant, spec, cpus, memory_mib, disk_gib, changed, state) "
                     "VALUES(?,?,?,?,?,?,?,?)");
    insert.bind(1, spec.name)
        .bind(2, spec.tenant)
        .bind(3, toJson(spec).dump())
        .bind(4, int64_t{spec.cpus})
        .bind(5, static_cast<int64_t>(spec.memoryMib))
        .bind(6, static_cast<int64_t>(spec.diskGib))
        .bind(7, now())
        .bind(8, std::string(pending ? kCreating : "stopped"))
        .step();
    transaction.commit();
  }
  if (!pending) notify(spec.name, "defined");
  return {};
}

void Store::finishDefinition(const std::string& name) {
  {
    std::lock_guard lock(mutex_);
    Statement update(db_, "UPDATE vms SET state='stopped', changed=? WHERE name=? AND state=?");
    update.bind(1, now()).bind(2, name).bind(3, std::string(kCreating)).step();
  }
  notify(name, "defined");
}

void Store::dropPendingVm(const std::string& name) {
  std::lock_guard lock(mutex_);
  Statement remove(db_, fmt::format("DELETE FROM vms WHERE name=? AND NOT {}", kShown).c_str());
  remove.bind(1, name).step();
}

std::vector<std::string> Store::dropPendingVms() {
  std::lock_guard lock(mutex_);
  Transaction transaction(db_);
  std::vector<std::string> names;
  Statement rows(db_, fmt::format("SELECT name FROM vms WHERE NOT {} ORDER BY name", kShown).c_str());
  while (rows.step()) names.push_back(rows.text(0));
  Statement remove(db_, fmt::format("DELETE FROM vms WHERE NOT {}", kShown).c_str());
  remove.step();
  transaction.commit();
  return names;
}

std::optional<VmRecord> Store::vm(const std::string& name) {
  std::lock_guard lock(mutex_);
  Statement row(db_, fmt::format("SELECT {} FROM vms WHERE name=? AND {}", kVmColumns, kShown).c_str());
  if (!row.bind(1, name).step()) return std::nullopt;
  return readVm(row);
}

std::vector<VmRecord> Store::vms(const std::optional<std::string>& tenant) {
  std::lock_guard lock(mutex_);
  Statement rows(
      db_, fmt::format("SELECT {} FROM vms WHERE (?1 IS NULL OR tenant=?1) AND {} ORDER BY name", kVmColumns, kShown)
               .c_str());
  rows.bindOptionalText(1, tenant);
  std::vector<VmRecord> result;
  while (rows.step()) result.push_back(readVm(rows));
  return result;
}

Outcome Store::claimStart(const std::string& name) {
  {
    std::lock_guard lock(mutex_);
    Statement update(db_, "UPDATE vms SET state='starting', changed=? WHERE name=? AND state='stopped'");
    update.bind(1, now()).bind(2, name).step();
    if (sqlite3_changes(db_) != 1) return {Outcome::Conflict, fmt::format("{} is not stopped", name)};
  }
  notify(name, vmStateName(VmState::Starting));
  return {};
}

void Store::recordRunning(const std::string& name, pid_t pid, uint64_t pidStartTime, const std::string& apiSocket) {
  {
    std::lock_guard lock(mutex_);
    Statement update(db_,
                     "UPDATE vms SET state='running', pid=?, pid_start=?, api_socket=?, last_exit=NULL, "
                     "metered_ticks=0, metered_rx=0, metered_tx=0, metered_at=?4, changed=?4 WHERE name=?5");
    update.bind(1, int64_t{pid}).bind(2, static_cast<int64_t>(pidStartTime)).bind(3, apiSocket).bind(4, now());
    update.bind(5, name).step();
  }
  notify(name, vmStateName(VmState::Running));
}

void Store::recordState(const std::string& name, VmState state) {
  {
    std::lock_guard lock(mutex_);
    Statement update(db_, "UPDATE vms SET state=?, changed=? WHERE name=?");
    update.bind(1, std::string(vmStateName(state))).bind(2, now()).bind(3, name).step();
  }
  notify(name, vmStateName(state));
}

void Store::recordStopped(const std::string& name, std::optional<int> exitStatus) {
  {
    std::lock_guard lock(mutex_);
    Statement update(db_,
                     "UPDATE vms SET state='stopped', pid=NULL, pid_start=NULL, api_socket=NULL, last_exit=?, "
                     "changed=? WHERE name=?");
    update.bind(1, exitStatus).bind(2, now()).bind(3, name).step();
  }
  notify(name, vmStateName(VmState::Stopped));
}

Outcome Store::deleteVm(const std::string& name, bool pending) {
  std::string tenant;
  {
    std::lock_guard lock(mutex_);
    Transaction transaction(db_);
    Statement state(db_, fmt::format("SELECT state, tenant FROM vms WHERE name=? AND {}", kShown).c_str());
    if (!state.bind(1, name).step()) return {Outcome::NotFound, fmt::format("no VM {}", name)};
    if (state.text(0) != "stopped")
      return {Outcome::Conflict, fmt::format("{} is {}: stop it first", name, state.text(0))};
    tenant = state.text(1);
    Statement remove(db_, pending ? "UPDATE vms SET state='deleting' WHERE name=?" : "DELETE FROM vms WHERE name=?");
    remove.bind(1, name).step();
    transaction.commit();
  }
  if (vmObserver_) vmObserver_({name, tenant, "deleted"});
  return {};
}

void Store::notify(const std::string& vm, const std::string& state) {
  if (!vmObserver_) return;
  std::string tenant;
  {
    std::lock_guard lock(mutex_);
    Statement row(db_, "SELECT tenant FROM vms WHERE name=?");
    if (!row.bind(1, vm).step()) return;
    tenant = row.text(0);
  }
  vmObserver_({vm, tenant, state});
}

namespace {

constexpr const char* kTemplateColumns = "name, tenant, path, virtual_size, disk_gib, ready";

TemplateRecord readTemplate(const Statement& row) {
  return {row.text(0),
          row.isNull(1) ? std::nullopt : std::optional(row.text(1)),
          row.text(2),
          static_cast<uint64_t>(row.integer(3)),
          static_cast<uint64_t>(row.integer(4)),
          row.integer(5) != 0};
}

}  // namespace

Outcome Store::reserveTemplate(const TemplateRecord& record) {
  std::lock_guard lock(mutex_);
  Transaction transaction(db_);
  Statement existing(db_, "SELECT 1 FROM templates WHERE name=?");
  if (existing.bind(1, record.name).step())
    return {Outcome::Conflict, fmt::format("a template named {} already exists", record.name)};
  if (record.tenant)
    if (auto quota = checkQuota(*record.tenant, {0, 0, 0, record.diskGib}); !quota.ok()) return quota;
  Statement insert(db_,
                   "INSERT INTO templates(name, tenant, path, virtual_size, disk_gib, ready, created) "
                   "VALUES(?,?,?,?,?,0,?)");
  insert.bind(1, record.name).bindOptionalText(2, record.tenant).bind(3, record.path);
  insert.bind(4, static_cast<int64_t>(record.virtualSize)).bind(5, static_cast<int64_t>(record.diskGib));
  insert.bind(6, now()).step();
  transaction.commit();
  return {};
}

void Store::markTemplateReady(const std::string& name) {
  std::lock_guard lock(mutex_);
  Statement update(db_, "UPDATE templates SET ready=1 WHERE name=?");
  update.bind(1, name).step();
}

void Store::removeUnreadyTemplate(const std::string& name) {
  std::lock_guard lock(mutex_);
  Statement remove(db_, "DELETE FROM templates WHERE name=? AND ready=0");
  remove.bind(1, name).step();
}

std::optional<TemplateRecord> Store::templateNamed(const std::string& name) {
  std::lock_guard lock(mutex_);
  Statement row(db_, fmt::format("SELECT {} FROM templates WHERE name=?", kTemplateColumns).c_str());
  if (!row.bind(1, name).step()) return std::nullopt;
  return readTemplate(row);
}

std::vector<TemplateRecord> Store::templates(const std::optional<std::string>& tenant) {
  std::lock_guard lock(mutex_);
  Statement rows(db_, fmt::format("SELECT {} FROM templates WHERE ?1 IS NULL OR tenant IS NULL OR tenant=?1 "
                                  "ORDER BY name",
                                  kTemplateColumns)
                          .c_str());
  rows.bindOptionalText(1, tenant);
  std::vector<TemplateRecord> result;
  while (rows.step()) result.push_back(readTemplate(rows));
  return result;
}

Outcome Store::deleteTemplate(const std::string& name) {
  std::lock_guard lock(mutex_);
  Transaction transaction(db_);
  Statement row(db_, "SELECT ready FROM templates WHERE name=?");
  if (!row.bind(1, name).step()) return {Outcome::NotFound, fmt::format("no template {}", name)};
  if (row.integer(0) == 0) return {Outcome::Conflict, fmt::format("template {} is still being imported", name)};
  Statement clones(db_, "SELECT name FROM vms WHERE json_extract(spec, '$.template')=? ORDER BY name LIMIT 1");
  if (clones.bind(1, name).step())
    return {Outcome::Conflict, fmt::format("template {} backs VM {}: delete its VMs first", name, clones.text(0))};
  Statement remove(db_, "DELETE FROM templates WHERE name=?");
  remove.bind(1, name).step();
  transaction.commit();
  return {};
}

std::vector<std::string> Store::dropUnreadyTemplates() {
  std::lock_guard lock(mutex_);
  Transaction transaction(db_);
  std::vector<std::string> paths;
  Statement rows(db_, "SELECT path FROM templates WHERE ready=0");
  while (rows.step()) paths.push_back(rows.text(0));
  exec("DELETE FROM templates WHERE ready=0");
  transaction.commit();
  return paths;
}

int64_t Store::addOperation(const std::string& kind, const std::string& target, const std::string& tenant) {
  std::lock_guard lock(mutex_);
  Statement insert(db_, "INSERT INTO operations(kind, target, tenant, created) VALUES(?,?,?,?)");
  insert.bind(1, kind).bind(2, target).bind(3, tenant).bind(4, now()).step();
  return sqlite3_last_insert_rowid(db_);
}

void Store::finishOperation(const OperationRecord& record) {
  std::lock_guard lock(mutex_);
  Statement update(db_, "UPDATE operations SET state=?, done=?, total=?, error=? WHERE id=?");
  update.bind(1, record.state).bind(2, static_cast<int64_t>(record.done)).bind(3, static_cast<int64_t>(record.total));
  update.bind(4, record.error).bind(5, record.id).step();
}

std::optional<OperationRecord> Store::operation(int64_t id) {
  std::lock_guard lock(mutex_);
  Statement row(db_, "SELECT id, kind, target, tenant, state, done, total, error FROM operations WHERE id=?");
  if (!row.bind(1, id).step()) return std::nullopt;
  return OperationRecord{row.integer(0), row.text(1), row.text(2), row.text(3), row.text(4),
                         static_cast<uint64_t>(row.integer(5)), static_cast<uint64_t>(row.integer(6)), row.text(7)};
}

void Store::failRunningOperations(const std::string& reason) {
  std::lock_guard lock(mutex_);
  Statement update(db_, "UPDATE operations SET state='failed', error=? WHERE state='running'");
  update.bind(1, reason).step();
}

int64_t Store::pruneOperations(int64_t createdBefore) {
  std::lock_guard lock(mutex_);
  // The newest row stays: ids are rowids, and SQLite numbers a new row after the highest one left, so ids never repeat.
  Statement prune(db_,
                  "DELETE FROM operations WHERE state<>'running' AND created<? AND id<(SELECT MAX(id) FROM operations)");
  prune.bind(1, createdBefore).step();
  return sqlite3_changes(db_);
}

UsageRecord& UsageRecord::operator+=(const UsageRecord& later) {
  start = std::min(start, later.start);
  end = std::max(end, later.end);
  vcpuSeconds += later.vcpuSeconds;
  memoryGibHours += later.memoryGibHours;
  diskGibHours += later.diskGibHours;
  rxBytes += later.rxBytes;
  txBytes += later.txBytes;
  return *this;
}

void Store::addUsage(const UsageRecord& record, const MeteredCounters& counters) {
  std::lock_guard lock(mutex_);
  Transaction transaction(db_);
  Statement mark(db_, "UPDATE vms SET metered_ticks=?, metered_rx=?, metered_tx=?, metered_at=? WHERE name=?");
  mark.bind(1, static_cast<int64_t>(counters.cpuTicks)).bind(2, static_cast<int64_t>(counters.rxBytes));
  mark.bind(3, static_cast<int64_t>(counters.txBytes)).bind(4, record.end).bind(5, record.vm).step();
  Statement insert(db_,
                   "INSERT INTO usage(vm, tenant, start, end, vcpu_seconds, memory_gib_hours, disk_gib_hours, "
                   "rx_bytes, tx_bytes) VALUES(?,?,?,?,?,?,?,?,?)");
  insert.bind(1, record.vm).bind(2, record.tenant).bind(3, record.start).bind(4, record.end);
  insert.bind(5, record.vcpuSeconds).bind(6, record.memoryGibHours).bind(7, record.diskGibHours);
  insert.bind(8, static_cast<int64_t>(record.rxBytes)).bind(9, static_cast<int64_t>(record.txBytes)).step();
  transaction.commit();
}

std::vector<UsageRecord> Store::usage(int64_t from, int64_t to, const std::optional<std::string>& tenant) {
  std::lock_guard lock(mutex_);
  Statement rows(db_,
                 "SELECT vm, tenant, start, end, vcpu_seconds, memory_gib_hours, disk_gib_hours, rx_bytes, tx_bytes "
                 "FROM usage WHERE end > ?1 AND start < ?2 AND (?3 IS NULL OR tenant=?3) ORDER BY start, vm");
  rows.bind(1, from).bind(2, to).bindOptionalText(3, tenant);
  std::vector<UsageRecord> result;
  while (rows.step())
    result.push_back({rows.text(0), rows.text(1), rows.integer(2), rows.integer(3), rows.real(4), rows.real(5),
                      rows.real(6), static_cast<uint64_t>(rows.integer(7)), static_cast<uint64_t>(rows.integer(8))});
  return result;
}

}  // namespace strata::control
