// Recovery: what a restarting daemon does before it serves, so that after a
// kill -9 the store, the VM processes and the data directory agree: VM
// processes no record owns (a daemon killed between spawning one and
// recording it) are killed, definitions left half made or half deleted are
// dropped, directories and template images no record owns are removed, and
// operations it left running are marked failed with the reason.
#pragma once

#include <string>

#include "control/store.h"

namespace strata::control {

// After Supervisor::adoptRunningVms: a VM process it did not adopt has no record.
void recoverInterruptedWork(Store& store, const std::string& dataDir);

}  // namespace strata::control
