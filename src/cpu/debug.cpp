// The host debugger's hooks into a hart (`strata run --gdb`): breakpoints
// checked at block boundaries (blocks end at them), watchpoints checked in the
// load/store slow path (no data TLB fills while one is set), single steps,
// and memory seen through the hart's MMU without side effects.
#include <algorithm>

#include "cpu/hart_core.h"

namespace strata::cpu {

void HartCore::setDebugPoints(const DebugPoints& points) {
  DebugPoints sorted = points;
  std::sort(sorted.breakpoints.begin(), sorted.breakpoints.end());
  sorted.breakpoints.erase(std::unique(sorted.breakpoints.begin(), sorted.breakpoints.end()), sorted.breakpoints.end());
  if (sorted == debugPoints) return;
  // Blocks decoded before may run past a new breakpoint; translations cached
  // before would let loads and stores past a new watchpoint.
  if (sorted.breakpoints != debugPoints.breakpoints) blocks.flush();
  if (sorted.watchpoints != debugPoints.watchpoints) flushTlb();
  debugPoints = std::move(sorted);
  debugWatchArmed = !debugPoints.watchpoints.empty();
  debugStopPending = false;
  if (!debugPoints.breakpoints.empty()) attention.fetch_or(kAttnDebug);
}

bool HartCore::debugBreakpointAt(uint64_t va) const {
  return std::binary_search(debugPoints.breakpoints.begin(), debugPoints.breakpoints.end(), va);
}

bool HartCore::debugWatchHit(uint64_t va, unsigned size, Access access) {
  if (debugStepping) return false;
  const bool write = access == Access::Store;
  for (const DebugWatchpoint& watch : debugPoints.watchpoints) {
    if (!(write ? watch.onWrite : watch.onRead)) continue;
    if (va < watch.address + watch.length && watch.address < va + size) {
      debugStop = DebugStop{DebugStop::Kind::Watchpoint, std::max(va, watch.address), write};
      debugStopPending = true;
      return true;
    }
  }
  return false;
}

bool HartCore::debugStopsHere(ExitReason& reason) {
  if (debugStepping) return false;
  if (debugStopPending) {
    debugStopPending = false;
    reason = ExitReason::DebugStop;
    return true;
  }
  if (debugPoints.breakpoints.empty() || !debugBreakpointAt(pc)) return false;
  debugStop = DebugStop{DebugStop::Kind::Breakpoint, pc, false};
  reason = ExitReason::DebugStop;
  return true;
}

uint64_t HartCore::debugPhysicalAddress(uint64_t va) {
  if (priv == Privilege::Machine || (satp >> 60) == csr::kSatpModeBare) return va;
  uint64_t pa;
  return walk(va, Access::Load, priv, pa, true) ? pa : va;
}

}  // namespace strata::cpu
