// Physical memory protection: the pmpcfg/pmpaddr WARL rules and the access
// check applied on every slow-path access (TLB fill, page-table walk, block
// build). The fast paths stay check-free because the TLB only caches pages
// that PMP treats the same from their first byte to their last.
#include "cpu/hart_core.h"

namespace strata::cpu {

namespace {

constexpr uint8_t kPmpRead = 1, kPmpWrite = 2, kPmpExecute = 4, kPmpLock = 0x80;
constexpr unsigned kPmpModeShift = 3;
enum PmpMode : uint8_t { kPmpOff = 0, kPmpTor = 1, kPmpNa4 = 2, kPmpNapot = 3 };
constexpr uint64_t kPmpAddressMask = (1ull << 54) - 1;

PmpMode modeOf(uint8_t cfg) { return static_cast<PmpMode>((cfg >> kPmpModeShift) & 3); }

uint8_t permissionFor(Access access) {
  switch (access) {
    case Access::Fetch: return kPmpExecute;
    case Access::Load: return kPmpRead;
    case Access::Store: return kPmpWrite;
  }
  return 0;
}

}  // namespace

HartCore::PmpRange HartCore::pmpRange(unsigned index) const {
  const uint64_t address = pmpaddr[index];
  switch (modeOf(pmpcfg[index])) {
    case kPmpTor: return {index == 0 ? 0 : pmpaddr[index - 1] << 2, address << 2};
    case kPmpNa4: return {address << 2, (address << 2) + 4};
    case kPmpNapot: {
      // t trailing ones select a naturally aligned region of 2^(t+3) bytes.
      const unsigned ones = static_cast<unsigned>(__builtin_ctzll(~address));
      const uint64_t size = 8ull << ones;
      const uint64_t base = (address << 2) & ~(size - 1);
      return {base, base + size};
    }
    case kPmpOff: break;
  }
  return {0, 0};
}

bool HartCore::pmpAllows(uint64_t pa, uint64_t size, Access access, Privilege p) const {
  // With PMP implemented, an S or U access that no entry matches fails.
  if (pmpActiveEntries == 0) return p == Privilege::Machine;
  for (unsigned i = 0; i < pmpActiveEntries; ++i) {
    if (modeOf(pmpcfg[i]) == kPmpOff) continue;
    const PmpRange r = pmpRange(i);
    if (pa + size <= r.begin || pa >= r.end) continue;
    // The lowest-numbered entry matching any byte decides, and it must match all of them.
    if (pa < r.begin || pa + size > r.end) return false;
    if (p == Privilege::Machine && !(pmpcfg[i] & kPmpLock)) return true;
    return (pmpcfg[i] & permissionFor(access)) != 0;
  }
  return p == Privilege::Machine;
}

bool HartCore::pmpUniformPage(uint64_t pageBase) const {
  const uint64_t pageEnd = pageBase + 4096;
  for (unsigned i = 0; i < pmpActiveEntries; ++i) {
    if (modeOf(pmpcfg[i]) == kPmpOff) continue;
    const PmpRange r = pmpRange(i);
    if (r.begin >= r.end || r.end <= pageBase || r.begin >= pageEnd) continue;  // does not touch the page
    if (r.begin > pageBase || r.end < pageEnd) return false;                   // a boundary falls inside
  }
  return true;
}

uint64_t HartCore::readPmpcfg(unsigned firstEntry) const {
  uint64_t value = 0;
  for (unsigned i = 0; i < 8; ++i) value |= static_cast<uint64_t>(pmpcfg[firstEntry + i]) << (8 * i);
  return value;
}

void HartCore::writePmpcfg(unsigned firstEntry, uint64_t value) {
  for (unsigned i = 0; i < 8; ++i) {
    if (pmpcfg[firstEntry + i] & kPmpLock) continue;
    uint8_t cfg = static_cast<uint8_t>(value >> (8 * i)) & 0x9f;  // bits 5-6 are reserved
    if ((cfg & (kPmpRead | kPmpWrite)) == kPmpWrite) cfg &= ~kPmpWrite;  // W without R is reserved
    pmpcfg[firstEntry + i] = cfg;
  }
  pmpChanged();
}

void HartCore::writePmpaddr(unsigned index, uint64_t value) {
  // A locked entry freezes its address, and a locked TOR entry also the one below it.
  if (pmpcfg[index] & kPmpLock) return;
  if (index + 1 < 64 && (pmpcfg[index + 1] & kPmpLock) && modeOf(pmpcfg[index + 1]) == kPmpTor) return;
  pmpaddr[index] = value & kPmpAddressMask;
  pmpChanged();
}

void HartCore::pmpChanged() {
  pmpActiveEntries = 0;
  for (unsigned i = 0; i < 64; ++i)
    if (modeOf(pmpcfg[i]) != kPmpOff) pmpActiveEntries = i + 1;
  dropCachedTranslations();
}

void HartCore::dropCachedTranslations() {
  localFences |= kFenceTlb | kFenceAllBlocks;
  attention.fetch_or(kAttnFence, std::memory_order_relaxed);
}

void HartCore::allowAllPhysicalMemory() {
  for (auto& c : pmpcfg) c = 0;
  for (auto& a : pmpaddr) a = 0;
  pmpaddr[0] = kPmpAddressMask;  // NAPOT over the whole address space
  pmpcfg[0] = static_cast<uint8_t>((kPmpNapot << kPmpModeShift) | kPmpRead | kPmpWrite | kPmpExecute);
  pmpChanged();
}

}  // namespace strata::cpu
