#include "vmm/vm.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <optional>
#include <vector>

#include <fmt/core.h>

#include "base/event_loop.h"
#include "base/log.h"
#include "storage/dirty_tracked_disk.h"
#include "storage/disk_image.h"
#include "storage/image_create.h"
#include "storage/image_tools.h"
#include "storage/sync_io.h"
#include "storage/volume/volume_disk.h"
#include "vmm/api_server.h"
#include "vmm/balloon_autopilot.h"
#include "vmm/gdb_stub.h"
#include "vmm/guest_machine.h"
#include "vmm/live_disk.h"
#include "vmm/net_interfaces.h"
#include "vmm/migration_incoming.h"
#include "vmm/sandbox.h"
#include "vmm/vm_control.h"
#include "vmm/vm_routes.h"

namespace strata::vmm {
namespace {

// "pool:NAME/VOLUME" is a logical volume of a strata pool; anything else an image file.
Result<std::unique_ptr<LiveDisk>> openDisk(const DiskConfig& disk, EventLoop& loop) {
  storage::DiskOptions options;
  options.readOnly = disk.readOnly;
  options.format = disk.format;
  if (storage::volume::isVolumeDiskSpec(disk.path)) return LiveDisk::openVolume(disk, loop);
  auto image = storage::openDiskImage(disk.path, options, loop);
  if (!image) return image.error();
  if (disk.format == storage::ImageFormat::Auto)
    log::warn("{}", storage::probedFormatWarning(**image, "--disk " + disk.path + ",format="));
  return std::make_unique<LiveDisk>(disk, std::move(*image), loop);
}

// An ending VM leaves its guest's writes in the disks, whether or not the guest
// flushed them (QEMU flushes every drive at exit too): a thin volume records its
// new mappings only at a flush.
void flushDisksAtExit(const std::vector<std::unique_ptr<storage::BlockDevice>>& disks, EventLoop& loop) {
  for (const auto& disk : disks)
    if (!disk->readOnly())
      if (auto flushed = storage::flushSync(*disk, loop); !flushed)
        log::error("disk {}: {}", disk->serial(), flushed.error().message);
}

// A restored VM's disk: a new qcow2 overlay on the image the snapshot kept,
// next to the snapshot (DIR/clone-PID-diskN.qcow2, DIR/restore-PID-diskN.qcow2)
// or in --clone-dir, or a thin clone of the thin volume snapshot it kept
// (VOLUME.clone-PID, VOLUME.restore-PID), so no clone's or restored VM's writes
// reach what the snapshot and every other restore share. The overlay or clone
// stays after the VM ends. Read-only disks are opened as they are.
Result<std::unique_ptr<LiveDisk>> openRestoredDisk(const VmConfig& config, size_t index, EventLoop& loop) {
  const DiskConfig& disk = config.disks[index];
  if (disk.readOnly) return openDisk(disk, loop);
  if (storage::volume::isVolumeDiskSpec(disk.path))
    return LiveDisk::openRestoredVolume(disk, fmt::format("{}-{}", config.clone ? "clone" : "restore", ::getpid()),
                                        config.clone, loop);
  auto base = storage::imageInfo(disk.path);
  if (!base) return Error{fmt::format("--restore: disk {}: {}", disk.path, base.error().message)};
  char* absolute = ::realpath(disk.path.c_str(), nullptr);
  if (!absolute) return errnoError(fmt::format("--restore: disk {}", disk.path));
  storage::CreateOptions overlay;
  overlay.format = storage::ImageFormat::Qcow2;
  overlay.size = base->virtualSize;
  overlay.backingFile = absolute;
  overlay.backingFormat = base->format;
  std::free(absolute);
  DiskConfig clone = disk;
  clone.path = config.cloneDir.empty()
                   ? fmt::format("{}/{}-{}-disk{}.qcow2", config.restoreDir, config.clone ? "clone" : "restore", ::getpid(), index)
                   : fmt::format("{}/clone-disk{}.qcow2", config.cloneDir, index);
  clone.format = storage::ImageFormat::Qcow2;
  if (auto created = storage::createImage(clone.path, overlay); !created)
    return Error{fmt::format("--restore: {}: {}", clone.path, created.error().message)};
  auto opened = openDisk(clone, loop);
  if (!opened) ::unlink(clone.path.c_str());
  else (*opened)->markMadeForThisVm();
  return opened;
}

// A restore or incoming migration refused before its VM ran (a disk, a NIC,
// the snapshot's memory or the stream found wrong) takes back the overlays,
// thin clones and disk files it made for its disks.
struct DisksMadeForThisVm {
  std::vector<LiveDisk*> disks;
  bool vmRan = false;
  ~DisksMadeForThisVm() {
    if (vmRan) return;
    for (LiveDisk* disk : disks)
      if (auto removed = disk->removeMadeForThisVm(); !removed)
        log::warn("the refused VM left {} behind: {}", disk->current().path, removed.error().message);
  }
};

bool isMissingFile(const DiskConfig& disk) {
  struct stat info;
  return !storage::volume::isVolumeDiskSpec(disk.path) && ::stat(disk.path.c_str(), &info) != 0 && errno == ENOENT;
}

// An incoming VM's --disk file that does not exist is made as the source
// announced its disk: the same size, and its format unless --disk names one.
Result<DiskConfig> makeAnnouncedDisk(DiskConfig disk, size_t index, const std::vector<migration::AnnouncedDisk>& announced) {
  if (index >= announced.size())
    return Error{fmt::format("the source mirrors {} disks, this VM has {} (--disk)", announced.size(), index + 1)};
  storage::CreateOptions options;
  options.format = disk.format == storage::ImageFormat::Auto ? announced[index].format : disk.format;
  options.size = announced[index].sizeBytes;
  if (auto created = storage::createImage(disk.path, options); !created)
    return Error{fmt::format("--disk {}: {}", disk.path, created.error().message)};
  disk.format = options.format;
  return disk;
}

}  // namespace

Result<int> runVm(const VmConfig& config, std::unique_ptr<WarmBoard> warm) {
  VmControl control(config);
  // The API and gdb threads start before the VM's sandbox goes up: each keeps its own allow-list only.
  std::unique_ptr<GdbStub> gdb;
  if (!config.gdb.empty()) {
    auto stub = GdbStub::create(config, control);
    if (!stub) return stub.error();
    gdb = std::move(*stub);
    if (config.gdbWait) control.pause();  // the first board starts parked
    gdb->start();
  }
  std::unique_ptr<ApiServer> api;
  if (!config.apiSocket.empty()) {
    auto server = ApiServer::create(config);
    if (!server) return server.error();
    api = std::move(*server);
    addApiRoutes(api->router(), control);
    api->start();
  }
  return runVm(config, control, std::move(warm));
}

Result<int> runVm(const VmConfig& config, VmControl& control, std::unique_ptr<WarmBoard> warm) {
  auto console = HostConsole::open(config.console);
  if (!console) return console.error();
  auto loop = EventLoop::create();
  if (!loop) return loop.error();
  // The disks are opened once and outlive every boot (declared after the loop
  // their completions run on): formats and backing chains stay as resolved
  // here, whatever a guest writes before it reboots.
  std::vector<std::unique_ptr<storage::BlockDevice>> disks;
  DisksMadeForThisVm leftovers;  // gone before the disks
  // announced: an incoming VM's disks as the source announced them, for the files to make.
  auto openDisks = [&](const std::vector<migration::AnnouncedDisk>* announced) -> Result<void> {
    std::vector<LiveDisk*> liveDisks;
    for (size_t index = 0; index < config.disks.size(); ++index) {
      std::optional<DiskConfig> made;
      if (announced && isMissingFile(config.disks[index])) {
        auto created = makeAnnouncedDisk(config.disks[index], index, *announced);
        if (!created) return created.error();
        made = *created;
      }
      auto opened = made ? openDisk(*made, **loop)
                    : config.restoreDir.empty() ? openDisk(config.disks[index], **loop)
                                                : openRestoredDisk(config, index, **loop);
      if (!opened && made) ::unlink(made->path.c_str());
      if (!opened) return opened.error();
      if (made) (*opened)->markMadeForThisVm();
      liveDisks.push_back(opened->get());
      leftovers.disks.push_back(opened->get());
      // Tracked for live migration without shared storage; costless while no migration runs.
      disks.push_back(std::make_unique<storage::DirtyTrackedDisk>(std::move(*opened)));
    }
    control.setDisks(std::move(liveDisks));
    return {};
  };
  // A missing --disk file of an incoming VM waits for the source's disk manifest (--with-disks).
  const bool awaitAnnounced = !config.incoming.empty() && std::any_of(config.disks.begin(), config.disks.end(), isMissingFile);
  if (!awaitAnnounced)
    if (auto opened = openDisks(nullptr); !opened) return opened.error();
  // So are the network ports: a reboot keeps the switch port and TAP device.
  auto nics = openNetInterfaces(config, **loop, control.nicTraffic());
  if (!nics) return nics.error();
  struct Ending {  // whichever way runVm returns
    VmControl& control;
    ~Ending() { control.markEnded(); }
  } ending{control};
  std::unique_ptr<BalloonAutopilot> autopilot;  // on the loop, across reboots
  if (config.balloonAuto) {
    auto started = BalloonAutopilot::start(*config.balloonAuto, control.balloon(), **loop);
    if (!started) return started.error();
    autopilot = std::move(*started);
  }
  std::string restoreDir = config.restoreDir;  // the first boot only; a reboot boots afresh
  std::unique_ptr<GuestMachine> migrated;
  std::unique_ptr<migration::PostcopyDestination> postcopy;  // the first boot's, with --postcopy
  if (!config.incoming.empty()) {
    auto received = receiveMigration(config, control, **console, **loop, disks, *nics,
                                     awaitAnnounced ? AnnouncedDiskOpener([&](const auto& announced) { return openDisks(&announced); })
                                                    : AnnouncedDiskOpener{});
    if (!received) return received.error();
    migrated = std::move(received->machine);
    postcopy = std::move(received->postcopy);
    if (auto announced = migrated->announceSelf(); !announced) log::warn("announcing the migrated VM: {}", announced.error().message);
  }
  for (;;) {
    auto machine = migrated ? Result<std::unique_ptr<GuestMachine>>(std::move(migrated))
                            : GuestMachine::create(config, control, **console, **loop, disks, *nics, restoreDir,
                                                   std::move(warm));
    restoreDir.clear();
    if (!machine) return machine.error();
    leftovers.vmRan = true;
    control.attach(machine->get());
    GuestOutcome outcome = (*machine)->run();
    postcopy.reset();  // before the RAM it fills goes
    if (control.postcopyPaused())
      log::warn("the VM ended while post-copy migration was paused: the pages the destination still lacked are gone");
    if (auto* sharing = control.pageSharing()) sharing->log();  // guest RAM is still mapped
    control.detach();
    if (outcome.exit != GuestExit::Reboot) flushDisksAtExit(disks, **loop);
    switch (outcome.exit) {
      case GuestExit::Reboot:
        log::info("guest rebooting");
        continue;
      case GuestExit::PowerOff:
      case GuestExit::Quit:
        return 0;
      case GuestExit::Failed:
        return outcome.status;
      case GuestExit::Panic:
        log::error("guest kernel panic");
        return 1;
      case GuestExit::Failure:
        return Error{"the virtual machine stopped unexpectedly"};
    }
  }
}

}  // namespace strata::vmm
