#include "vmm/vm.h"

#include <memory>
#include <optional>
#include <vector>

#include "base/event_loop.h"
#include "base/log.h"
#include "storage/disk_image.h"
#include "storage/volume/volume_disk.h"
#include "vmm/api_server.h"
#include "vmm/gdb_stub.h"
#include "vmm/guest_machine.h"
#include "vmm/page_sharing.h"
#include "vmm/vm_control.h"
#include "vmm/vm_routes.h"

namespace strata::vmm {
namespace {

// "pool:NAME/VOLUME" is a logical volume of a strata pool; anything else an image file.
Result<std::unique_ptr<storage::BlockDevice>> openDisk(const DiskConfig& disk, EventLoop& loop) {
  storage::DiskOptions options;
  options.readOnly = disk.readOnly;
  options.format = disk.format;
  if (storage::volume::isVolumeDiskSpec(disk.path)) return storage::volume::openVolumeDisk(disk.path, options, loop);
  auto image = storage::openDiskImage(disk.path, options, loop);
  if (!image) return image.error();
  if (disk.format == storage::ImageFormat::Auto)
    log::warn("{}", storage::probedFormatWarning(**image, "--disk " + disk.path + ",format="));
  return std::unique_ptr<storage::BlockDevice>(std::move(*image));
}

}  // namespace

Result<int> runVm(const VmConfig& config) {
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
  return runVm(config, control);
}

Result<int> runVm(const VmConfig& config, VmControl& control) {
  auto console = HostConsole::open(config.console);
  if (!console) return console.error();
  auto loop = EventLoop::create();
  if (!loop) return loop.error();
  // The disks are opened once and outlive every boot (declared after the loop
  // their completions run on): formats and backing chains stay as resolved
  // here, whatever a guest writes before it reboots.
  std::vector<std::unique_ptr<storage::BlockDevice>> disks;
  for (const auto& disk : config.disks) {
    auto opened = openDisk(disk, **loop);
    if (!opened) return opened.error();
    disks.push_back(std::move(*opened));
  }
  struct Ending {  // whichever way runVm returns
    VmControl& control;
    ~Ending() { control.markEnded(); }
  } ending{control};
  std::optional<PageSharingReport> sharing;
  if (config.memMerge) sharing.emplace();
  std::string restoreDir = config.restoreDir;  // the first boot only; a reboot boots afresh
  for (;;) {
    auto machine = GuestMachine::create(config, control, **console, **loop, disks, restoreDir);
    restoreDir.clear();
    if (!machine) return machine.error();
    control.attach(machine->get());
    GuestOutcome outcome = (*machine)->run();
    if (sharing) sharing->log();  // guest RAM is still mapped
    control.detach();
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
