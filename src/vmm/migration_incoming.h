// Live migration's destination side (`strata run --incoming tcp:ADDR:PORT`):
// waits for a source, receives every channel's pages into a fresh board's RAM
// and the device state, checks it all (stream CRCs, the state file's framing,
// the board it describes) and only then answers OK; the VM never runs from a
// half-received or refused stream, which ends `strata run` with one line.
// Post-copy (migration_postcopy.h) runs it with the pages the source named still to come.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "vmm/guest_machine.h"
#include "vmm/migration_disks.h"
#include "vmm/migration_postcopy.h"

namespace strata::vmm {

struct IncomingVm {
  std::unique_ptr<GuestMachine> machine;
  // Post-copy: fetching the pages the source still holds into machine's RAM; goes before machine.
  std::unique_ptr<migration::PostcopyDestination> postcopy;
};

// Opens the VM's disks into the `disks` given to receiveMigration, making
// each --disk file that does not exist as the source announced it.
using AnnouncedDiskOpener = std::function<Result<void>(const std::vector<migration::AnnouncedDisk>&)>;

// openAnnounced: set when runVm left the disks to open (some --disk file does
// not exist yet): the source's disk manifest is then read first, before the
// board is built from `disks`.
Result<IncomingVm> receiveMigration(const VmConfig& config, VmControl& control, HostConsole& console,
                                                       EventLoop& loop,
                                                       const std::vector<std::unique_ptr<storage::BlockDevice>>& disks,
                                                       const std::vector<NetInterface>& nics,
                                                       const AnnouncedDiskOpener& openAnnounced = {});

}  // namespace strata::vmm
