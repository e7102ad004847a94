// The long-running commands (`strata nbd serve`, `strata switch`) end cleanly on
// SIGINT/SIGTERM: the signals arrive through an fd their event loop watches.
#pragma once

#include "base/result.h"
#include "base/unique_fd.h"

namespace strata::cli {

// Blocks SIGINT/SIGTERM for the process and delivers them through an fd the loop watches.
Result<UniqueFd> terminationSignals();

}  // namespace strata::cli
