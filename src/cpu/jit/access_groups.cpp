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

  // The groups that save the most probes first; one overlapping another
  // takes the second addend register if its range holds no other access.
  std::stable_sort(closed.begin(), closed.end(),
                   [](const Candidate& a, const Candidate& b) { return a.members.size() > b.members.size(); });
  std::vector<const Candidate*> chosen;
  std::vector<AccessGroup> groups;
  const auto memberOf = [](const Candidate& c, uint32_t index) {
    return std::any_of(c.members.begin(), c.members.end(), [&](const Member& m) { return m.index == index; });
  };
  for (const Candidate& c : closed) {
    if (c.members.size() < 2) break;
    AccessGroup g = groupFrom(c);
    std::vector<size_t> overlapping;
    for (size_t k = 0; k < groups.size(); ++k)
      if (g.first <= groups[k].last && groups[k].first <= g.last) overlapping.push_back(k);
    if (overlapping.size() > 1) continue;
    if (overlapping.size() == 1) {
      const size_t partner = overlapping.front();
      const bool paired = std::any_of(groups.begin(), groups.end(), [&](const AccessGroup& other) {
        return other.cluster == groups[partner].cluster && &other != &groups[partner];
      });
      bool alone = true;  // every access in g's range belongs to g or its partner
      for (uint32_t i = g.first; i <= g.last && alone; ++i)
        alone = integerAccessSize(insns[i].op) == 0 || memberOf(c, i) || memberOf(*chosen[partner], i);
      if (paired || !alone) continue;
      g.addend = 1;
      g.cluster = groups[partner].cluster;
    } else {
      g.cluster = static_cast<unsigned>(groups.size());  // a new cluster, numbered in order below
    }
    groups.push_back(g);
    chosen.push_back(&c);
  }

  AccessGroupPlan plan;
  plan.groupOf.assign(insns.size(), -1);
  std::vector<size_t> order(groups.size());
  for (size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return groups[a].first < groups[b].first; });
  std::vector<int> clusterIndex(groups.size(), -1);
  for (const size_t k : order) {
    AccessGroup g = groups[k];
    int& cluster = clusterIndex[g.cluster];
    if (cluster < 0) {
      cluster = static_cast<int>(plan.clusters.size());
      plan.clusters.push_back({g.first, g.last});
    }
    AccessCluster& range = plan.clusters[static_cast<size_t>(cluster)];
    range.first = std::min(range.first, g.first);
    range.last = std::max(range.last, g.last);
    g.cluster = static_cast<unsigned>(cluster);
    for (const Member& m : chosen[k]->members) plan.groupOf[m.index] = static_cast<int>(plan.groups.size());
    plan.groups.push_back(g);
  }
  return plan;
}

}  // namespace strata::cpu::jit
