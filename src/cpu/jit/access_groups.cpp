#include "cpu/jit/access_groups.h"

#include <algorithm>

namespace strata::cpu::jit {

namespace {

bool isStore(Op op) { return op >= Op::Sb && op <= Op::Sd; }
bool isBranch(Op op) { return op >= Op::Beq && op <= Op::Bgeu; }

// Emitted inline with no helper call on the translation's main line (loads
// and stores call helpers only on their slow paths, which the translator
// sends on through the group's fallback).
bool inlineWithoutHelper(Op op) {
  if (op >= Op::Lui && op <= Op::Auipc) return true;
  if (isBranch(op) || integerAccessSize(op) != 0) return true;
  if (op >= Op::Addi && op <= Op::Sraw) return true;  // RV64I register and immediate arithmetic
  switch (op) {
    case Op::Mul: case Op::Mulh: case Op::Mulhu: case Op::Mulw: case Op::Fence: return true;
    default: return false;
  }
}

// Whether `in` may write x[in.rd] (conservative: any instruction with a
// destination field, whatever its register file).
bool mayWriteX(const DecodedInsn& in) {
  return !isStore(in.op) && !isBranch(in.op) && in.op != Op::Fsw && in.op != Op::Fsd && in.rd != 0;
}

struct Member {
  uint32_t index;
  int64_t offset;  // address - root value
  unsigned size;
  bool store;
};

struct Candidate {
  uint32_t root;
  std::vector<Member> members;
  int64_t low, high;  // bytes [low, high) relative to the root
};

AccessGroup groupFrom(const Candidate& c) {
  AccessGroup g;
  g.first = c.members.front().index;
  g.last = c.members.back().index;
  g.low = c.low - c.members.front().offset;
  g.span = static_cast<uint32_t>(c.high - c.low);
  for (const Member& m : c.members) g.write = g.write || m.store;
  return g;
}

}  // namespace

unsigned integerAccessSize(Op op) {
  switch (op) {
    case Op::Lb: case Op::Lbu: case Op::Sb: return 1;
    case Op::Lh: case Op::Lhu: case Op::Sh: return 2;
    case Op::Lw: case Op::Lwu: case Op::Sw: return 4;
    case Op::Ld: case Op::Sd: return 8;
    default: return 0;
  }
}

AccessGroupPlan planAccessGroups(std::span<const DecodedInsn> insns) {
  // Each register's value as root + offset: roots are values the analysis
  // cannot relate (the registers at entry, results of anything but addi);
  // root 0 is x0, always zero.
  constexpr unsigned kRegisters = kDiscardRegister + 1;
  uint32_t root[kRegisters];
  int64_t offset[kRegisters] = {};
  for (unsigned r = 0; r < kRegisters; ++r) root[r] = r;
  uint32_t nextRoot = kRegisters;

  std::vector<Candidate> open, closed;
  const auto closeAll = [&] {
    for (Candidate& c : open) closed.push_back(std::move(c));
    open.clear();
  };
  uint32_t conditionalUntil = 0;  // pcOffset up to which instructions may be skipped by a forward branch
  for (uint32_t i = 0; i < insns.size(); ++i) {
    const DecodedInsn& in = insns[i];
    if (!inlineWithoutHelper(in.op)) closeAll();
    if (const unsigned size = integerAccessSize(in.op); size != 0) {
      const Member member{i, offset[in.rs1] + in.imm, size, isStore(in.op)};
      auto it = std::find_if(open.begin(), open.end(), [&](const Candidate& c) { return c.root == root[in.rs1]; });
      if (it != open.end() && (std::max(it->high, member.offset + size) - std::min(it->low, member.offset) >
                               static_cast<int64_t>(kMaxGroupSpan))) {
        closed.push_back(std::move(*it));
        open.erase(it);
        it = open.end();
      }
      if (it == open.end()) {
        open.push_back({root[in.rs1], {}, member.offset, member.offset + size});
        it = open.end() - 1;
      }
      it->members.push_back(member);
      it->low = std::min(it->low, member.offset);
      it->high = std::max(it->high, member.offset + static_cast<int64_t>(size));
    }
    const bool conditional = in.pcOffset < conditionalUntil;
    if (isBranch(in.op) && in.imm > 0)
      conditionalUntil = std::max<uint32_t>(conditionalUntil, static_cast<uint32_t>(in.pcOffset + in.imm));
    if (!mayWriteX(in) || in.rd >= kRegisters) continue;
    if (in.op == Op::Addi && !conditional) {
      root[in.rd] = root[in.rs1];
      offset[in.rd] = offset[in.rs1] + in.imm;
    } else {
      root[in.rd] = nextRoot++;
      offset[in.rd] = 0;
    }
  }
  closeAll();

  // Groups whose ranges overlap cannot share the one addend register: keep
  // the ones that save the most probes.
  std::stable_sort(closed.begin(), closed.end(),
                   [](const Candidate& a, const Candidate& b) { return a.members.size() > b.members.size(); });
  AccessGroupPlan plan;
  for (const Candidate& c : closed) {
    if (c.members.size() < 2) break;
    const AccessGroup g = groupFrom(c);
    const bool overlaps = std::any_of(plan.groups.begin(), plan.groups.end(), [&](const AccessGroup& other) {
      return g.first <= other.last && other.first <= g.last;
    });
    if (!overlaps) plan.groups.push_back(g);
  }
  std::sort(plan.groups.begin(), plan.groups.end(),
            [](const AccessGroup& a, const AccessGroup& b) { return a.first < b.first; });
  plan.groupOf.assign(insns.size(), -1);
  for (size_t g = 0; g < plan.groups.size(); ++g) {
    const auto it = std::find_if(closed.begin(), closed.end(), [&](const Candidate& c) {
      return c.members.front().index == plan.groups[g].first;
    });
    for (const Member& m : it->members) plan.groupOf[m.index] = static_cast<int>(g);
  }
  return plan;
}

}  // namespace strata::cpu::jit
