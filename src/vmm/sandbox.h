// The sandbox of one VM process: a seccomp-BPF allow-list per thread role and
// Landlock limiting file access to the VM's own files. Both go up after the
// first board has opened everything it needs; a syscall outside a role's list
// kills the process with one line on stderr naming the role and the syscall.
#pragma once

#include <atomic>
#include <chrono>

#include "base/result.h"
#include "vmm/vm_config.h"

namespace strata::vmm {

// Which allow-list a thread gets. Filters stack: a thread inherits its
// creator's filter, so vCPU threads (created by the I/O loop's thread) are
// held to both the IoLoop and the Vcpu lists. The API thread is started before
// the main thread's sandbox goes up, so it is held to its own list only, and so
// is the migration sender's.
enum class ThreadRole {
  IoLoop,  // the main thread: the VM's event loop, and building a new board on reboot
  Vcpu,    // one per hart: runs guest code, posts work to the loop
  Api,     // the control API server (api_server.h): its UNIX socket's clients, one at a time
  Migration,  // live migration's sender (migration_source.h): TCP connections to the destination
  Gdb,     // the GDB stub (gdb_stub.h): its TCP socket's client, one at a time
};

const char* threadRoleName(ThreadRole role);

// Puts the calling thread into `role`: no_new_privs, Landlock (IoLoop only: it
// covers the threads it creates afterwards) and the role's seccomp filter, as
// config.sandbox asks.
// A thread already in a role keeps it (filters cannot be removed), so calling
// this again, e.g. for the board built after a reboot, changes nothing.
Result<void> enterThreadRole(ThreadRole role, const VmConfig& config);

// Waits until `count` threads have entered the vCPU role (the first board's vCPU
// threads have started), `limit` has passed or `giveUp` is set (seen within 5 ms).
// The API thread loads the HTTP module only then: dlopen holds the loader's TLS
// lock while it maps and relocates, and pthread_create waits for that lock.
void waitForVcpuThreads(unsigned count, std::chrono::milliseconds limit, const std::atomic<bool>& giveUp);

}  // namespace strata::vmm
