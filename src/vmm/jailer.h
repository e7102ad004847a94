// The jailer (`strata run --jail DIR --uid U --gid G`): runs one VM process
// in new mount, PID, IPC and UTS namespaces, with DIR as its root holding only
// the VM's files (and the strata binary with its libraries, read-only), opened
// TAP fds handed over by number, resource limits set, then exec as U:G.
#pragma once

#include <sys/types.h>

#include <string>

#include "base/result.h"
#include "vmm/vm_config.h"

namespace strata::vmm {

struct JailConfig {
  std::string dir;  // becomes the VM's root; created if missing, left empty afterwards
  uid_t uid = 0;
  gid_t gid = 0;
};

// Runs the VM described by config in a jail and waits for it. Needs root.
// Returns the jailed process's exit status (128 + signal if it was killed).
Result<int> runJailed(const VmConfig& config, const JailConfig& jail);

}  // namespace strata::vmm
