// The store's pools, volumes and networks (declared in store.h), and the
// migration that gives data directories from before them their tables and the
// tenants' network quota column.
#include <nlohmann/json.hpp>

#include "control/store.h"
#include "control/store_sql.h"

namespace strata::control {
namespace {

using nlohmann::json;
using sql::Statement;
using sql::Transaction;
using sql::now;

constexpr const char* kResourceSchema = R"sql(
CREATE TABLE IF NOT EXISTS pools(
  name TEXT PRIMARY KEY,
  pvs TEXT NOT NULL, thin_mib INTEGER NOT NULL,
  created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS volumes(
  name TEXT PRIMARY KEY,
  tenant TEXT NOT NULL REFERENCES tenants(name),
  pool TEXT NOT NULL REFERENCES pools(name),
  type TEXT NOT NULL, size_mib INTEGER NOT NULL, origin TEXT NOT NULL DEFAULT '',
  ready INTEGER NOT NULL DEFAULT 0,
  created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS networks(
  name TEXT PRIMARY KEY,
  tenant TEXT NOT NULL REFERENCES tenants(name),
  vlan INTEGER NOT NULL UNIQUE,
  created INTEGER NOT NULL);
)sql";

constexpr unsigned kFirstVlan = 100, kLastVlan = 4094;

constexpr const char* kVolumeColumns = "name, tenant, pool, type, size_mib, origin, ready";

StorageVolume readVolume(const Statement& row) {
  return {row.text(0), row.text(1), row.text(2), row.text(3), static_cast<uint64_t>(row.integer(4)), row.text(5),
          row.integer(6) != 0};
}

StoragePool readPool(const Statement& row) {
  StoragePool pool{row.text(0), {}, static_cast<uint64_t>(row.integer(2))};
  for (const auto& path : json::parse(row.text(1))) pool.pvs.push_back(path.get<std::string>());
  return pool;
}

// The first name a one-parameter query returns (what still uses `name`), or nullopt.
std::optional<std::string> firstName(sqlite3* db, const char* sql, const std::string& name) {
  Statement rows(db, sql);
  if (!rows.bind(1, name).step()) return std::nullopt;
  return rows.text(0);
}

}  // namespace

void Store::migrateResources() {
  exec(kResourceSchema);
  addColumnIfMissing("tenants", "max_networks", "INTEGER");
}

Outcome Store::addPool(const StoragePool& pool) {
  std::lock_guard lock(mutex_);
  Statement insert(db_, "INSERT INTO pools(name, pvs, thin_mib, created) VALUES(?,?,?,?)");
  insert.bind(1, pool.name).bind(2, json(pool.pvs).dump()).bind(3, static_cast<int64_t>(pool.thinMib)).bind(4, now());
  if (!insert.stepUnlessConstraint()) return {Outcome::Conflict, fmt::format("a pool named {} already exists", pool.name)};
  return {};
}

std::vector<StoragePool> Store::pools() {
  std::lock_guard lock(mutex_);
  std::vector<StoragePool> result;
  Statement rows(db_, "SELECT name, pvs, thin_mib FROM pools ORDER BY name");
  while (rows.step()) result.push_back(readPool(rows));
  return result;
}

std::optional<StoragePool> Store::pool(const std::string& name) {
  std::lock_guard lock(mutex_);
  Statement row(db_, "SELECT name, pvs, thin_mib FROM pools WHERE name=?");
  if (!row.bind(1, name).step()) return std::nullopt;
  return readPool(row);
}

Outcome Store::reserveVolume(const StorageVolume& volume) {
  std::lock_guard lock(mutex_);
  Transaction transaction(db_);
  Statement existing(db_, "SELECT 1 FROM volumes WHERE name=?");
  if (existing.bind(1, volume.name).step())
    return {Outcome::Conflict, fmt::format("a volume named {} already exists", volume.name)};
  Statement pool(db_, "SELECT 1 FROM pools WHERE name=?");
  if (!pool.bind(1, volume.pool).step()) return {Outcome::NotFound, fmt::format("no pool {}", volume.pool)};
  if (auto quota = checkQuota(volume.tenant, {.diskGib = diskGibOf(volume)}); !quota.ok()) return quota;
  Statement insert(db_,
                   "INSERT INTO volumes(name, tenant, pool, type, size_mib, origin, ready, created) "
                   "VALUES(?,?,?,?,?,?,0,?)");
  insert.bind(1, volume.name).bind(2, volume.tenant).bind(3, volume.pool).bind(4, volume.type);
  insert.bind(5, static_cast<int64_t>(volume.sizeMib)).bind(6, volume.origin).bind(7, now()).step();
  transaction.commit();
  return {};
}

void Store::markVolumeReady(const std::string& name) {
  std::lock_guard lock(mutex_);
  Statement update(db_, "UPDATE volumes SET ready=1 WHERE name=?");
  update.bind(1, name).step();
}

void Store::dropVolume(const std::string& name) {
  std::lock_guard lock(mutex_);
  Statement remove(db_, "DELETE FROM volumes WHERE name=?");
  remove.bind(1, name).step();
}

Outcome Store::setVolumeSize(const std::string& name, uint64_t sizeMib) {
  std::lock_guard lock(mutex_);
  Transaction transaction(db_);
  Statement row(db_, std::string("SELECT ").append(kVolumeColumns).append(" FROM volumes WHERE name=?").c_str());
  if (!row.bind(1, name).step()) return {Outcome::NotFound, fmt::format("no volume {}", name)};
  StorageVolume before = readVolume(row), after = before;
  after.sizeMib = sizeMib;
  if (diskGibOf(after) > diskGibOf(before))
    if (auto quota = checkQuota(before.tenant, {.diskGib = diskGibOf(after) - diskGibOf(before)}); !quota.ok())
      return quota;
  Statement update(db_, "UPDATE volumes SET size_mib=? WHERE name=?");
  update.bind(1, static_cast<int64_t>(sizeMib)).bind(2, name).step();
  transaction.commit();
  return {};
}

std::optional<StorageVolume> Store::volume(const std::string& name) {
  std::lock_guard lock(mutex_);
  Statement row(db_, std::string("SELECT ").append(kVolumeColumns).append(" FROM volumes WHERE name=?").c_str());
  if (!row.bind(1, name).step()) return std::nullopt;
  return readVolume(row);
}

std::vector<StorageVolume> Store::volumes(const std::optional<std::string>& tenant) {
  std::lock_guard lock(mutex_);
  std::vector<StorageVolume> result;
  Statement rows(db_, std::string("SELECT ")
                          .append(kVolumeColumns)
                          .append(" FROM volumes WHERE ?1 IS NULL OR tenant=?1 ORDER BY name")
                          .c_str());
  rows.bindOptionalText(1, tenant);
  while (rows.step()) result.push_back(readVolume(rows));
  return result;
}

Outcome Store::beginVolumeRemoval(const std::string& name) {
  std::lock_guard lock(mutex_);
  Transaction transaction(db_);
  Statement row(db_, "SELECT ready FROM volumes WHERE name=?");
  if (!row.bind(1, name).step()) return {Outcome::NotFound, fmt::format("no volume {}", name)};
  if (row.integer(0) == 0) return {Outcome::Conflict, fmt::format("volume {} is being changed", name)};
  if (auto vm = firstName(db_,
                          "SELECT vms.name FROM vms, json_each(vms.spec, '$.disks') AS disk "
                          "WHERE json_extract(disk.value, '$.volume')=? ORDER BY vms.name LIMIT 1",
                          name))
    return {Outcome::Conflict, fmt::format("volume {} is a disk of VM {}: delete the VM first", name, *vm)};
  if (auto snapshot = firstName(db_, "SELECT name FROM volumes WHERE origin=? ORDER BY name LIMIT 1", name))
    return {Outcome::Conflict, fmt::format("volume {} has the snapshot {}: delete it first", name, *snapshot)};
  Statement update(db_, "UPDATE volumes SET ready=0 WHERE name=?");
  update.bind(1, name).step();
  transaction.commit();
  return {};
}

std::vector<StorageVolume> Store::dropUnreadyVolumes() {
  std::lock_guard lock(mutex_);
  Transaction transaction(db_);
  std::vector<StorageVolume> dropped;
  Statement rows(db_, std::string("SELECT ").append(kVolumeColumns).append(" FROM volumes WHERE ready=0").c_str());
  while (rows.step()) dropped.push_back(readVolume(rows));
  exec("DELETE FROM volumes WHERE ready=0");
  transaction.commit();
  return dropped;
}

Outcome Store::addNetwork(NetworkRecord& network) {
  std::lock_guard lock(mutex_);
  Transaction transaction(db_);
  Statement existing(db_, "SELECT 1 FROM networks WHERE name=?");
  if (existing.bind(1, network.name).step())
    return {Outcome::Conflict, fmt::format("a network named {} already exists", network.name)};
  if (auto quota = checkQuota(network.tenant, {.networks = 1}); !quota.ok()) return quota;
  if (network.vlan == 0) {
    Statement used(db_, "SELECT vlan FROM networks WHERE vlan >= ? ORDER BY vlan");
    used.bind(1, int64_t{kFirstVlan});
    network.vlan = kFirstVlan;
    while (used.step() && static_cast<unsigned>(used.integer(0)) == network.vlan) ++network.vlan;
    if (network.vlan > kLastVlan) return {Outcome::Conflict, "every VLAN of the host switch is taken"};
  }
  Statement insert(db_, "INSERT INTO networks(name, tenant, vlan, created) VALUES(?,?,?,?)");
  insert.bind(1, network.name).bind(2, network.tenant).bind(3, int64_t{network.vlan}).bind(4, now());
  if (!insert.stepUnlessConstraint())
    return {Outcome::Conflict, fmt::format("VLAN {} belongs to another network", network.vlan)};
  transaction.commit();
  return {};
}

std::optional<NetworkRecord> Store::network(const std::string& name) {
  std::lock_guard lock(mutex_);
  Statement row(db_, "SELECT name, tenant, vlan FROM networks WHERE name=?");
  if (!row.bind(1, name).step()) return std::nullopt;
  return NetworkRecord{row.text(0), row.text(1), static_cast<unsigned>(row.integer(2))};
}

std::vector<NetworkRecord> Store::networks(const std::optional<std::string>& tenant) {
  std::lock_guard lock(mutex_);
  std::vector<NetworkRecord> result;
  Statement rows(db_, "SELECT name, tenant, vlan FROM networks WHERE ?1 IS NULL OR tenant=?1 ORDER BY name");
  rows.bindOptionalText(1, tenant);
  while (rows.step()) result.push_back({rows.text(0), rows.text(1), static_cast<unsigned>(rows.integer(2))});
  return result;
}

Outcome Store::deleteNetwork(const std::string& name) {
  std::lock_guard lock(mutex_);
  Transaction transaction(db_);
  if (auto vm = firstName(db_,
                          "SELECT vms.name FROM vms, json_each(vms.spec, '$.networks') AS network "
                          "WHERE network.value=? ORDER BY vms.name LIMIT 1",
                          name))
    return {Outcome::Conflict, fmt::format("network {} has VM {} attached: delete the VM first", name, *vm)};
  Statement remove(db_, "DELETE FROM networks WHERE name=?");
  remove.bind(1, name).step();
  if (sqlite3_changes(db_) == 0) return {Outcome::NotFound, fmt::format("no network {}", name)};
  transaction.commit();
  return {};
}

}  // namespace strata::control
