#include "machine/pvpanic.h"

#include "base/log.h"

namespace strata::machine {

PvPanic::PvPanic(std::function<void()> onGuestPanic) : onGuestPanic_(std::move(onGuestPanic)) {}

uint64_t PvPanic::read(uint64_t offset, unsigned /*size*/) {
  return offset == 0 ? kSupportedEvents : 0;
}

void PvPanic::write(uint64_t offset, unsigned /*size*/, uint64_t value) {
  if (offset != 0) return;
  if (value & kCrashLoaded) {
    crashLoads_.fetch_add(1);
    log::warnRateLimited("guest reported a crash; its crash kernel is running");
  }
  if (value & kPanicked) {
    panics_.fetch_add(1);
    log::error("guest kernel panicked (pvpanic)");
    if (onGuestPanic_) onGuestPanic_();
  }
}

}  // namespace strata::machine
