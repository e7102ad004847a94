// Address translation (Sv39/Sv48/Sv57 walks with A/D updates), the software
// TLBs, physical RAM/MMIO access for the slow paths, and instruction fetch
// into decoded blocks.
#include <algorithm>
#include <cstddef>

#include "cpu/clear_used.h"
#include "cpu/hart_core.h"

namespace strata::cpu {

namespace {

constexpr uint64_t kPteV = 1 << 0, kPteR = 1 << 1, kPteW = 1 << 2, kPteX = 1 << 3, kPteU = 1 << 4, kPteA = 1 << 6,
                   kPteD = 1 << 7;
constexpr uint64_t kPtePpnMask = (1ull << 44) - 1;
// Bits 63:54 hold N, PBMT and reserved fields; this hart implements none of them.
constexpr uint64_t kPteReservedMask = ~((1ull << 54) - 1);

unsigned levelsForMode(uint64_t mode) {
  switch (mode) {
    case csr::kSatpModeSv39: return 3;
    case csr::kSatpModeSv48: return 4;
    case csr::kSatpModeSv57: return 5;
    default: return 0;
  }
}

template <typename Entry, size_t kSlots>
void invalidate(Entry (&set)[kSlots]) {
  clearUsedEntries(std::span<Entry>(set), &Entry::tag);
}

}  // namespace

bool HartCore::pageFault(Access access, uint64_t va) {
  static constexpr uint64_t kCauses[] = {csr::kInstructionPageFault, csr::kLoadPageFault, csr::kStorePageFault};
  return raise(kCauses[static_cast<unsigned>(access)], va);
}

bool HartCore::accessFault(Access access, uint64_t va) {
  static constexpr uint64_t kCauses[] = {csr::kInstructionAccessFault, csr::kLoadAccessFault,
                                         csr::kStoreAccessFault};
  return raise(kCauses[static_cast<unsigned>(access)], va);
}

void HartCore::updateTranslationContext() {
  // S and U keep their own sets even without translation: PMP may grant them
  // less than M. (A satp write flushes every set.)
  Privilege dataPriv = priv;
  if (priv == Privilege::Machine && (mstatus & csr::kStatusMprv))
    dataPriv = static_cast<Privilege>((mstatus >> csr::kStatusMppShift) & 3);
  if (dataPriv == Privilege::Machine) dataContext = 3;
  else if (dataPriv == Privilege::User) dataContext = 0;
  else dataContext = (mstatus & csr::kStatusSum) ? 2 : 1;
  currentReadTlb = readTlb[dataContext];
  currentWriteTlb = writeTlb[dataContext];
  fetchContext = 2;
  if (priv != Privilege::Machine) fetchContext = priv == Privilege::User ? 0 : 1;
  currentFetchTlb = fetchTlb[fetchContext];
}

void HartCore::flushTlb() {
  for (unsigned i = 0; i < kDataTlbContexts; ++i) {
    if (!(usedTlbSets & (1u << i))) continue;
    invalidate(readTlb[i]);
    invalidate(writeTlb[i]);
  }
  for (unsigned i = 0; i < kFetchTlbContexts; ++i)
    if (usedTlbSets & (1u << (4 + i))) invalidate(fetchTlb[i]);
  usedTlbSets = 0;
}

void HartCore::fillTlb(uint64_t va, uint64_t pa, Access access) {
  uint8_t* host = memory.ram(pa & ~0xfffull, 4096);
  if (host == nullptr) return;  // MMIO or a partial RAM page: always take the slow path
  const uint64_t vpn = va >> 12;
  const unsigned slot = vpn & (kTlbSlots - 1);
  const uint64_t addend = reinterpret_cast<uint64_t>(host) - (va & ~0xfffull);
  usedTlbSets |= access == Access::Fetch ? (1u << (4 + fetchContext)) : (1u << dataContext);
  switch (access) {
    case Access::Fetch:
      currentFetchTlb[slot] = FetchTlbEntry{vpn, addend, (pa & ~0xfffull) - (va & ~0xfffull)};
      break;
    case Access::Store:
      currentWriteTlb[slot] = TlbEntry{vpn, addend};
      [[fallthrough]];  // a writable page with A and D set is readable too (W implies R)
    case Access::Load: currentReadTlb[slot] = TlbEntry{vpn, addend}; break;
  }
}

bool HartCore::translate(uint64_t va, unsigned size, Access access, uint64_t& pa) {
  if (triggersArmed && access != Access::Fetch && triggerFires(va, access)) return raise(csr::kBreakpoint, va);
  if (debugWatchArmed && access != Access::Fetch && debugWatchHit(va, size, access)) return raise(kDebuggerStopCause, va);
  Privilege effective = priv;
  if (access != Access::Fetch && priv == Privilege::Machine && (mstatus & csr::kStatusMprv))
    effective = static_cast<Privilege>((mstatus >> csr::kStatusMppShift) & 3);
  if (effective == Privilege::Machine || (satp >> 60) == csr::kSatpModeBare) {
    pa = va;
  } else if (!walk(va, access, effective, pa)) {
    return false;
  }
  if (!pmpAllows(pa, size, access, effective)) return accessFault(access, va);
  // Before the TLB fill: a round of live migration that flushes the TLBs sees
  // every page written through an entry filled since.
  if (access == Access::Store) memory.noteStore(pa);
  // While the debugger watches data, every load and store comes through here.
  if (cacheablePage(pa & ~0xfffull) && (access == Access::Fetch || !debugWatchArmed)) fillTlb(va, pa, access);
  return true;
}

bool HartCore::walk(uint64_t va, Access access, Privilege effective, uint64_t& pa, bool inspectOnly) {
  const unsigned levels = levelsForMode(satp >> 60);
  const unsigned vaBits = 12 + 9 * levels;
  // Bits above the virtual address width must equal its top bit.
  const int64_t canonical = static_cast<int64_t>(va << (64 - vaBits)) >> (64 - vaBits);
  if (static_cast<uint64_t>(canonical) != va) return pageFault(access, va);

  uint64_t table = (satp & csr::kSatpPpnMask) << 12;
  for (int level = static_cast<int>(levels) - 1; level >= 0; --level) {
    const uint64_t pteAddress = table + ((va >> (12 + 9 * level)) & 511) * 8;
    uint8_t* pteHost = memory.ram(pteAddress, 8);
    // Page-table reads are S-mode accesses for PMP.
    if (pteHost == nullptr || !pmpAllows(pteAddress, 8, Access::Load, Privilege::Supervisor))
      return accessFault(access, va);
    auto* ptePtr = reinterpret_cast<uint64_t*>(pteHost);
    uint64_t pte = __atomic_load_n(ptePtr, __ATOMIC_ACQUIRE);
    for (;;) {
      if (!(pte & kPteV) || (!(pte & kPteR) && (pte & kPteW)) || (pte & kPteReservedMask))
        return pageFault(access, va);
      const uint64_t ppn = (pte >> 10) & kPtePpnMask;
      if (!(pte & (kPteR | kPteX))) {  // pointer to the next level
        if (level == 0) return pageFault(access, va);
        table = ppn << 12;
        break;
      }
      const uint64_t superpageMask = (1ull << (9 * level)) - 1;
      if (ppn & superpageMask) return pageFault(access, va);  // misaligned superpage
      const uint64_t pageOffsetMask = (1ull << (12 + 9 * level)) - 1;
      if (inspectOnly) {
        pa = ((ppn << 12) & ~pageOffsetMask) | (va & pageOffsetMask);
        return true;
      }
      // Leaf: permission checks.
      const bool userPage = (pte & kPteU) != 0;
      if (effective == Privilege::User && !userPage) return pageFault(access, va);
      if (effective == Privilege::Supervisor && userPage &&
          (access == Access::Fetch || !(mstatus & csr::kStatusSum)))
        return pageFault(access, va);
      switch (access) {
        case Access::Fetch:
          if (!(pte & kPteX)) return pageFault(access, va);
          break;
        case Access::Load:
          if (!(pte & kPteR) && !((mstatus & csr::kStatusMxr) && (pte & kPteX))) return pageFault(access, va);
          break;
        case Access::Store:
          if (!(pte & kPteW)) return pageFault(access, va);
          break;
      }
      const uint64_t needed = kPteA | (access == Access::Store ? kPteD : 0);
      if ((pte & needed) != needed) {
        // Set A/D atomically: another hart may be updating the same PTE, and the
        // guest may have changed it since we read it; re-check on failure.
        uint64_t expected = pte;
        if (!__atomic_compare_exchange_n(ptePtr, &expected, pte | needed, false, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE)) {
          pte = expected;
          continue;
        }
        memory.noteStore(pteAddress);
      }
      pa = ((ppn << 12) & ~pageOffsetMask) | (va & pageOffsetMask);
      return true;
    }
  }
  return pageFault(access, va);  // unreachable: level 0 always decides
}

bool HartCore::readPhysical(uint64_t pa, unsigned size, uint64_t& value, Access access, uint64_t va) {
  if (const uint8_t* host = memory.ram(pa, size)) {
    value = 0;
    std::memcpy(&value, host, size);
    return true;
  }
  if (memory.mmio == nullptr) return accessFault(access, va);
  if (pa & (size - 1)) {  // devices see only aligned accesses: split
    uint64_t result = 0;
    for (unsigned i = 0; i < size; ++i) {
      uint64_t byte;
      if (!readPhysical(pa + i, 1, byte, access, va)) return false;
      result |= (byte & 0xff) << (8 * i);
    }
    value = result;
    return true;
  }
  uint64_t raw = 0;
  if (!memory.mmio->mmioRead(pa, size, raw)) return accessFault(access, va);
  value = size == 8 ? raw : raw & ((1ull << (8 * size)) - 1);
  return true;
}

bool HartCore::writePhysical(uint64_t pa, unsigned size, uint64_t value, uint64_t va) {
  if (uint8_t* host = memory.ram(pa, size)) {
    std::memcpy(host, &value, size);
    return true;
  }
  if (memory.mmio == nullptr) return accessFault(Access::Store, va);
  if (pa & (size - 1)) {
    for (unsigned i = 0; i < size; ++i)
      if (!writePhysical(pa + i, 1, (value >> (8 * i)) & 0xff, va)) return false;
    return true;
  }
  if (size < 8) value &= (1ull << (8 * size)) - 1;
  if (!memory.mmio->mmioWrite(pa, size, value)) return accessFault(Access::Store, va);
  return true;
}

bool HartCore::loadSlow(uint64_t va, unsigned size, uint64_t& out) {
  const uint64_t offset = va & 0xfff;
  if (offset + size <= 4096) {
    uint64_t pa;
    if (!translate(va, size, Access::Load, pa)) return false;
    return readPhysical(pa, size, out, Access::Load, va);
  }
  // Crosses a page: translate both halves before touching either.
  const uint64_t secondVa = (va | 0xfff) + 1;
  const unsigned firstBytes = static_cast<unsigned>(secondVa - va);
  uint64_t firstPa, secondPa;
  if (!translate(va, firstBytes, Access::Load, firstPa) ||
      !translate(secondVa, size - firstBytes, Access::Load, secondPa))
    return false;
  uint64_t result = 0;
  for (unsigned i = 0; i < size; ++i) {
    uint64_t byte;
    const uint64_t pa = i < firstBytes ? firstPa + i : secondPa + (i - firstBytes);
    if (!readPhysical(pa, 1, byte, Access::Load, va)) return false;
    result |= (byte & 0xff) << (8 * i);
  }
  out = result;
  return true;
}

bool HartCore::storeSlow(uint64_t va, unsigned size, uint64_t value) {
  const uint64_t offset = va & 0xfff;
  if (offset + size <= 4096) {
    uint64_t pa;
    if (!translate(va, size, Access::Store, pa)) return false;
    return writePhysical(pa, size, value, va);
  }
  const uint64_t secondVa = (va | 0xfff) + 1;
  const unsigned firstBytes = static_cast<unsigned>(secondVa - va);
  uint64_t firstPa, secondPa;
  if (!translate(va, firstBytes, Access::Store, firstPa) ||
      !translate(secondVa, size - firstBytes, Access::Store, secondPa))
    return false;
  for (unsigned i = 0; i < size; ++i) {
    const uint64_t pa = i < firstBytes ? firstPa + i : secondPa + (i - firstBytes);
    if (!writePhysical(pa, 1, (value >> (8 * i)) & 0xff, va)) return false;
  }
  return true;
}

uint8_t* HartCore::atomicAddress(uint64_t va, unsigned size, bool isLoadReserved) {
  if (va & (size - 1)) {
    raise(isLoadReserved ? csr::kLoadMisaligned : csr::kStoreMisaligned, va);
    return nullptr;
  }
  const Access access = isLoadReserved ? Access::Load : Access::Store;
  const uint64_t vpn = va >> 12;
  const TlbEntry* set = isLoadReserved ? currentReadTlb : currentWriteTlb;
  const TlbEntry& e = set[vpn & (kTlbSlots - 1)];
  if (e.tag == vpn) return reinterpret_cast<uint8_t*>(va + e.hostAddend);
  uint64_t pa;
  if (!translate(va, size, access, pa)) return nullptr;
  uint8_t* host = memory.ram(pa, size);
  if (host == nullptr) {
    accessFault(access, va);  // atomics to devices are not supported
    return nullptr;
  }
  return host;
}

Block* HartCore::lookupBlock() {
  const uint64_t va = pc;
  if (triggersArmed && triggerFires(va, Access::Fetch)) [[unlikely]] {
    raise(csr::kBreakpoint, va);
    return nullptr;
  }
  const FetchTlbEntry& e = currentFetchTlb[(va >> 12) & (kTlbSlots - 1)];
  uint64_t pa;
  if (e.tag == (va >> 12)) [[likely]] {
    pa = va + e.physicalAddend;
  } else if (!translate(va, 2, Access::Fetch, pa)) {
    return nullptr;
  }
  if (Block* block = blocks.find(pa)) [[likely]]
    return block;
  return buildBlock(va, pa);
}

Block* HartCore::buildBlock(uint64_t va, uint64_t pa) {
  const uint8_t* host = memory.ram(pa, 2);
  if (host == nullptr) {
    accessFault(Access::Fetch, va);
    return nullptr;
  }
  if (!cacheablePage(pa & ~0xfffull)) return buildRestrictedBlock(va, pa);
  const uint64_t pageRemaining = 4096 - (pa & 0xfff);
  const uint64_t ramRemaining = memory.ramBase + memory.ramSize - pa;
  const uint64_t available = std::min(pageRemaining, ramRemaining);

  DecodedInsn insns[kMaxBlockInstructions];
  unsigned count = 0;
  uint32_t offset = 0;
  while (count < kMaxBlockInstructions && offset + 2 <= available) {
    // A debugger's breakpoint starts a block of its own, so the pc is checked there.
    if (count > 0 && !debugPoints.breakpoints.empty() && debugBreakpointAt(va + offset)) break;
    uint16_t low;
    std::memcpy(&low, host + offset, 2);
    uint32_t word = low;
    if (instructionLength(low) == 4) {
      if (offset + 4 > available) {
        if (count == 0) return buildStraddlingBlock(va, pa);
        break;  // let the straddling instruction start its own block
      }
      std::memcpy(&word, host + offset, 4);
    }
    DecodedInsn insn = decodeAny(word);
    insn.pcOffset = static_cast<uint16_t>(offset);
    insns[count++] = insn;
    offset += instructionLength(low);
    if (endsBlock(insn)) break;
  }
  return blocks.insert(pa, insns, count, offset, host);
}

Block* HartCore::buildStraddlingBlock(uint64_t va, uint64_t pa) {
  uint16_t low, high;
  std::memcpy(&low, memory.ram(pa, 2), 2);
  uint64_t secondPa;
  if (!translate(va + 2, 2, Access::Fetch, secondPa)) return nullptr;  // tval = va + 2: the missing half
  const uint8_t* secondHost = memory.ram(secondPa, 2);
  if (secondHost == nullptr) {
    accessFault(Access::Fetch, va + 2);
    return nullptr;
  }
  std::memcpy(&high, secondHost, 2);
  return scratchBlock(pa, static_cast<uint32_t>(low) | static_cast<uint32_t>(high) << 16);
}

Block* HartCore::buildRestrictedBlock(uint64_t va, uint64_t pa) {
  uint16_t low;
  std::memcpy(&low, memory.ram(pa, 2), 2);
  const unsigned length = instructionLength(low);
  if ((pa & 0xfff) + length > 4096) return buildStraddlingBlock(va, pa);
  uint32_t word = low;
  if (length == 4) {
    if (memory.ram(pa, 4) == nullptr || !pmpAllows(pa + 2, 2, Access::Fetch, priv)) {
      accessFault(Access::Fetch, va + 2);
      return nullptr;
    }
    std::memcpy(&word, memory.ram(pa, 4), 4);
  }
  return scratchBlock(pa, word);
}

Block* HartCore::scratchBlock(uint64_t pa, uint32_t word) {
  static_assert(offsetof(ScratchBlock, insns) == sizeof(Block));
  scratch.block = Block{};
  scratch.insns[0] = decodeAny(word);
  scratch.insns[0].pcOffset = 0;
  scratch.insns[1] = DecodedInsn{};
  scratch.insns[1].op = Op::BlockEnd;
  scratch.insns[1].pcOffset = static_cast<uint16_t>(instructionLength(static_cast<uint16_t>(word)));
  scratch.block.physicalPc = pa;
  scratch.block.instructionCount = 1;
  scratch.block.byteLength = scratch.insns[1].pcOffset;
  scratch.block.insns = scratch.insns;
  return &scratch.block;
}

}  // namespace strata::cpu
