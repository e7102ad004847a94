// Vm: one virtual machine instance — builds the `virt` board from a VmConfig,
// runs one host thread per vCPU plus an I/O event loop, answers SBI hypercalls,
// and handles the guest's poweroff, reboot and panic. run() boots the guest
// again after a reboot and returns the process exit status.
#pragma once

#include <memory>

#include "base/result.h"
#include "vmm/vm_config.h"

namespace strata::vmm {

enum class GuestExit {
  PowerOff,  // guest powered off (or a bare program passed): status 0
  Failed,    // firmware or bare program reported failure: its status
  Reboot,
  Panic,
  Quit,
  Failure,   // the VMM itself could not go on
};

struct GuestOutcome {
  GuestExit exit = GuestExit::Failure;
  int status = 0;
};

class VmControl;
class WarmBoard;

// Boots the guest described by config until it powers off, panics or the user
// quits. Returns 0 after poweroff or quit, 1 after a guest panic, and a bare
// program's or firmware's failure code when it reports one. warm: the
// restored board a clone server built (config.restoreDir's), for the first boot.
Result<int> runVm(const VmConfig& config, std::unique_ptr<WarmBoard> warm = nullptr);

// The same, controlled through `control` (built on the same config) from other threads.
Result<int> runVm(const VmConfig& config, VmControl& control, std::unique_ptr<WarmBoard> warm = nullptr);

}  // namespace strata::vmm
