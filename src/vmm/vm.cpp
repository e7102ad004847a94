#include "vmm/vm.h"

#include "base/log.h"
#include "vmm/guest_machine.h"

namespace strata::vmm {

Result<int> runVm(const VmConfig& config) {
  auto console = HostConsole::open(config.console);
  if (!console) return console.error();
  for (;;) {
    auto machine = GuestMachine::create(config, **console);
    if (!machine) return machine.error();
    GuestOutcome outcome = (*machine)->run();
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
