// Access groups: loads and stores of one translation whose addresses are the
// same guest value plus constants (`sd a4,0(a5); sd a4,8(a5); ...`, or
// `addi t4,a1,8; sd a3,0(t4)` beside `sd a4,16(a1)`), found by tracking which
// registers hold "a value from earlier plus a constant". The translator probes
// the soft TLB once for the bytes a whole group touches and, on a hit, runs
// every member with that addend and no probe of its own; on a miss (a page
// not in the TLB, or a range crossing a page) it runs the instructions of the
// group's cluster (itself, or two groups whose ranges overlap, as a copy
// loop's loads and stores) with their own probes.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "cpu/decoder.h"

namespace strata::cpu::jit {

struct AccessGroup {
  uint32_t first = 0;  // index of the first member in the translation's instructions
  uint32_t last = 0;   // ... and of the last one
  int64_t low = 0;     // the lowest byte any member touches, relative to the first member's address
  uint32_t span = 0;   // bytes from `low` to the end of the highest access
  bool write = false;  // a member stores: probe the write TLB (a writable page is readable too)
  unsigned addend = 0;  // which of the two addend registers holds its TLB addend
  unsigned cluster = 0;
};

// Groups whose ranges overlap (at most two, with different addend
// registers), and the instructions from the first one's start to the last
// one's end: what a miss runs with every access probing for itself.
struct AccessCluster {
  uint32_t first = 0, last = 0;
};

struct AccessGroupPlan {
  std::vector<AccessGroup> groups;      // in order of `first`
  std::vector<AccessCluster> clusters;  // in order of `first`; they do not overlap
  std::vector<int> groupOf;             // per instruction: its group, or -1
};

// Integer load/store width in bytes, 0 for anything else.
unsigned integerAccessSize(Op op);

// Plans groups over `insns` (a translation's instructions, without the
// sentinel). Between a group's first and last member every instruction is
// one the translator emits inline without a helper call (so the addend,
// held in a caller-saved register, survives). Groups have 2+ members and
// span at most kMaxGroupSpan bytes. Within the range of a cluster's second
// group (addend 1) every load and store is a member of one of its two
// groups (an access probing for itself would need that register).
inline constexpr uint32_t kMaxGroupSpan = 512;
AccessGroupPlan planAccessGroups(std::span<const DecodedInsn> insns);

}  // namespace strata::cpu::jit
