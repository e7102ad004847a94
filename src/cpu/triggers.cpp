// Sdtrig (RISC-V debug spec 1.0, chapter 5): kTriggers mcontrol6 address
// triggers on execute, load and store, whose only action is a breakpoint
// exception. While one is armed the hart caches no translations or blocks
// (see triggersArmed), which keeps both engines exact without their help.
#include "cpu/hart_core.h"

namespace strata::cpu {

namespace {

constexpr uint64_t kTypeMcontrol6 = 6;
constexpr uint64_t kLoad = 1, kStore = 2, kExecute = 4, kModeU = 1 << 3, kModeS = 1 << 4, kModeM = 1 << 6;
constexpr unsigned kMatchShift = 7;
constexpr uint64_t kMatchMask = 0xfull << kMatchShift;
enum Match : uint64_t { kEqual = 0, kAtLeast = 2, kBelow = 3 };
// tinfo: version 1 (debug spec 1.0), types 6 (mcontrol6) and 15 (disabled).
constexpr uint64_t kTinfo = (1ull << 24) | (1ull << kTypeMcontrol6) | (1ull << 15);

uint64_t typeOf(uint64_t tdata1) { return tdata1 >> 60; }

// WARL: dmode, chain, hit, select, size and action read 0 (action 0 is the
// breakpoint exception); unsupported match kinds become "equal".
uint64_t legalMcontrol6(uint64_t value) {
  const uint64_t match = (value & kMatchMask) >> kMatchShift;
  const uint64_t legalMatch = (match == kAtLeast || match == kBelow) ? match : kEqual;
  return (kTypeMcontrol6 << 60) | (legalMatch << kMatchShift) |
         (value & (kModeM | kModeS | kModeU | kExecute | kStore | kLoad));
}

bool armed(uint64_t tdata1) {
  return typeOf(tdata1) == kTypeMcontrol6 && (tdata1 & (kExecute | kStore | kLoad)) &&
         (tdata1 & (kModeM | kModeS | kModeU));
}

}  // namespace

bool HartCore::triggerCsrRead(uint16_t number, uint64_t& value) const {
  switch (number) {
    case csr::kTselect: value = tselect; return true;
    case csr::kTdata1: value = tdata1[tselect]; return true;
    case csr::kTdata2: value = tdata2[tselect]; return true;
    case csr::kTdata3: value = 0; return true;  // no textra matching
    case csr::kTinfo: value = kTinfo; return true;
    default: return false;
  }
}

bool HartCore::triggerCsrWrite(uint16_t number, uint64_t value) {
  switch (number) {
    case csr::kTselect:
      if (value < kTriggers) tselect = value;  // WARL: a missing trigger keeps the old selection
      return true;
    case csr::kTdata1: tdata1[tselect] = typeOf(value) == kTypeMcontrol6 ? legalMcontrol6(value) : kTriggerDisabled; break;
    case csr::kTdata2: tdata2[tselect] = value; break;
    case csr::kTdata3: return true;
    case csr::kTinfo: return true;  // writes are ignored (no multiple-type triggers to select)
    default: return false;
  }
  const bool wasArmed = triggersArmed;
  triggersArmed = false;
  for (uint64_t t : tdata1) triggersArmed |= armed(t);
  if (triggersArmed || wasArmed) dropCachedTranslations();
  return true;
}

bool HartCore::triggerFires(uint64_t address, Access access) const {
  // Native M-mode triggers (spec 5.4) without tcontrol: a breakpoint does not
  // fire in M-mode while mstatus.MIE is clear, so a handler cannot re-trigger itself.
  if (priv == Privilege::Machine && !(mstatus & csr::kStatusMie)) return false;
  const uint64_t accessBit = access == Access::Fetch ? kExecute : access == Access::Store ? kStore : kLoad;
  const uint64_t modeBit = priv == Privilege::Machine ? kModeM : priv == Privilege::Supervisor ? kModeS : kModeU;
  for (unsigned i = 0; i < kTriggers; ++i) {
    const uint64_t t = tdata1[i];
    if (!armed(t) || !(t & accessBit) || !(t & modeBit)) continue;
    switch ((t & kMatchMask) >> kMatchShift) {
      case kEqual: if (address == tdata2[i]) return true; break;
      case kAtLeast: if (address >= tdata2[i]) return true; break;
      case kBelow: if (address < tdata2[i]) return true; break;
      default: break;
    }
  }
  return false;
}

}  // namespace strata::cpu
