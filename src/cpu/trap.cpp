// Trap entry, interrupt selection, timers, WFI sleep, cross-thread requests
// and the reset states.
#include <chrono>

#include "cpu/hart_core.h"

namespace strata::cpu {

HartCore::HartCore(Hart& ownerHart, unsigned id, PhysicalMemory mem, HartHost& hartHost)
    : owner(ownerHart), hartId(id), memory(mem), host(hartHost), blocks(memory) {
  resetToMachineMode(0);
}

void HartCore::setPrivilege(Privilege p) {
  priv = p;
  updateTranslationContext();
}

void HartCore::takeTrap(uint64_t cause, uint64_t tval, bool interrupt) {
  reservationValid = false;
  bool toSupervisor = false;
  if (priv != Privilege::Machine) toSupervisor = (((interrupt ? mideleg : medeleg) >> cause) & 1) != 0;
  const uint64_t causeValue = interrupt ? (csr::kInterruptFlag | cause) : cause;
  if (toSupervisor) {
    scause = causeValue;
    sepc = pc;
    stval = tval;
    uint64_t s = mstatus & ~(csr::kStatusSpie | csr::kStatusSie | csr::kStatusSpp);
    if (mstatus & csr::kStatusSie) s |= csr::kStatusSpie;
    if (priv == Privilege::Supervisor) s |= csr::kStatusSpp;
    mstatus = s;
    pc = (stvec & ~3ull) + ((interrupt && (stvec & 1)) ? 4 * cause : 0);
    setPrivilege(Privilege::Supervisor);
  } else {
    mcause = causeValue;
    mepc = pc;
    mtval = tval;
    uint64_t s = mstatus & ~(csr::kStatusMpie | csr::kStatusMie | csr::kStatusMpp);
    if (mstatus & csr::kStatusMie) s |= csr::kStatusMpie;
    s |= static_cast<uint64_t>(priv) << csr::kStatusMppShift;
    mstatus = s;
    pc = (mtvec & ~3ull) + ((interrupt && (mtvec & 1)) ? 4 * cause : 0);
    setPrivilege(Privilege::Machine);
  }
}

bool HartCore::takePendingInterrupt() {
  const uint64_t pending = effectiveMip() & mie;
  if (pending == 0) return false;
  // Interrupts for a higher privilege are always enabled below it; at the
  // same privilege the global xIE bit decides; delegated ones never preempt M.
  const bool machineEnabled = priv != Privilege::Machine || (mstatus & csr::kStatusMie);
  const bool supervisorEnabled =
      priv == Privilege::User || (priv == Privilege::Supervisor && (mstatus & csr::kStatusSie));
  uint64_t candidates = machineEnabled ? (pending & ~mideleg) : 0;
  if (candidates == 0 && supervisorEnabled) candidates = pending & mideleg;
  if (candidates == 0) return false;
  static constexpr unsigned kPriority[] = {kMachineExternal,    kMachineSoftware,    kMachineTimer,
                                           kSupervisorExternal, kSupervisorSoftware, kSupervisorTimer};
  for (unsigned cause : kPriority) {
    if ((candidates >> cause) & 1) {
      takeTrap(cause, 0, true);
      return true;
    }
  }
  return false;
}

void HartCore::checkTimers() {
  const uint64_t now = host.timeNow();
  uint64_t set = 0, clear = 0;
  (now >= mtimecmp.load(std::memory_order_relaxed) ? set : clear) |= csr::kMtip;
  if (menvcfg & csr::kEnvcfgStce) (now >= stimecmp ? set : clear) |= csr::kStip;
  const uint64_t old = mip.load(std::memory_order_relaxed);
  if (((old | set) & ~clear) == old) return;
  if (set) mip.fetch_or(set);
  if (clear) mip.fetch_and(~clear);
  attention.fetch_or(kAttnInterrupts, std::memory_order_relaxed);
}

void HartCore::requestAttention(uint32_t bits) {
  attention.fetch_or(bits);
  if (sleeping.load()) {
    std::lock_guard lock(sleepMutex);
    sleepCv.notify_all();
  }
}

void HartCore::notifyFenceWaiters() {
  { std::lock_guard lock(fenceMutex); }
  fenceCv.notify_all();
}

void HartCore::applyFences() {
  const uint32_t remote = pendingFences.load();
  const uint32_t fences = remote | localFences;
  localFences = 0;
  if (fences & kFenceTlb) flushTlb();
  if (fences & kFenceAllBlocks) blocks.flush();
  else if (fences & kFenceICache) blocks.dropStale();
  if (remote) {
    pendingFences.fetch_and(~remote);
    notifyFenceWaiters();
  }
}

bool HartCore::serviceAttention(bool mayStop, bool maySleep, ExitReason& reason) {
  const uint32_t bits = attention.exchange(0, std::memory_order_acq_rel);
  if (bits & kAttnDebug) {
    // Breakpoints keep the bit set: engines then come here at every block
    // boundary, skipping their own timer countdown.
    if (!debugPoints.breakpoints.empty()) attention.fetch_or(kAttnDebug, std::memory_order_relaxed);
    --timerCountdown;
  }
  // Reading the clock is a host call: only when a compare moved or the poll interval ran out.
  if ((bits & kAttnTimers) || timerCountdown <= 0) {
    timerCountdown = kTimerCheckInterval;
    checkTimers();
    host.flushDeferredOutput();
  }
  if ((bits & kAttnFence) || localFences) applyFences();
  if (mayStop && (bits & kAttnSelfStop)) {
    reason = ExitReason::HartStopped;
    return true;
  }
  if (mayStop && (bits & kAttnStop)) {
    reason = ExitReason::StopRequested;
    return true;
  }
  // A debugger's single step holds interrupts off (they stay pending in mip).
  const bool interrupted = !debugStepping && takePendingInterrupt();
  if (!interrupted && (bits & kAttnWfi) && maySleep && !interruptWakesWfi()) {
    sleepUntilWoken();
    takePendingInterrupt();
  }
  return mayStop && debugStopsHere(reason);
}

void HartCore::sleepUntilWoken() {
  using namespace std::chrono;
  runState.store(RunState::Sleeping);
  notifyFenceWaiters();
  host.flushDeferredOutput();
  for (;;) {
    checkTimers();
    attention.fetch_and(~kAttnInterrupts);  // our own timer bookkeeping is not a wake-up
    // Nor are the debugger's standing breakpoints.
    if (interruptWakesWfi() || (attention.load() & ~kAttnDebug) != 0) break;
    const uint64_t now = host.timeNow();
    uint64_t deadline = ~0ull;
    if (mie & csr::kMtip) deadline = std::min(deadline, mtimecmp.load());
    if ((menvcfg & csr::kEnvcfgStce) && (mie & csr::kStip)) deadline = std::min(deadline, stimecmp);
    // Sleep at most a second at a time so a host clock that is not wall time cannot strand us.
    nanoseconds wait = seconds(1);
    if (deadline != ~0ull && deadline > now) {
      const uint64_t ticks = deadline - now;
      const uint64_t ns = ticks >= (1ull << 40) ? ~0ull : ticks * (1'000'000'000ull / kTimebaseHz);
      if (ns < static_cast<uint64_t>(wait.count())) wait = nanoseconds(ns);
    }
    std::unique_lock lock(sleepMutex);
    sleeping.store(true);
    if ((attention.load() & ~kAttnDebug) == 0 && !interruptWakesWfi()) sleepCv.wait_for(lock, wait);
    sleeping.store(false);
  }
  runState.store(RunState::Running);
  // Remote fences requested while we slept are applied before anything runs.
  if (pendingFences.load()) applyFences();
}

void HartCore::resetToMachineMode(uint64_t entry) {
  for (auto& r : x) r = 0;
  for (auto& r : f) r = 0;
  pc = entry;
  instret = 0;
  cycleCounter = instretCounter = Counter{};
  mstatus = csr::kStatusXlen64;
  medeleg = mideleg = mie = mtvec = mscratch = mepc = mcause = mtval = 0;
  mcounteren = menvcfg = mcountinhibit = 0;
  stvec = sscratch = sepc = scause = stval = scounteren = senvcfg = satp = 0;
  stimecmp = ~0ull;
  fflags = frm = 0;
  for (auto& c : pmpcfg) c = 0;
  for (auto& a : pmpaddr) a = 0;
  pmpActiveEntries = 0;
  // Keep the device-driven lines; drop everything software or timers set.
  mip.fetch_and(csr::kMeip | csr::kMsip | kSeipLineBit);
  reservationValid = false;
  priv = Privilege::Machine;
  flushTlb();
  blocks.flush();
  updateTranslationContext();
  attention.fetch_or(kAttnInterrupts | kAttnTimers);
}

void HartCore::resetToSupervisorBoot(uint64_t entry, uint64_t a1) {
  resetToMachineMode(entry);
  x[10] = hartId;
  x[11] = a1;
  // OpenSBI delegates misaligned accesses, breakpoints, user ecalls and page
  // faults, and redirects illegal instructions and access faults to S-mode
  // itself; with no M-mode code behind us we delegate those too, which gives
  // the guest the same view.
  medeleg = (1ull << csr::kInstructionMisaligned) | (1ull << csr::kInstructionAccessFault) |
            (1ull << csr::kIllegalInstruction) | (1ull << csr::kBreakpoint) | (1ull << csr::kLoadMisaligned) |
            (1ull << csr::kLoadAccessFault) | (1ull << csr::kStoreMisaligned) | (1ull << csr::kStoreAccessFault) |
            (1ull << csr::kEcallFromU) | (1ull << csr::kInstructionPageFault) | (1ull << csr::kLoadPageFault) |
            (1ull << csr::kStorePageFault);
  mideleg = csr::kSupervisorInterrupts;
  allowAllPhysicalMemory();
  mcounteren = 0xffffffffull;
  scounteren = 0x7;  // OpenSBI lets U-mode read cycle, time and instret by default
  menvcfg = csr::kEnvcfgStce;
  mstatus = csr::kStatusXlen64 | csr::kFsInitial | (1ull << csr::kStatusMppShift);
  setPrivilege(Privilege::Supervisor);
}

}  // namespace strata::cpu
