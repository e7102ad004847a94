#include "control/storage_api.h"

#include <sys/stat.h>

#include <climits>
#include <cstdlib>
#include <functional>
#include <set>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "base/event_loop.h"
#include "base/log.h"
#include "control/api_call.h"
#include "storage/volume/pool.h"
#include "storage/volume/volume_disk.h"

namespace strata::control {
namespace {

using nlohmann::json;
namespace volume = storage::volume;

constexpr size_t kMaxPvs = 16;
constexpr uint64_t kMib = uint64_t{1} << 20;
constexpr uint64_t kMaxVolumeMib = uint64_t{16} << 20;  // 16 TiB
// The pool's thin pool: a name no daemon volume can have (isValidName refuses a leading '_').
const std::string kThinPool = "_thin";
const std::string kDefaultTenant = "default";

json volumeJson(const StorageVolume& volume) {
  json result = {{"name", volume.name},         {"tenant", volume.tenant},       {"pool", volume.pool},
                 {"type", volume.type},         {"size_mib", volume.sizeMib},    {"disk_gib", diskGibOf(volume)},
                 {"state", volume.ready ? "ready" : "changing"}};
  if (!volume.origin.empty()) result["origin"] = volume.origin;
  return result;
}

json poolJson(const StoragePool& pool, bool admin) {
  json result = {{"name", pool.name}, {"thin_mib", pool.thinMib}};
  if (admin) result["pvs"] = pool.pvs;  // host paths are the admin's business
  return result;
}

// Opens the pool for writing, runs `change` and closes it again (so a VM may open it next).
Result<void> changePool(const StoragePool& pool, const std::function<Result<void>(volume::Pool&)>& change) {
  auto loop = EventLoop::create();
  if (!loop) return loop.error();
  // A VM on one of its volumes holds the pool's lock for as long as it runs.
  auto opened = volume::Pool::open(pool.pvs, {.lockWaitMs = 1000}, **loop);
  if (!opened) return Error{fmt::format("pool {}: {}", pool.name, opened.error().message)};
  return change(**opened);
}

// A PV the admin named: an existing regular file or block device, by its real path.
Result<std::string> checkedPv(const json& value) {
  if (!value.is_string()) return Error{"pvs: expected an array of absolute paths"};
  std::string path = value.get<std::string>();
  if (path.empty() || path.front() != '/' || path.find_first_of(",\n") != std::string::npos)
    return Error{fmt::format("pvs: {} is not an absolute path (without ',' or newlines)", path)};
  char resolved[PATH_MAX];
  struct stat st;
  if (!::realpath(path.c_str(), resolved) || ::stat(resolved, &st) != 0)
    return Error{fmt::format("pvs: {} does not exist", path)};
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
    return Error{fmt::format("pvs: {} is neither a regular file nor a block device", path)};
  return std::string(resolved);
}

Result<uint64_t> sizeField(const json& body, const char* field) {
  auto size = body.contains(field) ? nonNegativeInteger(body[field]) : std::nullopt;
  if (!size || *size == 0 || *size > kMaxVolumeMib)
    return Error{fmt::format("{}: expected an integer from 1 to {}", field, kMaxVolumeMib)};
  return *size;
}

}  // namespace

StorageApi::StorageApi(Store& store, std::shared_ptr<EventBus> events, std::string dataDir)
    : store_(store), events_(std::move(events)), dataDir_(std::move(dataDir)) {}

void StorageApi::publish(const StorageVolume& volume, const std::string& state) {
  events_->publish(volume.tenant, "volume", json{{"volume", volume.name}, {"tenant", volume.tenant}, {"state", state}});
}

void StorageApi::recoverInterruptedChanges() {
  for (const auto& volume : store_.dropUnreadyVolumes()) {
    auto pool = store_.pool(volume.pool);
    if (!pool) continue;
    auto removed = changePool(*pool, [&](volume::Pool& opened) -> Result<void> {
      for (const auto& record : opened.record().volumes)
        if (record.name == volume.name) return opened.removeVolume(volume.name);
      return {};
    });
    log::info("dropping the volume {} a stopped daemon left half made or removed{}", volume.name,
              removed ? "" : ": " + removed.error().message);
  }
}

std::optional<StorageVolume> StorageApi::visibleVolume(Call& call, const std::string& name) {
  auto found = isValidName(name) ? store_.volume(name) : std::nullopt;
  if (!found || (!call.principal.admin && found->tenant != call.principal.tenant)) {
    call.fail(404, fmt::format("no volume {}", name));
    return std::nullopt;
  }
  return found;
}

bool StorageApi::resolveVolumes(Call& call, VmSpec& spec) {
  std::set<std::string> pools;
  for (auto& disk : spec.disks) {
    if (disk.volume.empty()) continue;
    auto found = store_.volume(disk.volume);
    if (!found || found->tenant != spec.tenant) return call.fail(404, fmt::format("no volume {}", disk.volume)), false;
    if (!found->ready) return call.fail(409, fmt::format("volume {} is being changed", disk.volume)), false;
    // The volume manager opens a pool once per disk and locks it for one writer.
    if (!pools.insert(found->pool).second)
      return call.fail(400, fmt::format("disks: a VM may use one volume of pool {}", found->pool)), false;
    disk.path = "pool:" + found->pool + "/" + found->name;
    disk.format.clear();
    disk.readOnly = disk.readOnly || !found->origin.empty();  // snapshots are read-only
  }
  return true;
}

void StorageApi::definePool(Call& call) {
  auto body = call.body();
  if (!body) return;
  for (const auto& [key, value] : body->items())
    if (key != "name" && key != "pvs" && key != "thin_mib" && key != "force")
      return call.fail(400, fmt::format("unknown field '{}'", key));
  StoragePool pool;
  pool.name = body->value("name", json()).is_string() ? (*body)["name"].get<std::string>() : "";
  if (!isValidName(pool.name)) return call.fail(400, "name: expected 1-63 letters, digits, '-' or '_' (not first)");
  const json pvs = body->value("pvs", json());
  if (!pvs.is_array() || pvs.empty() || pvs.size() > kMaxPvs)
    return call.fail(400, fmt::format("pvs: expected 1 to {} absolute paths", kMaxPvs));
  for (const auto& value : pvs) {
    auto path = checkedPv(value);
    if (!path) return call.fail(400, path.error().message);
    pool.pvs.push_back(*path);
  }
  if (std::set(pool.pvs.begin(), pool.pvs.end()).size() != pool.pvs.size())
    return call.fail(400, "pvs: a path is named twice");
  if (body->contains("thin_mib")) {
    auto thin = sizeField(*body, "thin_mib");
    if (!thin) return call.fail(400, thin.error().message);
    pool.thinMib = *thin;
  }
  const json force = body->value("force", json(false));
  if (!force.is_boolean()) return call.fail(400, "force: expected true or false");

  std::lock_guard lock(poolMutex_);
  if (store_.pool(pool.name)) return call.fail(409, fmt::format("a pool named {} already exists", pool.name));
  auto loop = EventLoop::create();
  if (!loop) return call.fail(500, loop.error().message);
  auto created = volume::Pool::create(pool.name, pool.pvs, {.force = force.get<bool>()}, **loop);
  if (!created) return call.fail(409, fmt::format("pool {}: {}", pool.name, created.error().message));
  if (pool.thinMib > 0) {
    volume::VolumeCreateOptions thin{.type = volume::VolumeType::ThinPool, .sizeBytes = pool.thinMib * kMib};
    if (auto made = (*created)->createVolume(kThinPool, thin); !made)
      return call.fail(409, fmt::format("pool {}: its thin pool: {}", pool.name, made.error().message));
  }
  created->reset();  // closed: its lock goes
  if (auto registered = volume::writePoolRegistry(pool.name, pool.pvs); !registered)
    return call.fail(500, registered.error().message);
  if (auto outcome = store_.addPool(pool); !outcome.ok()) return call.refuse(outcome);
  call.reply(201, poolJson(pool, true));
}

void StorageApi::listPools(Call& call) {
  json list = json::array();
  for (const auto& pool : store_.pools()) list.push_back(poolJson(pool, call.principal.admin));
  call.reply(200, list);
}

// With its free space, read without the lock (so also while a VM runs on it).
void StorageApi::getPool(Call& call) {
  auto pool = isValidName(call.arg(1)) ? store_.pool(call.arg(1)) : std::nullopt;
  if (!pool) return call.fail(404, fmt::format("no pool {}", call.arg(1)));
  json result = poolJson(*pool, call.principal.admin);
  auto loop = EventLoop::create();
  if (!loop) return call.fail(500, loop.error().message);
  auto opened = volume::Pool::open(pool->pvs, {.readOnly = true}, **loop);
  if (!opened) return call.fail(500, fmt::format("pool {}: {}", pool->name, opened.error().message));
  result["extent_mib"] = (*opened)->extentSize() / kMib;
  result["free_mib"] = (*opened)->freeExtents() * (*opened)->extentSize() / kMib;
  if (pool->thinMib > 0)
    if (auto usage = (*opened)->usage(kThinPool)) result["thin_used_mib"] = usage->usedBytes / kMib;
  call.reply(200, result);
}

void StorageApi::createVolume(Call& call) {
  auto body = call.body();
  if (!body) return;
  for (const auto& [key, value] : body->items())
    if (key != "name" && key != "pool" && key != "size_mib" && key != "type" && key != "tenant")
      return call.fail(400, fmt::format("unknown field '{}'", key));
  auto text = [&](const char* field) {
    return body->value(field, json()).is_string() ? (*body)[field].get<std::string>() : std::string{};
  };
  StorageVolume created{text("name"), text("tenant"), text("pool"), text("type")};
  if (!isValidName(created.name)) return call.fail(400, "name: expected 1-63 letters, digits, '-' or '_' (not first)");
  if (!isValidName(created.pool)) return call.fail(400, "pool: expected a pool's name");
  auto size = sizeField(*body, "size_mib");
  if (!size) return call.fail(400, size.error().message);
  created.sizeMib = *size;
  if (created.tenant.empty()) created.tenant = call.principal.admin ? kDefaultTenant : call.principal.tenant;
  if (!call.principal.admin && created.tenant != call.principal.tenant)
    return call.fail(403, fmt::format("this token may create volumes only for tenant {}", call.principal.tenant));
  auto pool = store_.pool(created.pool);
  if (!pool) return call.fail(404, fmt::format("no pool {}", created.pool));
  if (created.type.empty()) created.type = pool->thinMib > 0 ? "thin" : "linear";
  auto type = volume::parseVolumeType(created.type);
  if (!type || *type == volume::VolumeType::ThinPool)
    return call.fail(400, "type: expected linear, striped, mirror, raid5, raid10 or thin");
  if (*type == volume::VolumeType::Thin && pool->thinMib == 0)
    return call.fail(409, fmt::format("pool {} has no thin pool (an admin defines it with thin_mib)", pool->name));
  makeVolume(call, created, *pool, [&](volume::Pool& opened) -> Result<void> {
    volume::VolumeCreateOptions options{.type = *type, .sizeBytes = created.sizeMib * kMib};
    if (*type == volume::VolumeType::Thin) options.thinPool = kThinPool;
    auto record = opened.createVolume(created.name, options);
    if (!record) return record.error();
    return {};
  });
}

void StorageApi::makeVolume(Call& call, StorageVolume& volume, const StoragePool& pool,
                            const std::function<Result<void>(volume::Pool&)>& make) {
  if (auto outcome = store_.reserveVolume(volume); !outcome.ok()) return call.refuse(outcome);
  std::lock_guard lock(poolMutex_);
  if (auto made = changePool(pool, make); !made) {
    store_.dropVolume(volume.name);
    return call.fail(409, made.error().message);
  }
  store_.markVolumeReady(volume.name);
  volume.ready = true;
  publish(volume, "created");
  call.reply(201, volumeJson(volume));
}

void StorageApi::listVolumes(Call& call) {
  json list = json::array();
  auto tenant = call.principal.admin ? std::nullopt : std::optional(call.principal.tenant);
  for (const auto& volume : store_.volumes(tenant)) list.push_back(volumeJson(volume));
  call.reply(200, list);
}

void StorageApi::getVolume(Call& call) {
  if (auto found = visibleVolume(call, call.arg(1))) call.reply(200, volumeJson(*found));
}

// Grows a volume (the guest sees the new size at its next boot); shrinking would cut a guest's data.
void StorageApi::resizeVolume(Call& call) {
  auto found = visibleVolume(call, call.arg(1));
  if (!found) return;
  auto body = call.body();
  if (!body) return;
  for (const auto& [key, value] : body->items())
    if (key != "size_mib") return call.fail(400, fmt::format("unknown field '{}'", key));
  auto size = sizeField(*body, "size_mib");
  if (!size) return call.fail(400, size.error().message);
  if (*size < found->sizeMib) return call.fail(400, fmt::format("size_mib: volumes only grow ({} MiB now)", found->sizeMib));
  if (!found->ready) return call.fail(409, fmt::format("volume {} is being changed", found->name));
  if (!found->origin.empty()) return call.fail(409, fmt::format("volume {} is a snapshot", found->name));
  if (auto outcome = store_.setVolumeSize(found->name, *size); !outcome.ok()) return call.refuse(outcome);
  std::lock_guard lock(poolMutex_);
  auto grown = changePool(*store_.pool(found->pool), [&](volume::Pool& opened) {
    return opened.resizeVolume(found->name, *size * kMib, false);
  });
  if (!grown) {
    store_.setVolumeSize(found->name, found->sizeMib);
    return call.fail(409, grown.error().message);
  }
  found->sizeMib = *size;
  call.reply(200, volumeJson(*found));
}

// A read-only thin snapshot, itself a volume (VMs may read it), counted in the quota at its size.
void StorageApi::snapshotVolume(Call& call) {
  auto origin = visibleVolume(call, call.arg(1));
  if (!origin) return;
  auto body = call.body();
  if (!body) return;
  for (const auto& [key, value] : body->items())
    if (key != "name") return call.fail(400, fmt::format("unknown field '{}'", key));
  StorageVolume snapshot{body->value("name", json()).is_string() ? (*body)["name"].get<std::string>() : "",
                         origin->tenant, origin->pool, "thin", origin->sizeMib, origin->name};
  if (!isValidName(snapshot.name)) return call.fail(400, "name: expected 1-63 letters, digits, '-' or '_' (not first)");
  if (origin->type != "thin") return call.fail(409, fmt::format("volume {} is not thin: only thin volumes have snapshots", origin->name));
  if (!origin->ready) return call.fail(409, fmt::format("volume {} is being changed", origin->name));
  makeVolume(call, snapshot, *store_.pool(origin->pool), [&](volume::Pool& opened) {
    return opened.snapshotVolume(origin->name, snapshot.name, false);
  });
}

void StorageApi::deleteVolume(Call& call) {
  auto found = visibleVolume(call, call.arg(1));
  if (!found) return;
  if (auto outcome = store_.beginVolumeRemoval(found->name); !outcome.ok()) return call.refuse(outcome);
  std::lock_guard lock(poolMutex_);
  auto removed = changePool(*store_.pool(found->pool), [&](volume::Pool& opened) {
    return opened.removeVolume(found->name);
  });
  if (!removed) {
    store_.markVolumeReady(found->name);
    return call.fail(409, removed.error().message);
  }
  store_.dropVolume(found->name);
  publish(*found, "deleted");
  call.reply(200, json{{"deleted", found->name}});
}

const std::vector<MemberRoute<StorageApi>>& storageRoutes() {
  using S = StorageApi;
  static const std::vector<MemberRoute<StorageApi>> table = {
      {{"GET", "/pools"}, Access::Token, &S::listPools},
      {{"POST", "/pools"}, Access::Admin, &S::definePool},
      {{"GET", "/pools/{pool}"}, Access::Token, &S::getPool},
      {{"GET", "/volumes"}, Access::Token, &S::listVolumes},
      {{"POST", "/volumes"}, Access::Token, &S::createVolume},
      {{"GET", "/volumes/{volume}"}, Access::Token, &S::getVolume},
      {{"DELETE", "/volumes/{volume}"}, Access::Token, &S::deleteVolume},
      {{"POST", "/volumes/{volume}/resize"}, Access::Token, &S::resizeVolume},
      {{"POST", "/volumes/{volume}/snapshot"}, Access::Token, &S::snapshotVolume},
  };
  return table;
}

}  // namespace strata::control
