// The interpreter engine: runs a HartCore by looking up decoded blocks for
// the current pc and executing their instructions with a threaded
// (computed-goto) dispatch. Interrupts, timers, fences and stop requests are
// handled only between blocks, driven by HartCore::attention.
#pragma once

#include <cstdint>

#include "cpu/hart.h"

namespace strata::cpu {

class HartCore;

namespace interp {

// Runs until a stop request or stopSelf(); sleeps in WFI.
ExitReason run(HartCore& hart);
// Executes at most `count` instructions (a trapping instruction counts as one
// attempt); never sleeps. Returns the number of instructions retired.
uint64_t step(HartCore& hart, uint64_t count);

}  // namespace interp
}  // namespace strata::cpu
