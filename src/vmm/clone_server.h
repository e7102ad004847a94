// Clone server: one process that restored a snapshot once without running it
// (WarmBoard: RAM mapped, harts loaded, the snapshot's warm set decoded and
// translated) and forks one clone of it per request on a UNIX socket, so the
// clones share its libraries, heap, guest RAM and translated code
// copy-on-write and each pays only for what it writes. It stays single-
// threaded: every fork happens before any thread exists; a clone starts its
// own threads and enters its sandbox as any VM does.
//
// `strata run --restore DIR --clone-server SOCKET` serves;
// `strata run --restore DIR --clone --clone-server SOCKET [options]` is a
// client (requestClone): it sends its options, stdin, stdout, stderr and
// working directory, forwards SIGINT, SIGTERM and SIGHUP to the clone, and
// exits with the clone's status, so it looks like a `--clone` run.
//
// Protocol (SOCK_SEQPACKET, one message each way per step):
//   request: "strata-clone 1\0" then the `strata run` arguments, each
//            followed by \0; SCM_RIGHTS: stdin, stdout, stderr and the working
//            directory (an O_DIRECTORY fd)
//   replies: "started PID", or "refused MESSAGE" (the connection ends there);
//            after "started": "exited STATUS" or "killed SIGNAL" once the clone
//            ended. The clone holds the connection too, so a client whose
//            server died still sees the end (EOF, status unknown).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "vmm/vm_config.h"
#include "vmm/warm_board.h"

namespace strata::vmm {

struct CloneServerHooks {
  // A request's VmConfig from its arguments (called in the request's working
  // directory), or why it is refused.
  std::function<Result<VmConfig>(const std::vector<std::string>& args)> parse;
  // In the forked clone, its stdio and working directory the client's: runs the VM, returns its exit status.
  std::function<int(const VmConfig& config, std::unique_ptr<WarmBoard> warm)> run;
};

// Serves until the process is killed; returns only if the socket cannot be made or polled.
Result<void> serveClones(const std::string& socketPath, std::unique_ptr<WarmBoard> warm, const CloneServerHooks& hooks);

// Asks the server at socketPath for a clone run with `args` and waits for it:
// its exit status (128 + the signal if it was killed), or why it was refused.
Result<int> requestClone(const std::string& socketPath, const std::vector<std::string>& args);

}  // namespace strata::vmm
