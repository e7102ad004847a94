// HartHotState: the part of a hart that every instruction touches (x and f
// registers, pc, fcsr, instret, the software TLBs and the run-loop signals),
// in one standard-layout struct. Generated code addresses its fields at fixed
// offsets (offsetof) from one base register; a snapshot copies the registers.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace strata::cpu {

// Software TLB entry for one 4 KiB virtual page of RAM: host = va + hostAddend.
struct TlbEntry {
  uint64_t tag = ~0ull;  // virtual page number; ~0 never matches
  uint64_t hostAddend = 0;
};
struct FetchTlbEntry {
  uint64_t tag = ~0ull;
  uint64_t hostAddend = 0;
  uint64_t physicalAddend = 0;  // pa = va + physicalAddend
};

struct HartHotState {
  static constexpr unsigned kTlbSlots = 256;
  static constexpr unsigned kDataTlbContexts = 4;   // U, S, S+SUM, M/bare
  static constexpr unsigned kFetchTlbContexts = 3;  // U, S, M
  static constexpr int kTimerCheckInterval = 512;   // blocks between timer polls

  // ---- architectural registers
  uint64_t x[33] = {};  // x[32] is the write sink for rd == x0
  uint64_t f[32] = {};
  uint64_t pc = 0;
  uint64_t instret = 0;  // instructions retired since reset; software writes to minstret do not change it
  uint32_t fflags = 0, frm = 0;

  // ---- run-loop signals, checked by every engine at block boundaries
  std::atomic<uint32_t> attention{0};  // AttentionBit set: leave the fast path
  int32_t timerCountdown = kTimerCheckInterval;  // signed: chained fast paths may overshoot
  // Set while an engine single-steps (Hart::step): blocks must not chain.
  uint32_t singleBlock = 0;
  // The interpreter's block chaining stops before a block that is translated
  // or has now run this many times, so a translating engine's run loop gets
  // to run (or translate) it; ~0: chain through everything.
  uint64_t chainUntilExecutions = ~0ull;

  // ---- software TLBs (derived state: rebuilt by updateTranslationContext and refills)
  TlbEntry readTlb[kDataTlbContexts][kTlbSlots];
  TlbEntry writeTlb[kDataTlbContexts][kTlbSlots];
  FetchTlbEntry fetchTlb[kFetchTlbContexts][kTlbSlots];
  TlbEntry* currentReadTlb = readTlb[3];
  TlbEntry* currentWriteTlb = writeTlb[3];
  FetchTlbEntry* currentFetchTlb = fetchTlb[2];
  unsigned dataContext = 3;
  unsigned fetchContext = 2;
  // TLB sets filled since the last flush (bit i: data set i, bit 4 + i: fetch
  // set i), so bursts of sfence.vma do not re-clear clean sets.
  uint32_t usedTlbSets = 0;
};
static_assert(std::is_standard_layout_v<HartHotState>);
static_assert(sizeof(TlbEntry) == 16 && sizeof(FetchTlbEntry) == 24);

}  // namespace strata::cpu
