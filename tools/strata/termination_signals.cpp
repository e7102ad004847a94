#include "termination_signals.h"

#include <signal.h>
#include <sys/signalfd.h>

namespace strata::cli {

Result<UniqueFd> terminationSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  if (::sigprocmask(SIG_BLOCK, &signals, nullptr) != 0) return errnoError("sigprocmask");
  UniqueFd fd(::signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!fd.valid()) return errnoError("signalfd");
  return fd;
}

}  // namespace strata::cli
