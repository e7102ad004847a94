#include "control/api_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <regex>
#include <thread>

#include <fmt/core.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "base/log.h"
#include "control/api_call.h"
#include "control/template_snapshot.h"
#include "control/templates.h"
#include "control/token.h"

namespace strata::control {

using nlohmann::json;

namespace {

constexpr size_t kMaxBody = 64 * 1024;

// Debian's httplib listens with a backlog of 5; a UNIX socket refuses connects
// beyond it at once (EAGAIN), so a burst of clients would see failures.
class ListeningServer : public httplib::Server {
 public:
  bool raiseBacklog() { return ::listen(svr_sock_, SOMAXCONN) == 0; }
};
const std::string kDefaultTenant = "default";

json quotaJson(const Quota& quota) {
  auto value = [](const std::optional<uint64_t>& limit) { return limit ? json(*limit) : json(nullptr); };
  return {{"vms", value(quota.vms)},
          {"vcpus", value(quota.vcpus)},
          {"memory_mib", value(quota.memoryMib)},
          {"disk_gib", value(quota.diskGib)},
          {"networks", value(quota.networks)}};
}

json tenantJson(const TenantRecord& tenant) {
  return {{"name", tenant.name},
          {"quota", quotaJson(tenant.quota)},
          {"used",
           {{"vms", tenant.used.vms},
            {"vcpus", tenant.used.vcpus},
            {"memory_mib", tenant.used.memoryMib},
            {"disk_gib", tenant.used.diskGib},
            {"networks", tenant.used.networks}}}};
}

json templateJson(const TemplateRecord& record, const std::string& dataDir) {
  return {{"name", record.name},
          {"tenant", record.tenant ? json(*record.tenant) : json(nullptr)},
          {"virtual_size", record.virtualSize},
          {"disk_gib", record.diskGib},
          {"state", record.ready ? "ready" : "importing"},
          {"snapshot", readTemplateSnapshot(dataDir, record.name).has_value()}};
}

json operationJson(const Operation& operation) {
  json result = {{"id", operation.id},
                 {"kind", operation.kind},
                 {"target", operation.target},
                 {"state", operationStateName(operation.state)},
                 {"done", operation.done},
                 {"total", operation.total}};
  if (!operation.error.empty()) result["error"] = operation.error;
  return result;
}

json vmJson(const VmRecord& vm, const VmPaths& paths) {
  json result = toJson(vm.spec);
  result["state"] = vmStateName(vm.state);
  result["console"] = paths.console;
  if (vm.state != VmState::Stopped) result["pid"] = vm.pid;
  if (vm.lastExit) result["last_exit"] = *vm.lastExit;
  return result;
}

// "/vms/{name}/start" -> "/vms/([^/]+)/start"
std::string routePattern(const std::string& path) {
  return std::regex_replace(path, std::regex(R"(\{[a-z_]+\})"), "([^/]+)");
}

std::string bearerToken(const httplib::Request& request) {
  std::string header = request.get_header_value("Authorization");
  const std::string prefix = "Bearer ";
  return header.rfind(prefix, 0) == 0 ? header.substr(prefix.size()) : std::string{};
}

Result<std::optional<uint64_t>> quotaLimit(const json& body, const char* field) {
  if (!body.contains(field) || body[field].is_null()) return std::optional<uint64_t>{};
  auto limit = nonNegativeInteger(body[field]);
  if (!limit) return Error{fmt::format("{}: expected a non-negative integer or null", field)};
  return limit;
}

Result<int64_t> timeParameter(const httplib::Request& request, const char* name, int64_t fallback) {
  if (!request.has_param(name)) return fallback;
  std::string text = request.get_param_value(name);
  try {
    size_t used = 0;
    int64_t value = std::stoll(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  return Error{fmt::format("{}: expected UNIX seconds, got '{}'", name, text)};
}

}  // namespace

struct ApiServer::Handlers {
  ApiServer& server;
  Store& store() { return server.store_; }
  Supervisor& supervisor() { return server.supervisor_; }

  // The VM the caller may see, or a 404 reply and nullopt.
  std::optional<VmRecord> visibleVm(Call& call, const std::string& name) {
    auto vm = isValidName(name) ? store().vm(name) : std::nullopt;
    if (!vm || (!call.principal.admin && vm->spec.tenant != call.principal.tenant)) {
      call.fail(404, fmt::format("no VM {}", name));
      return std::nullopt;
    }
    return vm;
  }

  bool mayUseTenant(const Call& call, const std::string& tenant) {
    return call.principal.admin || call.principal.tenant == tenant;
  }

  void listVms(Call& call) {
    json list = json::array();
    auto tenant = call.principal.admin ? std::nullopt : std::optional(call.principal.tenant);
    for (const auto& vm : store().vms(tenant)) list.push_back(vmJson(vm, supervisor().pathsOf(vm.spec.name)));
    call.reply(200, list);
  }

  void defineVm(Call& call) {
    auto body = call.body();
    if (!body) return;
    std::string tenant = call.principal.admin ? kDefaultTenant : call.principal.tenant;
    if (body->contains("tenant")) {
      if (!(*body)["tenant"].is_string()) return call.fail(400, "tenant: expected a string");
      tenant = (*body)["tenant"].get<std::string>();
      if (!mayUseTenant(call, tenant)) return call.fail(403, fmt::format("this token may define VMs only for tenant {}", call.principal.tenant));
    }
    PathPolicy policy{call.principal.admin, server.options_.dataDir + "/tenants/" + tenant};
    auto spec = parseVmSpec(*body, tenant, policy);
    if (!spec) return call.fail(400, spec.error().message);
    if (!server.storage_.resolveVolumes(call, *spec) || !server.networks_.resolveNetworks(call, *spec)) return;
    std::optional<TemplateRecord> backing;
    VmPaths paths = supervisor().pathsOf(spec->name);
    std::optional<TemplateSnapshot> snapshot;
    std::unique_lock snapshotLock(server.templateSnapshots_, std::defer_lock);
    if (!spec->templateName.empty()) {
      backing = usableTemplate(call, spec->templateName, tenant);
      if (!backing) return;
      snapshotLock.lock();  // the snapshot read stays in use: a replacement's clean-up sees this VM
      snapshot = readTemplateSnapshot(server.options_.dataDir, backing->name);
      if (snapshot) {
        if (auto resumed = resumeTemplateSnapshot(*body, *snapshot, paths, *spec); !resumed)
          return call.fail(400, resumed.error().message);
      } else {
        spec->disks.insert(spec->disks.begin(), DiskSpec{paths.clonedDisk, "qcow2", false});
      }
      spec->diskGib += backing->diskGib;
    }
    // A linked clone's definition stays pending (unseen) until its disk is whole: a failure, or a
    // killed daemon (which drops pending definitions when it starts again), takes it back. A VM
    // resuming a template snapshot makes its disk at its first start.
    const bool makesDiskNow = backing && !snapshot;
    if (auto outcome = store().defineVm(*spec, makesDiskNow); !outcome.ok()) return call.refuse(outcome);
    if (snapshotLock.owns_lock()) snapshotLock.unlock();
    if (makesDiskNow) {
      std::error_code error;
      std::filesystem::create_directories(paths.dir, error);
      auto cloned = error ? Result<void>(Error{paths.dir + ": " + error.message()})
                          : createLinkedClone(backing->path, backing->virtualSize, paths.clonedDisk);
      if (!cloned) {
        store().dropPendingVm(spec->name);
        std::filesystem::remove_all(paths.dir, error);
        return call.fail(500, fmt::format("{}: linked clone of {}: {}", spec->name, backing->name, cloned.error().message));
      }
      store().finishDefinition(spec->name);
    }
    call.reply(201, vmJson(*store().vm(spec->name), paths));
  }

  // A VM from a template's snapshot gets the snapshot's board; its first start
  // makes its disk (the clone) in its own directory, later ones boot that disk.
  static Result<void> resumeTemplateSnapshot(const json& body, const TemplateSnapshot& snapshot, const VmPaths& paths,
                                             VmSpec& spec) {
    for (const char* field : {"kernel", "initrd", "append", "disks", "nets"})
      if (body.contains(field))
        return Error{fmt::format("{}: template {} resumes its snapshot, whose board it is", field, spec.templateName)};
    if (body.contains("cpus") && spec.cpus != snapshot.cpus)
      return Error{fmt::format("cpus: template {}'s snapshot has {}", spec.templateName, snapshot.cpus)};
    if (body.contains("memory_mib") && spec.memoryMib != snapshot.memoryMib)
      return Error{fmt::format("memory_mib: template {}'s snapshot has {}", spec.templateName, snapshot.memoryMib)};
    spec.cpus = snapshot.cpus;
    spec.memoryMib = snapshot.memoryMib;
    spec.kernel = snapshot.kernel, spec.initrd = snapshot.initrd, spec.append = snapshot.append;
    spec.disks = {DiskSpec{paths.dir + "/clone-disk0.qcow2", "qcow2", false}};
    spec.restoreFrom = snapshot.dir;
    return {};
  }

  // A ready template `tenant` may make VMs from (its own or a shared one), or a 404/409 reply and nullopt.
  std::optional<TemplateRecord> usableTemplate(Call& call, const std::string& name, const std::string& tenant) {
    auto record = store().templateNamed(name);
    if (!record || (record->tenant && *record->tenant != tenant) ||
        (!call.principal.admin && record->tenant && *record->tenant != call.principal.tenant)) {
      call.fail(404, fmt::format("no template {}", name));
      return std::nullopt;
    }
    if (!record->ready) {
      call.fail(409, fmt::format("template {} is still being imported", name));
      return std::nullopt;
    }
    return record;
  }

  void getVm(Call& call) {
    auto vm = visibleVm(call, call.arg(1));
    if (!vm) return;
    json result = vmJson(*vm, supervisor().pathsOf(vm->spec.name));
    if (vm->state == VmState::Running || vm->state == VmState::Paused) {
      auto live = supervisor().vmRequest(*vm, "GET", "/vm");
      if (live && live->status == 200) result["vm_api"] = json::parse(live->body, nullptr, false);
    }
    call.reply(200, result);
  }

  void replyWithVm(Call& call, const std::string& name) {
    call.reply(200, vmJson(*store().vm(name), supervisor().pathsOf(name)));
  }

  void startVm(Call& call) {
    auto vm = visibleVm(call, call.arg(1));
    if (!vm) return;
    if (!vm->spec.networks.empty())  // the host switch may have ended since the VM was defined
      if (auto running = server.networks_.ensureSwitch(); !running) return call.fail(500, running.error().message);
    if (auto claimed = store().claimStart(vm->spec.name); !claimed.ok()) return call.refuse(claimed);
    if (auto started = supervisor().start(vm->spec.name); !started) return call.fail(500, started.error().message);
    replyWithVm(call, vm->spec.name);
  }

  // Lifecycle calls on a VM that must be running; a refusal names the state.
  std::optional<VmRecord> runningVm(Call& call) {
    auto vm = visibleVm(call, call.arg(1));
    if (vm && (vm->state == VmState::Stopped || vm->state == VmState::Starting)) {
      call.fail(409, fmt::format("{} is {}", vm->spec.name, vmStateName(vm->state)));
      return std::nullopt;
    }
    return vm;
  }

  void shutdownVm(Call& call) {
    auto vm = runningVm(call);
    if (!vm) return;
    auto grace = server.options_.shutdownGrace;
    if (call.request.has_param("timeout")) {
      auto seconds = timeParameter(call.request, "timeout", 0);
      if (!seconds || *seconds < 0 || *seconds > 3600) return call.fail(400, "timeout: expected 0 to 3600 seconds");
      grace = std::chrono::seconds(*seconds);
    }
    if (auto done = supervisor().shutdown(vm->spec.name, grace); !done) return call.fail(500, done.error().message);
    replyWithVm(call, vm->spec.name);
  }

  void destroyVm(Call& call) {
    auto vm = runningVm(call);
    if (!vm) return;
    if (auto done = supervisor().destroy(vm->spec.name); !done) return call.fail(500, done.error().message);
    replyWithVm(call, vm->spec.name);
  }

  // pause, resume, reset: passed to the VM's own API; its refusal is passed back.
  void changeState(Call& call, const std::string& action, VmState after) {
    auto vm = runningVm(call);
    if (!vm) return;
    auto reply = supervisor().changeState(vm->spec.name, action);
    if (!reply) return call.fail(502, fmt::format("{}: its API socket did not answer: {}", vm->spec.name, reply.error().message));
    if (reply->status >= 300) {
      json error = json::parse(reply->body, nullptr, false);
      std::string message = error.is_object() && error.contains("error") ? error["error"].dump() : reply->body;
      return call.fail(reply->status, fmt::format("{}: {} refused: {}", vm->spec.name, action, message));
    }
    store().recordState(vm->spec.name, after);
    replyWithVm(call, vm->spec.name);
  }

  // What the dashboard graphs: the VM process's CPU time and resident memory, and the guest's retired instructions.
  void vmStats(Call& call) {
    auto vm = runningVm(call);
    if (!vm) return;
    auto usage = supervisor().usageOf(*vm);
    if (!usage) return call.fail(409, fmt::format("{} is not running", vm->spec.name));
    json result = {{"name", vm->spec.name},
                   {"state", vmStateName(vm->state)},
                   {"cpu_seconds", usage->cpuSeconds},
                   {"resident_bytes", usage->residentBytes},
                   {"memory_mib", vm->spec.memoryMib}};
    auto stats = supervisor().vmRequest(*vm, "GET", "/vm/stats");
    json harts = stats && stats->status == 200 ? json::parse(stats->body, nullptr, false)["harts"] : json();
    uint64_t instret = 0;
    if (harts.is_array())
      for (const auto& hart : harts) instret += hart.value("instret", uint64_t{0});
    result["instret"] = instret;
    call.reply(200, result);
  }

  // Fields of an optional request body: each known one checked by `read`, any other refused; false after a 400 reply.
  static bool readOptionalBody(Call& call, std::initializer_list<const char*> known,
                               const std::function<std::optional<std::string>(const std::string&, const json&)>& read) {
    if (call.request.body.empty()) return true;
    auto body = call.body();
    if (!body) return false;
    for (const auto& [key, value] : body->items()) {
      bool isKnown = false;
      for (const char* field : known) isKnown = isKnown || key == field;
      auto error = isKnown ? read(key, value) : std::optional(fmt::format("unknown field '{}'", key));
      if (error) return call.fail(400, *error), false;
    }
    return true;
  }

  // Into DATADIR/vms/NAME/snapshots/ID (ID: UNIX seconds) on an operation's
  // thread; the VM runs on unless {"resume": false}. `POST /vms/NAME/clone` makes VMs from it.
  void snapshotVm(Call& call) {
    auto vm = runningVm(call);
    if (!vm) return;
    bool resume = true;
    bool compress = false;
    if (!readOptionalBody(call, {"resume", "compress"}, [&](const std::string& field, const json& value) -> std::optional<std::string> {
          if (!value.is_boolean()) return field + ": expected true or false";
          (field == "resume" ? resume : compress) = value.get<bool>();
          return std::nullopt;
        }))
      return;
    std::string id = std::to_string(::time(nullptr));
    std::string dir = snapshotDirOf(vm->spec.name, id);
    std::error_code error;
    std::filesystem::create_directories(std::filesystem::path(dir).parent_path(), error);
    if (error || !std::filesystem::create_directory(dir, error))  // the claim on the id
      return call.fail(error ? 500 : 409, error ? fmt::format("{}: {}", dir, error.message())
                                                : fmt::format("{} has a snapshot {} already; try again in a second", vm->spec.name, id));
    Supervisor& supervisor = this->supervisor();
    std::string operation = server.operations_.start(
        "snapshot", vm->spec.name, vm->spec.tenant, [&supervisor, vm = *vm, dir, resume, compress](const auto& progress) -> Result<void> {
          progress(0, 1);
          auto reply = supervisor.vmRequest(vm, "PUT", "/vm/snapshot",
                                            json{{"dir", dir}, {"resume", resume}, {"compress", compress}}.dump());
          std::optional<std::string> failure;
          if (!reply) failure = fmt::format("{}: its API socket did not answer: {}", vm.spec.name, reply.error().message);
          else if (reply->status >= 300) failure = fmt::format("{}: snapshot refused: {}", vm.spec.name, reply->body);
          if (!failure) return {};
          std::error_code ignored;
          std::filesystem::remove_all(dir, ignored);
          return Error{*failure};
        });
    if (!resume) store().recordState(vm->spec.name, VmState::Paused);
    call.reply(202, json{{"operation", operationJson(*server.operations_.find(operation))},
                         {"name", vm->spec.name},
                         {"snapshot", id},
                         {"dir", dir}});
  }

  std::string snapshotDirOf(const std::string& vm, const std::string& id) {
    return fmt::format("{}/snapshots/{}", supervisor().pathsOf(vm).dir, id);
  }

  // A new VM of the same owner from one of a VM's snapshots: its first start
  // resumes the snapshot as a clone (own linked-clone disks, new MACs and
  // generation id); it counts against the quota like any definition.
  void cloneVm(Call& call) {
    auto source = visibleVm(call, call.arg(1));
    if (!source) return;
    std::string name, snapshot;
    if (!readOptionalBody(call, {"name", "snapshot"}, [&](const std::string& key, const json& value) -> std::optional<std::string> {
          if (!value.is_string() || !isValidName(value.get<std::string>()))
            return fmt::format("{}: expected 1-63 letters, digits, '-' or '_' (not first)", key);
          (key == "name" ? name : snapshot) = value.get<std::string>();
          return std::nullopt;
        }))
      return;
    if (name.empty() || snapshot.empty()) return call.fail(400, R"(expected {"name": "NEW-VM", "snapshot": "ID"})");
    std::string dir = snapshotDirOf(source->spec.name, snapshot);
    if (!std::filesystem::exists(dir + "/state"))
      return call.fail(404, fmt::format("no snapshot {} of VM {}", snapshot, source->spec.name));
    VmSpec spec = source->spec;
    spec.name = name;
    spec.restoreFrom = dir;
    VmPaths paths = supervisor().pathsOf(name);
    for (size_t i = 0; i < spec.disks.size(); ++i)
      spec.disks[i] = DiskSpec{fmt::format("{}/clone-disk{}.qcow2", paths.dir, i), "qcow2", spec.disks[i].readOnly};
    if (auto outcome = store().defineVm(spec); !outcome.ok()) return call.refuse(outcome);
    call.reply(201, vmJson(*store().vm(name), paths));
  }

  // Starts the VM's own live migration (its API checks the body), then follows
  // it on an operation's thread: progress in bytes sent of those known to send.
  void migrateVm(Call& call) {
    auto vm = runningVm(call);
    if (!vm) return;
    auto body = call.body();
    if (!body) return;
    auto started = supervisor().vmRequest(*vm, "PUT", "/vm/migrate", body->dump());
    if (!started) return call.fail(502, fmt::format("{}: its API socket did not answer: {}", vm->spec.name, started.error().message));
    if (started->status >= 300) {
      json error = json::parse(started->body, nullptr, false);
      std::string message = error.is_object() && error.contains("error") ? error["error"].dump() : started->body;
      return call.fail(started->status < 500 ? 400 : 502, fmt::format("{}: migration refused: {}", vm->spec.name, message));
    }
    Supervisor& supervisor = this->supervisor();
    std::string id = server.operations_.start(
        "migrate", vm->spec.name, vm->spec.tenant, [&supervisor, vm = *vm](const auto& progress) -> Result<void> {
          for (;;) {
            auto reply = supervisor.vmRequest(vm, "GET", "/vm/migrate");
            if (!reply) return Error{fmt::format("lost {}'s API while migrating: {}", vm.spec.name, reply.error().message)};
            json state = json::parse(reply->body, nullptr, false);
            if (!state.is_object()) return Error{fmt::format("{}: unreadable migration progress", vm.spec.name)};
            uint64_t sent = state.value("bytes_sent", uint64_t{0});
            progress(sent, sent + state.value("dirty_pages_remaining", uint64_t{0}) * 4096);
            std::string now = state.value("state", "");
            if (now == "completed") return {};
            if (now != "active") return Error{fmt::format("migration {}: {}", now, state.value("error", ""))};
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
          }
        });
    call.reply(202, json{{"operation", operationJson(*server.operations_.find(id))}, {"name", vm->spec.name}});
  }

  void deleteVm(Call& call) {
    auto vm = visibleVm(call, call.arg(1));
    if (!vm) return;
    std::string snapshots = supervisor().pathsOf(vm->spec.name).dir + "/snapshots/";
    for (const auto& other : store().vms())
      if (other.spec.restoreFrom.rfind(snapshots, 0) == 0)
        return call.fail(409, fmt::format("VM {} is a clone of {}'s snapshot: delete it first", other.spec.name, vm->spec.name));
    // The name stays taken until the files are gone: a new VM of that name cannot lose its own to this removal.
    if (auto outcome = store().deleteVm(vm->spec.name, true); !outcome.ok()) return call.refuse(outcome);
    std::error_code ignored;
    std::filesystem::remove_all(supervisor().pathsOf(vm->spec.name).dir, ignored);
    store().dropPendingVm(vm->spec.name);
    if (!vm->spec.templateName.empty() && !vm->spec.restoreFrom.empty()) {  // it may have been a replaced snapshot's last user
      std::lock_guard lock(server.templateSnapshots_);
      removeReplacedTemplateSnapshots(server.options_.dataDir, vm->spec.templateName, resumedByAnyVm(store()));
    }
    call.reply(200, json{{"deleted", vm->spec.name}});
  }

  void listTenants(Call& call) {
    json list = json::array();
    for (const auto& tenant : store().tenants())
      if (mayUseTenant(call, tenant.name)) list.push_back(tenantJson(tenant));
    call.reply(200, list);
  }

  void addTenant(Call& call) {
    auto body = call.body();
    if (!body) return;
    if (!body->contains("name") || !(*body)["name"].is_string() || !isValidName((*body)["name"].get<std::string>()))
      return call.fail(400, "name: expected 1-63 letters, digits, '-' or '_' (not first)");
    std::string name = (*body)["name"].get<std::string>();
    if (auto outcome = store().addTenant(name); !outcome.ok()) return call.refuse(outcome);
    std::error_code ignored;
    std::filesystem::create_directories(server.options_.dataDir + "/tenants/" + name, ignored);
    call.reply(201, tenantJson(*store().tenant(name)));
  }

  std::optional<TenantRecord> visibleTenant(Call& call) {
    std::string name = call.arg(1);
    auto tenant = isValidName(name) && mayUseTenant(call, name) ? store().tenant(name) : std::nullopt;
    if (!tenant) call.fail(404, fmt::format("no tenant {}", name));
    return tenant;
  }

  void getTenant(Call& call) {
    if (auto tenant = visibleTenant(call)) call.reply(200, tenantJson(*tenant));
  }

  void addToken(Call& call) {
    auto tenant = visibleTenant(call);
    if (!tenant) return;
    auto token = newToken();
    if (!token) return call.fail(500, token.error().message);
    if (auto outcome = store().addToken(tokenHash(*token), tenant->name); !outcome.ok()) return call.refuse(outcome);
    call.reply(201, json{{"tenant", tenant->name}, {"token", *token}});
  }

  void setQuota(Call& call) {
    auto tenant = visibleTenant(call);
    if (!tenant) return;
    auto body = call.body();
    if (!body) return;
    for (const auto& [key, value] : body->items())
      if (key != "vms" && key != "vcpus" && key != "memory_mib" && key != "disk_gib" && key != "networks")
        return call.fail(400, fmt::format("unknown field '{}'", key));
    Quota quota;
    for (auto [field, target] : {std::pair{"vms", &quota.vms}, std::pair{"vcpus", &quota.vcpus},
                                 std::pair{"memory_mib", &quota.memoryMib}, std::pair{"disk_gib", &quota.diskGib},
                                 std::pair{"networks", &quota.networks}}) {
      auto limit = quotaLimit(*body, field);
      if (!limit) return call.fail(400, limit.error().message);
      *target = *limit;
    }
    if (auto outcome = store().setQuota(tenant->name, quota); !outcome.ok()) return call.refuse(outcome);
    call.reply(200, tenantJson(*store().tenant(tenant->name)));
  }

  // Per VM totals of the records overlapping [from, to).
  void usage(Call& call) {
    auto from = timeParameter(call.request, "from", 0);
    auto to = timeParameter(call.request, "to", INT64_MAX);
    if (!from) return call.fail(400, from.error().message);
    if (!to) return call.fail(400, to.error().message);
    std::string format = call.request.has_param("format") ? call.request.get_param_value("format") : "json";
    if (format != "json" && format != "csv") return call.fail(400, "format: expected json or csv");
    auto tenant = call.principal.admin ? std::nullopt : std::optional(call.principal.tenant);
    std::map<std::string, UsageRecord> totals;
    for (const auto& record : store().usage(*from, *to, tenant)) {
      auto [entry, fresh] = totals.try_emplace(record.vm, record);
      if (!fresh) entry->second += record;
    }
    if (format == "csv") {
      std::string csv = "vm,tenant,start,end,vcpu_seconds,memory_gib_hours,disk_gib_hours,rx_bytes,tx_bytes\n";
      for (const auto& [vm, total] : totals)
        csv += fmt::format("{},{},{},{},{:.3f},{:.6f},{:.6f},{},{}\n", vm, total.tenant, total.start, total.end,
                           total.vcpuSeconds, total.memoryGibHours, total.diskGibHours, total.rxBytes, total.txBytes);
      call.response.status = 200;
      call.response.set_content(csv, "text/csv");
      return;
    }
    json list = json::array();
    for (const auto& [vm, total] : totals)
      list.push_back({{"vm", vm},
                      {"tenant", total.tenant},
                      {"start", total.start},
                      {"end", total.end},
                      {"vcpu_seconds", total.vcpuSeconds},
                      {"memory_gib_hours", total.memoryGibHours},
                      {"disk_gib_hours", total.diskGibHours},
                      {"rx_bytes", total.rxBytes},
                      {"tx_bytes", total.txBytes}});
    call.reply(200, list);
  }

  // The template the caller may see (its tenant's or a shared one), or a 404 reply and nullopt.
  std::optional<TemplateRecord> visibleTemplate(Call& call) {
    std::string name = call.arg(1);
    auto record = isValidName(name) ? store().templateNamed(name) : std::nullopt;
    if (!record || (!call.principal.admin && record->tenant && *record->tenant != call.principal.tenant)) {
      call.fail(404, fmt::format("no template {}", name));
      return std::nullopt;
    }
    return record;
  }

  void listTemplates(Call& call) {
    json list = json::array();
    auto tenant = call.principal.admin ? std::nullopt : std::optional(call.principal.tenant);
    for (const auto& record : store().templates(tenant)) list.push_back(templateJson(record, server.options_.dataDir));
    call.reply(200, list);
  }

  void getTemplate(Call& call) {
    if (auto record = visibleTemplate(call)) call.reply(200, templateJson(*record, server.options_.dataDir));
  }

  // Reserves the name and the disk quota, then copies the image on an operation's thread: 202 with its id.
  void importTemplate(Call& call) {
    auto body = call.body();
    if (!body) return;
    for (const auto& [key, value] : body->items())
      if (key != "name" && key != "path" && key != "format" && key != "tenant")
        return call.fail(400, fmt::format("unknown field '{}'", key));
    auto text = [&](const char* field) -> std::optional<std::string> {
      if (!body->contains(field)) return std::string{};
      if (!(*body)[field].is_string()) return call.fail(400, fmt::format("{}: expected a string", field)), std::nullopt;
      return (*body)[field].get<std::string>();
    };
    auto name = text("name"), path = text("path"), format = text("format"), owner = text("tenant");
    if (!name || !path || !format || !owner) return;
    if (!isValidName(*name)) return call.fail(400, "name: expected 1-63 letters, digits, '-' or '_' (not first)");
    // An admin's template without a tenant is shared by all; a tenant's is its own.
    std::optional<std::string> tenant = owner->empty() ? std::nullopt : owner;
    if (!call.principal.admin) {
      if (tenant && *tenant != call.principal.tenant)
        return call.fail(403, fmt::format("this token may import templates only for tenant {}", call.principal.tenant));
      tenant = call.principal.tenant;
    }
    if (tenant && !isValidName(*tenant)) return call.fail(404, fmt::format("no tenant {}", *tenant));
    PathPolicy policy{call.principal.admin, server.options_.dataDir + "/tenants/" + tenant.value_or("")};
    auto source = inspectTemplateSource(*path, *format, policy);
    if (!source) return call.fail(400, source.error().message);
    constexpr uint64_t kGib = uint64_t{1} << 30;
    TemplateRecord record{*name, tenant, server.options_.dataDir + "/templates/" + *name + ".qcow2",
                          source->virtualSize, (source->virtualSize + kGib - 1) / kGib, false};
    if (auto outcome = store().reserveTemplate(record); !outcome.ok()) return call.refuse(outcome);
    Store& store = this->store();
    std::string id = server.operations_.start(
        "import", record.name, tenant.value_or(""), [&store, source = *source, record](const auto& progress) {
          std::error_code ignored;
          std::filesystem::remove(record.path, ignored);  // left by an import a killed daemon did not finish
          auto imported = importTemplateImage(source, record.path, progress);
          if (imported) {
            store.markTemplateReady(record.name);
            return imported;
          }
          std::filesystem::remove(record.path, ignored);
          store.removeUnreadyTemplate(record.name);
          return imported;
        });
    call.reply(202, json{{"operation", operationJson(*server.operations_.find(id))}, {"template", templateJson(record, server.options_.dataDir)}});
  }

  // Boots the template once, runs the body's "commands" on its console, and
  // keeps a snapshot of it paused there: VMs made from it then resume instead of booting.
  void snapshotTemplate(Call& call) {
    auto record = visibleTemplate(call);
    if (!record) return;
    if (!record->tenant && !call.principal.admin)
      return call.fail(403, fmt::format("template {} is shared: only an admin may snapshot it", record->name));
    if (!record->ready) return call.fail(409, fmt::format("template {} is still being imported", record->name));
    json body = json::object();
    if (!call.request.body.empty()) {
      auto parsed = call.body();
      if (!parsed) return;
      body = *parsed;
    }
    std::string commands;
    bool replace = false;
    for (const auto& [key, value] : body.items()) {
      if (key == "replace") {
        if (!value.is_boolean()) return call.fail(400, "replace: expected true or false");
        replace = value.get<bool>();
      } else if (key == "commands") {
        if (!value.is_string() || value.get<std::string>().size() > 4096)
          return call.fail(400, "commands: expected a string of at most 4096 bytes");
        commands = value.get<std::string>();
      } else if (key != "kernel" && key != "initrd" && key != "append" && key != "cpus" && key != "memory_mib") {
        return call.fail(400, fmt::format("unknown field '{}'", key));
      }
    }
    json bootFields = body;
    bootFields.erase("commands");
    bootFields.erase("replace");
    bootFields["name"] = record->name;
    std::string tenant = record->tenant.value_or(kDefaultTenant);
    PathPolicy policy{call.principal.admin, server.options_.dataDir + "/tenants/" + tenant};
    auto boot = parseVmSpec(bootFields, tenant, policy);
    if (!boot) return call.fail(400, boot.error().message);
    const std::string& dataDir = server.options_.dataDir;
    if (auto current = readTemplateSnapshot(dataDir, record->name)) {
      if (!replace)
        return call.fail(409, fmt::format("template {} already has a snapshot; replace it with {{\"replace\": true}}", record->name));
      std::string dependents;
      for (const auto& vm : store().vms())
        if (vm.spec.restoreFrom == current->dir) dependents += (dependents.empty() ? "" : ", ") + vm.spec.name;
      if (!dependents.empty())
        return call.fail(409, fmt::format("template {}'s snapshot is resumed by VMs {}: delete them first", record->name, dependents));
    }
    auto dir = nextTemplateSnapshotDir(dataDir, record->name);
    std::error_code error;
    if (!dir || !std::filesystem::create_directory(*dir, error))  // the claim: one snapshot taken at a time
      return error ? call.fail(500, fmt::format("{}: {}", *dir, error.message()))
                   : call.fail(409, fmt::format("template {} has a snapshot being taken", record->name));
    TemplateSnapshotJob job{supervisor().strataBinary(), dataDir, *dir, *record, *boot, commands};
    // The snapshot it replaces goes once the new one is whole (and no VM defined meanwhile resumes it).
    std::string id = server.operations_.start(
        "snapshot", record->name, record->tenant.value_or(""),
        [job, &mutex = server.templateSnapshots_, inUse = resumedByAnyVm(store())](const auto& progress) {
          auto taken = takeTemplateSnapshot(job, progress);
          std::lock_guard lock(mutex);
          if (taken) removeReplacedTemplateSnapshots(job.dataDir, job.source.name, inUse);
          return taken;
        });
    call.reply(202, json{{"operation", operationJson(*server.operations_.find(id))},
                         {"template", templateJson(*record, server.options_.dataDir)}});
  }

  void deleteTemplate(Call& call) {
    auto record = visibleTemplate(call);
    if (!record) return;
    if (!record->tenant && !call.principal.admin)
      return call.fail(403, fmt::format("template {} is shared: only an admin may delete it", record->name));
    if (auto outcome = store().deleteTemplate(record->name); !outcome.ok()) return call.refuse(outcome);
    std::error_code ignored;
    std::filesystem::remove(record->path, ignored);
    for (const auto& dir : templateSnapshotDirs(server.options_.dataDir, record->name)) std::filesystem::remove_all(dir, ignored);
    call.reply(200, json{{"deleted", record->name}});
  }

  void getOperation(Call& call) {
    auto operation = server.operations_.find(call.arg(1));
    if (!operation || (!call.principal.admin && operation->tenant != call.principal.tenant))
      return call.fail(404, fmt::format("no operation {}", call.arg(1)));
    call.reply(200, operationJson(*operation));
  }

  // Server-Sent Events: the caller's tenant's VM changes and operation outcomes, as they happen.
  void streamEvents(Call& call) {
    auto tenant = call.principal.admin ? std::nullopt : std::optional(call.principal.tenant);
    auto subscriber = server.events_->subscribe(tenant);
    if (!subscriber) return call.fail(503, "too many event stream clients; try again later");
    std::shared_ptr<EventBus> bus = server.events_;
    call.response.status = 200;
    call.response.set_header("Cache-Control", "no-cache");
    call.response.set_chunked_content_provider(
        "text/event-stream",
        [bus, subscriber, first = true](size_t, httplib::DataSink& sink) mutable {
          // A comment at once (the client knows it is subscribed), and after each quiet second: only a
          // failed write shows that the client hung up, and until then it holds a thread and a subscriber slot.
          auto events = first ? std::vector<std::string>{": subscribed\n\n"} : bus->take(*subscriber, std::chrono::seconds(1));
          if (events.empty()) events.push_back(":\n\n");
          first = false;
          for (const auto& event : events)
            if (!sink.write(event.data(), event.size())) return false;
          return true;
        },
        [bus, subscriber](bool) { bus->unsubscribe(subscriber); });
  }
};

namespace {

struct RouteEntry {
  ApiRoute route;
  Access access;
  std::function<void(ApiServer::Handlers&, Call&)> handle;
};

}  // namespace

// The VM, template, tenant and operation routes, which both the server and apiRoutes() read
// (storageRoutes() and networkRoutes() hold the pools, volumes and networks).
static const std::vector<RouteEntry>& routeTable() {
  using H = ApiServer::Handlers;
  static const std::vector<RouteEntry> table = {
      {{"GET", "/openapi.json"}, Access::Anyone,
       [](H&, Call& call) { call.response.set_content(openApiDocument(), "application/json"); }},
      {{"GET", "/vms"}, Access::Token, &H::listVms},
      {{"POST", "/vms"}, Access::Token, &H::defineVm},
      {{"GET", "/vms/{name}"}, Access::Token, &H::getVm},
      {{"DELETE", "/vms/{name}"}, Access::Token, &H::deleteVm},
      {{"POST", "/vms/{name}/start"}, Access::Token, &H::startVm},
      {{"POST", "/vms/{name}/shutdown"}, Access::Token, &H::shutdownVm},
      {{"POST", "/vms/{name}/destroy"}, Access::Token, &H::destroyVm},
      {{"POST", "/vms/{name}/reboot"}, Access::Token,
       [](H& h, Call& call) { h.changeState(call, "reset", VmState::Running); }},
      {{"POST", "/vms/{name}/pause"}, Access::Token,
       [](H& h, Call& call) { h.changeState(call, "pause", VmState::Paused); }},
      {{"POST", "/vms/{name}/resume"}, Access::Token,
       [](H& h, Call& call) { h.changeState(call, "resume", VmState::Running); }},
      {{"GET", "/vms/{name}/stats"}, Access::Token, &H::vmStats},
      {{"POST", "/vms/{name}/snapshot"}, Access::Token, &H::snapshotVm},
      {{"POST", "/vms/{name}/clone"}, Access::Token, &H::cloneVm},
      {{"POST", "/vms/{name}/migrate"}, Access::Token, &H::migrateVm},
      // WebFront serves the WebSocket upgrade itself; a plain GET gets here.
      {{"GET", "/vms/{name}/console"}, Access::Token,
       [](H&, Call& call) { call.fail(426, "the console is a WebSocket: ask with Upgrade: websocket"); }},
      {{"GET", "/tenants"}, Access::Token, &H::listTenants},
      {{"POST", "/tenants"}, Access::Admin, &H::addTenant},
      {{"GET", "/tenants/{tenant}"}, Access::Token, &H::getTenant},
      {{"POST", "/tenants/{tenant}/tokens"}, Access::Admin, &H::addToken},
      {{"PUT", "/tenants/{tenant}/quota"}, Access::Admin, &H::setQuota},
      {{"GET", "/usage"}, Access::Token, &H::usage},
      {{"GET", "/templates"}, Access::Token, &H::listTemplates},
      {{"POST", "/templates"}, Access::Token, &H::importTemplate},
      {{"GET", "/templates/{template}"}, Access::Token, &H::getTemplate},
      {{"DELETE", "/templates/{template}"}, Access::Token, &H::deleteTemplate},
      {{"POST", "/templates/{template}/snapshot"}, Access::Token, &H::snapshotTemplate},
      {{"GET", "/operations/{id}"}, Access::Token, &H::getOperation},
      {{"GET", "/events"}, Access::Token, &H::streamEvents},
  };
  return table;
}

std::vector<ApiRoute> apiRoutes() {
  std::vector<ApiRoute> routes;
  for (const auto& entry : routeTable()) routes.push_back(entry.route);
  for (const auto& entry : storageRoutes()) routes.push_back(entry.route);
  for (const auto& entry : networkRoutes()) routes.push_back(entry.route);
  return routes;
}

ApiServer::ApiServer(Store& store, Supervisor& supervisor, Options options)
    : store_(store),
      supervisor_(supervisor),
      options_(std::move(options)),
      server_(std::make_unique<ListeningServer>()),
      operations_(store, [events = events_](const Operation& operation) {
        events->publish(operation.tenant, "operation", operationJson(operation));
      }),
      storage_(store, events_, options_.dataDir),
      networks_(store, events_, options_.dataDir, supervisor.strataBinary()) {
  store_.setVmObserver([events = events_](const VmChange& change) {
    events->publish(change.tenant, "vm", json{{"vm", change.vm}, {"tenant", change.tenant}, {"state", change.state}});
  });
  handlers_ = std::make_shared<Handlers>(Handlers{*this});
  serveRoutesOn(*server_);
}

void ApiServer::serveRoutesOn(httplib::Server& server) {
  // Each event stream holds a worker thread for as long as its client listens.
  server.new_task_queue = [] { return new httplib::ThreadPool(EventBus::kMaxSubscribers + 16); };
  auto serve = [&](const ApiRoute& route, Access access, std::function<void(Call&)> handle) {
    auto handler = [this, access, handle](const httplib::Request& request, httplib::Response& response) {
      Call call{{}, request, response};
      if (access != Access::Anyone) {
        std::string token = bearerToken(request);
        auto principal = token.empty() ? std::nullopt : store_.principalForToken(tokenHash(token));
        if (!principal) {
          response.set_header("WWW-Authenticate", "Bearer");
          return call.fail(401, token.empty() ? "missing bearer token" : "unknown token");
        }
        if (access == Access::Admin && !principal->admin) return call.fail(403, "this needs an admin token");
        call.principal = *principal;
      }
      handle(call);
    };
    std::string pattern = routePattern(route.path);
    if (route.method == "GET") server.Get(pattern, handler);
    else if (route.method == "POST") server.Post(pattern, handler);
    else if (route.method == "PUT") server.Put(pattern, handler);
    else server.Delete(pattern, handler);
  };
  for (const auto& entry : routeTable())
    serve(entry.route, entry.access, [handlers = handlers_, &entry](Call& call) { entry.handle(*handlers, call); });
  for (const auto& entry : storageRoutes())
    serve(entry.route, entry.access, [this, &entry](Call& call) { (storage_.*entry.handle)(call); });
  for (const auto& entry : networkRoutes())
    serve(entry.route, entry.access, [this, &entry](Call& call) { (networks_.*entry.handle)(call); });
  server.set_payload_max_length(kMaxBody);
  // Unmatched routes and library-level refusals (413, 400) get a JSON error too.
  server.set_error_handler([](const httplib::Request& request, httplib::Response& response) {
    if (!response.body.empty()) return;
    std::string message = response.status == 404 ? fmt::format("no route for {} {}", request.method, request.path)
                                                  : fmt::format("HTTP {}", response.status);
    response.set_content(jsonText(json{{"error", message}}), "application/json");
  });
  server.set_exception_handler([](const httplib::Request&, httplib::Response& response, std::exception_ptr thrown) {
    std::string message = "internal error";
    try {
      std::rethrow_exception(thrown);
    } catch (const std::exception& error) {
      message = error.what();
    } catch (...) {
    }
    log::error("API: {}", message);
    response.status = 500;
    response.set_content(jsonText(json{{"error", message}}), "application/json");
  });
}

ApiServer::~ApiServer() = default;

Result<void> ApiServer::listen(const std::string& socketPath) {
  ::unlink(socketPath.c_str());
  mode_t previous = ::umask(0177);  // the socket is created 0600, with no window in between
  server_->set_address_family(AF_UNIX);
  bool bound = server_->bind_to_port(socketPath, 80);
  ::umask(previous);
  if (!bound || !static_cast<ListeningServer&>(*server_).raiseBacklog()) return errnoError(socketPath);
  return {};
}

void ApiServer::mountStatic(const std::string& prefix, const std::string& dir) { server_->set_mount_point(prefix, dir); }

void ApiServer::recoverResources() {
  storage_.recoverInterruptedChanges();
  if (!store_.networks(std::nullopt).empty())
    if (auto running = networks_.ensureSwitch(); !running) log::error("networks: {}", running.error().message);
}

void ApiServer::run() { server_->listen_after_bind(); }

void ApiServer::stop() { server_->stop(); }

namespace {
std::unique_ptr<ApiService> makeApiServer(Store& store, Supervisor& supervisor, ApiService::Options options) {
  return std::make_unique<ApiServer>(store, supervisor, std::move(options));
}
[[maybe_unused]] const bool kProvided = (makeApiService.provide(&makeApiServer), true);
}  // namespace

}  // namespace strata::control
