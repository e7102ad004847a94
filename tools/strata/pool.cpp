// `strata pool`: create storage pools from physical volumes (files or block
// devices), show their state, add PVs, replace a failed or failing PV with a
// rebuild, and scrub redundant volumes. Pools are found through the registry
// (${STRATA_POOL_DIR:-/var/lib/strata/pools}/NAME.pvs) unless --pv lists the
// PVs explicitly.
#include <unistd.h>

#include <fmt/core.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/log.h"
#include "commands.h"
#include "storage/image_create.h"
#include "storage/volume/maintenance.h"
#include "storage/volume/pool_report.h"
#include "storage/volume/volume_disk.h"

namespace strata::cli {

namespace {

using namespace storage::volume;

int fail(const std::string& message) {
  std::fprintf(stderr, "strata pool: %s\n", message.c_str());
  return 1;
}

std::unique_ptr<EventLoop> makeLoop() {
  auto loop = EventLoop::create();
  if (!loop) return nullptr;
  return std::move(*loop);
}

// The registry lists every PV of the pool, present or not, by its last path.
std::vector<std::string> registryPaths(const Pool& pool) {
  std::vector<std::string> paths;
  for (const auto& pv : pool.record().pvs) paths.push_back(pv.lastPath);
  return paths;
}

void updateRegistry(const Pool& pool) {
  if (auto written = writePoolRegistry(pool.name(), registryPaths(pool)); !written)
    std::fprintf(stderr, "strata pool: warning: could not update %s: %s (pass the PVs with --pv)\n",
                 poolRegistryPath(pool.name()).c_str(), written.error().message.c_str());
}

// Progress on stderr: redrawn in place on a terminal, a line per 10% otherwise.
class ProgressLine {
 public:
  explicit ProgressLine(const char* what) : what_(what), terminal_(::isatty(STDERR_FILENO) == 1) {}
  void update(const MaintenanceProgress& p) {
    double percent = p.totalBytes ? 100.0 * static_cast<double>(p.doneBytes) / static_cast<double>(p.totalBytes) : 100;
    auto now = std::chrono::steady_clock::now();
    bool due = terminal_ ? now - last_ > std::chrono::milliseconds(200) || p.doneBytes == p.totalBytes
                         : percent - shown_ >= 10.0 || (p.doneBytes == p.totalBytes && shown_ < 100);
    if (!due) return;
    std::fprintf(stderr, "%s    %s: %5.1f%%  %s of %s  %.1f MB/s%s", terminal_ ? "\r" : "", what_, percent,
                 formatBytes(p.doneBytes).c_str(), formatBytes(p.totalBytes).c_str(), p.bytesPerSecond / 1e6,
                 terminal_ ? "" : "\n");
    std::fflush(stderr);
    last_ = now;
    shown_ = percent;
    drawn_ = true;
  }
  ~ProgressLine() {
    if (drawn_ && terminal_) std::fprintf(stderr, "\n");
  }

 private:
  const char* what_;
  bool terminal_;
  bool drawn_ = false;
  double shown_ = -100;
  std::chrono::steady_clock::time_point last_{};
};

struct CreateArgs {
  std::string name;
  std::vector<std::string> pvs;
  std::string extentSize = "4M";
  bool force = false;
};

int runCreate(const CreateArgs& args) {
  auto extent = storage::parseSize(args.extentSize);
  if (!extent) return fail(extent.error().message);
  if (auto n = checkName("pool", args.name); !n) return fail(n.error().message);
  if (!args.force && ::access(poolRegistryPath(args.name).c_str(), F_OK) == 0)
    return fail(fmt::format("pool {} is already registered ({}); pick another name or pass --force", args.name,
                            poolRegistryPath(args.name)));
  auto loop = makeLoop();
  if (!loop) return fail("cannot create an event loop");
  auto pool = Pool::create(args.name, args.pvs, {.extentSize = *extent, .force = args.force}, *loop);
  if (!pool) return fail(pool.error().message);
  updateRegistry(**pool);
  uint64_t extents = 0;
  for (const auto& pv : (*pool)->record().pvs) extents += pv.extentCount;
  std::printf("pool %s created: %zu physical volumes, %llu extents of %s (%s)\n", args.name.c_str(),
              (*pool)->record().pvs.size(), static_cast<unsigned long long>(extents), formatBytes(*extent).c_str(),
              formatBytes(extents * *extent).c_str());
  return 0;
}

int runStatus(const std::string& name, const std::vector<std::string>& pvs) {
  std::vector<std::string> names;
  if (!name.empty()) {
    names.push_back(name);
  } else if (!pvs.empty()) {
    names.push_back("");
  } else {
    names = listRegisteredPools();
    if (names.empty()) return fail(fmt::format("no pools registered in {}", poolRegistryDir()));
  }
  auto loop = makeLoop();
  if (!loop) return fail("cannot create an event loop");
  int code = 0;
  for (const auto& poolName : names) {
    // Read-only and unlocked, so it works while a VM uses the pool.
    auto pool = openPoolByName(poolName, pvs, {.readOnly = true}, *loop);
    if (!pool) {
      code = fail(pool.error().message);
      continue;
    }
    std::fputs(formatPoolStatus(**pool).c_str(), stdout);
    PoolSummary summary = summarizePool(**pool);
    if ((summary.degraded || summary.failed) && code == 0) code = 2;
  }
  return code;
}

int runAdd(const std::string& name, const std::string& pv, bool force, const std::vector<std::string>& pvs) {
  auto loop = makeLoop();
  if (!loop) return fail("cannot create an event loop");
  auto pool = openPoolByName(name, pvs, {}, *loop);
  if (!pool) return fail(pool.error().message);
  if (auto added = (*pool)->addPhysicalVolume(pv, force); !added) return fail(added.error().message);
  updateRegistry(**pool);
  const auto& record = (*pool)->record().pvs.back();
  std::printf("added %s to pool %s as PV #%zu (%llu extents)\n", pv.c_str(), name.c_str(),
              (*pool)->record().pvs.size() - 1, static_cast<unsigned long long>(record.extentCount));
  return 0;
}

int runReplace(const std::string& name, const std::string& oldPv, const std::string& newPv, bool force,
               const std::vector<std::string>& pvs) {
  auto loop = makeLoop();
  if (!loop) return fail("cannot create an event loop");
  auto pool = openPoolByName(name, pvs, {}, *loop);
  if (!pool) return fail(pool.error().message);
  ProgressLine progress("rebuilding");
  auto report = replacePhysicalVolume(**pool, oldPv, newPv, force,
                                      [&](const MaintenanceProgress& p) { progress.update(p); });
  if (!report) return fail(report.error().message);
  updateRegistry(**pool);
  double mbps = report->seconds > 0 ? static_cast<double>(report->bytes) / report->seconds / 1e6 : 0;
  std::printf("replaced PV #%u of pool %s with %s: %s %s in %.2f s (%.1f MB/s)\n", report->pv, name.c_str(),
              newPv.c_str(), report->copied ? "copied" : "rebuilt", formatBytes(report->bytes).c_str(),
              report->seconds, mbps);
  for (const auto& v : report->zeroedVolumes)
    std::printf("warning: volume %s had no redundancy; its extents on the old PV are lost (now zeroes)\n", v.c_str());
  for (const auto& rows : report->atRisk)
    std::printf("warning: rebuilt from parity left unverified by an unclean shutdown, may be wrong: %s\n", rows.c_str());
  return 0;
}

int runScrub(const std::string& name, bool checkOnly, const std::vector<std::string>& pvs) {
  auto loop = makeLoop();
  if (!loop) return fail("cannot create an event loop");
  auto pool = openPoolByName(name, pvs, {.readOnly = checkOnly}, *loop);
  if (!pool) return fail(pool.error().message);
  ProgressLine progress("scrubbing");
  auto started = std::chrono::steady_clock::now();
  auto report = scrubPool(**pool, !checkOnly, [&](const MaintenanceProgress& p) { progress.update(p); });
  if (!report) return fail(report.error().message);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("scrubbed pool %s: %s checked in %.2f s; mirror mismatches %llu, parity mismatches %llu, repaired %llu\n",
              name.c_str(), formatBytes(report->bytesChecked).c_str(), seconds,
              static_cast<unsigned long long>(report->mirrorMismatches),
              static_cast<unsigned long long>(report->parityMismatches),
              static_cast<unsigned long long>(report->repaired));
  for (const auto& skipped : report->skipped) std::printf("skipped %s: replace the failed PV first\n", skipped.c_str());
  uint64_t found = report->mirrorMismatches + report->parityMismatches;
  return found > report->repaired ? 2 : 0;
}

int runFail(const std::string& name, const std::string& pv, const std::vector<std::string>& pvs) {
  auto loop = makeLoop();
  if (!loop) return fail("cannot create an event loop");
  auto pool = openPoolByName(name, pvs, {}, *loop);
  if (!pool) return fail(pool.error().message);
  auto index = findPhysicalVolume(**pool, pv);
  if (!index) return fail(index.error().message);
  (*pool)->failPhysicalVolume(*index);
  if (auto c = (*pool)->commit(); !c) return fail(c.error().message);
  std::printf("PV #%u of pool %s marked failed\n", *index, name.c_str());
  return 0;
}

void addPvOption(CLI::App* command, std::vector<std::string>& pvs) {
  command->add_option("--pv", pvs, "A physical volume of the pool (repeat; default: the pool registry)");
}

}  // namespace

void addPoolCommands(CLI::App& app, CommandStatus& status) {
  auto* pool = app.add_subcommand("pool", "Storage pools: physical volumes aggregated into extents for volumes");
  pool->require_subcommand(1);
  pool->footer(fmt::format("Pools are registered in {}/NAME.pvs (set STRATA_POOL_DIR to move it).", poolRegistryDir()));

  auto create = std::make_shared<CreateArgs>();
  auto* createCommand = pool->add_subcommand("create", "Label physical volumes and create a pool on them");
  createCommand->add_option("name", create->name, "Pool name")->required();
  createCommand->add_option("pvs", create->pvs, "Files or block devices to use")->required();
  createCommand->add_option("--extent-size", create->extentSize, "Allocation unit, a power of two (default 4M)");
  createCommand->add_flag("-f,--force", create->force, "Reuse PVs that carry another pool's label");
  createCommand->callback([&status, create] { status.exitCode = runCreate(*create); });

  auto statusName = std::make_shared<std::string>();
  auto statusPvs = std::make_shared<std::vector<std::string>>();
  auto* statusCommand =
      pool->add_subcommand("status", "Show PVs, free space and health (exit 2 when degraded or failed)");
  statusCommand->add_option("name", *statusName, "Pool name (default: every registered pool)");
  addPvOption(statusCommand, *statusPvs);
  statusCommand->callback([&status, statusName, statusPvs] { status.exitCode = runStatus(*statusName, *statusPvs); });

  struct AddArgs {
    std::string name, pv;
    bool force = false;
    std::vector<std::string> pvs;
  };
  auto add = std::make_shared<AddArgs>();
  auto* addCommand = pool->add_subcommand("add", "Add a physical volume to a pool");
  addCommand->add_option("name", add->name, "Pool name")->required();
  addCommand->add_option("pv", add->pv, "File or block device to add")->required();
  addCommand->add_flag("-f,--force", add->force, "Reuse a PV that carries another pool's label");
  addPvOption(addCommand, add->pvs);
  addCommand->callback([&status, add] { status.exitCode = runAdd(add->name, add->pv, add->force, add->pvs); });

  struct ReplaceArgs {
    std::string name, oldPv, newPv;
    bool force = false;
    std::vector<std::string> pvs;
  };
  auto replace = std::make_shared<ReplaceArgs>();
  auto* replaceCommand = pool->add_subcommand(
      "replace", "Replace a PV: copy it if it still works, else rebuild its RAID legs from the other copies/parity");
  replaceCommand->add_option("name", replace->name, "Pool name")->required();
  replaceCommand->add_option("old", replace->oldPv, "The PV to replace: path, UUID or #index")->required();
  replaceCommand->add_option("new", replace->newPv, "The new file or block device (may be the old path to re-add it)")
      ->required();
  replaceCommand->add_flag("-f,--force", replace->force,
                           "Replace even when non-redundant volumes lose their extents on it");
  addPvOption(replaceCommand, replace->pvs);
  replaceCommand->callback([&status, replace] {
    status.exitCode = runReplace(replace->name, replace->oldPv, replace->newPv, replace->force, replace->pvs);
  });

  struct ScrubArgs {
    std::string name;
    bool checkOnly = false;
    std::vector<std::string> pvs;
  };
  auto scrub = std::make_shared<ScrubArgs>();
  auto* scrubCommand = pool->add_subcommand(
      "scrub", "Compare mirror copies and check parity; repair mismatches (exit 2 if some were left unrepaired)");
  scrubCommand->add_option("name", scrub->name, "Pool name")->required();
  scrubCommand->add_flag("--check-only", scrub->checkOnly, "Report mismatches without repairing them");
  addPvOption(scrubCommand, scrub->pvs);
  scrubCommand->callback([&status, scrub] { status.exitCode = runScrub(scrub->name, scrub->checkOnly, scrub->pvs); });

  struct FailArgs {
    std::string name, pv;
    std::vector<std::string> pvs;
  };
  auto failArgs = std::make_shared<FailArgs>();
  auto* failCommand = pool->add_subcommand("fail", "Mark a PV failed (before pulling it); RAID volumes run degraded");
  failCommand->add_option("name", failArgs->name, "Pool name")->required();
  failCommand->add_option("pv", failArgs->pv, "The PV: path, UUID or #index")->required();
  addPvOption(failCommand, failArgs->pvs);
  failCommand->callback([&status, failArgs] { status.exitCode = runFail(failArgs->name, failArgs->pv, failArgs->pvs); });
}

}  // namespace strata::cli
