// Block translation to x86-64. The most used guest registers live in host
// registers (kPinned) while generated code runs, the rest in HartHotState;
// RV64IM arithmetic, branches, jumps, loads and stores are generated inline,
// the hot F/D instructions and fflags/frm/fcsr accesses too (jit_fp.h), with
// the most used double f registers kept in xmm registers, the
// soft-TLB hit path included, a few common pairs fused (emitFusedPair),
// short forward branches over in-place updates turned into cmovs
// (emitConditionalSkip), a block's translation running on into the blocks
// after its conditional branch (gatherTrace), values forwarded in rax, one
// TLB probe for each group of accesses off one base (access_groups.h);
// everything else calls the HartCore executor the interpreter uses for that instruction. Exits mirror
// the interpreter's executeBlock exactly: pc and instret are written at every
// exit, and a trap in the middle of a block leaves pc at the faulting
// instruction with instret counting only the ones before it.
#include "cpu/jit/translator.h"

#include <xbyak/xbyak.h>

#include <algorithm>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <span>
#include <vector>

#include "cpu/block_cache.h"
#include "cpu/divide.h"
#include "cpu/hart_core.h"
#include "cpu/jit/access_groups.h"
#include "cpu/jit/jit_fp.h"

namespace strata::cpu::jit {

namespace {

using namespace Xbyak::util;
using Xbyak::Label;

// Generated code reaches HartCore and its HartHotState through one pointer.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
static_assert(offsetof(HartCore, x) == offsetof(HartHotState, x), "HartHotState must be HartCore's first base");
#pragma GCC diagnostic pop
constexpr int kX = offsetof(HartHotState, x);
constexpr int kPc = offsetof(HartHotState, pc);
constexpr int kInstret = offsetof(HartHotState, instret);
constexpr int kAttention = offsetof(HartHotState, attention);
constexpr int kTimerCountdown = offsetof(HartHotState, timerCountdown);
constexpr int kSingleBlock = offsetof(HartHotState, singleBlock);
constexpr int kReadTlb = offsetof(HartHotState, currentReadTlb);
constexpr int kWriteTlb = offsetof(HartHotState, currentWriteTlb);
constexpr int kFetchTlb = offsetof(HartHotState, currentFetchTlb);
static_assert(JitEngine::kJumpCacheSlots == 4096 && sizeof(JumpCacheEntry) == 16);
static_assert(HartHotState::kTlbSlots == 256, "the TLB index below masks with 0xff");

// Guest registers kept in host registers by generated code: the ones compiled
// RISC-V code uses most (a5, a0, sp, a4, s0, a3, a1, by static counts over
// the default guest's kernel and busybox). The enter trampoline loads them,
// the exit trampoline stores them back, and the callHelper thunk writes them
// to HartHotState before every helper and reloads them after (helpers read
// and write x there, and r8-r11 do not survive calls), so outside generated
// code HartHotState::x is always complete.
struct PinnedRegister {
  unsigned guest;
  int host;  // Xbyak register index
};
constexpr PinnedRegister kPinned[] = {{15, Xbyak::Operand::R13}, {10, Xbyak::Operand::R14}, {2, Xbyak::Operand::R15},
                                      {14, Xbyak::Operand::R8},  {8, Xbyak::Operand::R9},   {13, Xbyak::Operand::R10},
                                      {11, Xbyak::Operand::R11}};

Xbyak::Address guestSlot(unsigned r) { return qword[rbx + kX + 8 * static_cast<int>(r)]; }
// Pinned registers to HartHotState (toMemory) or back.
void syncPinned(Xbyak::CodeGenerator& code, bool toMemory) {
  for (const PinnedRegister& p : kPinned) {
    if (toMemory) code.mov(guestSlot(p.guest), Xbyak::Reg64(p.host));
    else code.mov(Xbyak::Reg64(p.host), guestSlot(p.guest));
  }
}

// ---- helpers called from generated code (SysV ABI, plain functions)

bool helperLoad(HartCore* h, uint64_t va, uint64_t size, uint64_t* out) {
  return h->loadSlow(va, static_cast<unsigned>(size), *out);
}
bool helperStore(HartCore* h, uint64_t va, uint64_t value, uint64_t size) {
  return h->storeSlow(va, static_cast<unsigned>(size), value);
}
bool helperAtomic(HartCore* h, const DecodedInsn* in) { return h->executeAtomic(*in); }
bool helperFp(HartCore* h, const DecodedInsn* in) { return h->executeFp(*in); }
bool helperCsr(HartCore* h, const DecodedInsn* in, uint64_t retiredInBlock) {
  return h->executeCsr(*in, retiredInBlock);
}
bool helperSystem(HartCore* h, const DecodedInsn* in) { return h->executeSystem(*in); }
bool helperIllegal(HartCore* h, const DecodedInsn* in) { return h->raiseIllegal(*in); }
void helperTakeException(HartCore* h) { h->takeException(); }
uint64_t helperMulDiv(uint64_t a, uint64_t b, uint64_t op) {
  switch (static_cast<Op>(op)) {
    case Op::Mulhsu: return mulhsu(a, b);
    case Op::Div: return divSigned(a, b);
    case Op::Divu: return divUnsigned(a, b);
    case Op::Rem: return remSigned(a, b);
    case Op::Remu: return remUnsigned(a, b);
    case Op::Divw: return divSignedWord(a, b);
    case Op::Divuw: return divUnsignedWord(a, b);
    case Op::Remw: return remSignedWord(a, b);
    default: return remUnsignedWord(a, b);  // Remuw
  }
}

// Each guest register as an operand, built once: its host register if
// pinned, else its HartHotState slot (64 and 32 bits).
struct GuestOperands {
  GuestOperands() {
    for (unsigned r = 0; r <= kDiscardRegister; ++r) {
      memory.push_back(guestSlot(r));
      memory32.push_back(dword[rbx + kX + 8 * static_cast<int>(r)]);
    }
    for (const PinnedRegister& p : kPinned) {
      pinned[p.guest] = Xbyak::Reg64(p.host);
      pinned32[p.guest] = Xbyak::Reg32(p.host);
      isPinned[p.guest] = true;
    }
  }
  std::vector<Xbyak::Address> memory, memory32;
  Xbyak::Reg64 pinned[kDiscardRegister + 1];
  Xbyak::Reg32 pinned32[kDiscardRegister + 1];
  bool isPinned[kDiscardRegister + 1] = {};
};
const GuestOperands& guestOperands() {
  static const GuestOperands operands;
  return operands;
}

class BlockTranslator : public Xbyak::CodeGenerator {
 public:
  BlockTranslator(CodeCache& cache, const Block& block, BlockCache& blocks, JitEngine& engine,
                  const Trampolines& trampolines)
      : CodeGenerator(cache.remaining(), cache.cursor()),
        block_(block),
        engine_(engine),
        exitToRunLoop_(trampolines.exitToRunLoop),
        callHelper_(trampolines.callHelper),
        pageOffset_(block.physicalPc & 0xfff) {
    gatherTrace(blocks);
    chooseBorrowedRegisters();
    fpRegisters_ = planFpRegisters(std::span<const DecodedInsn>(insns_.data(), insns_.size() - 1), loopsToItsStart());
    groups_ = planAccessGroups(std::span<const DecodedInsn>(insns_.data(), insns_.size() - 1));
    for (size_t c = 0; c < groups_.clusters.size(); ++c) clusterRejoins_.push_back(&newLabel());
    clusterCopied_.assign(groups_.clusters.size(), false);
  }

  void translate() {
    const auto count = static_cast<uint32_t>(insns_.size()) - 1;  // without the sentinel
    enterBorrowed();
    L(body_);
    // Fell off a block cut by its size or the page end.
    if (!emitRange(0, count)) emitDirectExit(insns_[count].pcOffset, count);
    // Deferred emitters may defer more (fault stubs): index, and copy before calling.
    for (size_t i = 0; i < deferred_.size(); ++i) {
      const std::function<void()> emit = deferred_[i];
      emit();
    }
    emitSharedExits();
  }

  // After ready(): where the direct exits' jumps are.
  void appendDirectExits(std::vector<DirectExit>& out) const {
    for (const DirectExitLabel& exit : directExits_)
      out.push_back({const_cast<uint8_t*>(exit.site->getAddress()), exit.targetPa});
  }

 private:
  // Emits instructions [begin, end); true if the translation's last
  // instruction ended it. Access groups are probed at their first member
  // on the main line; a group's fallback copy (inGroupCopy_) emits its range
  // again with every access probing for itself.
  bool emitRange(uint32_t begin, uint32_t end) {
    const auto count = static_cast<uint32_t>(insns_.size()) - 1;
    for (uint32_t i = begin; i < end; ++i) {
      if (inGroupCopy_) {
        if (const auto entry = copyEntries_.find(i); entry != copyEntries_.end()) L(*entry->second);
      }
      const DecodedInsn& in = insns_[i];
      raxHolds_ = raxAfter_;
      raxAfter_ = kNothingInRax;
      // Neither half of a fused pair can trap or end the block, so exits
      // after it still retire by index.
      if (i + 1 < count && emitFusedPair(in, insns_[i + 1])) {
        ++i;
        continue;
      }
      if (const uint32_t join = emitConditionalSkip(i, in); join != 0) {
        i = join - 1;
        continue;
      }
      const int group = inGroupCopy_ ? -1 : groups_.groupOf[i];
      if (group >= 0 && groups_.groups[group].first == i) emitGroupProbe(static_cast<unsigned>(group));
      emitInstruction(i, in);
      if (group >= 0) {
        const unsigned cluster = groups_.groups[group].cluster;
        if (groups_.clusters[cluster].last == i) L(*clusterRejoins_[cluster]);
      }
      if (endsBlock(in) && i + 1 == count) return true;
    }
    return false;
  }

  // Access groups (access_groups.h): rdi or rsi holds the group's TLB
  // addend from its probe to its last member. A miss goes on in the
  // fallback copy of its cluster's instructions (entered at the group's
  // first member, forwarding nothing), which rejoins the main line after the
  // cluster's last instruction (rax then holds what the main line expects:
  // the last member's result, or nothing). An access of no group inside a
  // cluster that takes its slow path (a helper call, which clobbers both
  // addend registers) goes on in the copy too.
  const Xbyak::Reg64& addendRegister(const AccessGroup& group) const { return group.addend == 0 ? rdi : rsi; }
  void emitGroupProbe(unsigned g) {
    const AccessGroup& group = groups_.groups[g];
    const DecodedInsn& first = insns_[group.first];
    const Xbyak::Reg64& addend = addendRegister(group);
    copyX(rdx, first.rs1);
    const int64_t start = first.imm + group.low;
    if (start != 0) add(rdx, static_cast<int32_t>(start));
    mov(addend.cvt32(), edx);
    shr(addend.cvt32(), 12 - 4);  // slot * 16 bytes
    and_(addend.cvt32(), (HartHotState::kTlbSlots - 1) << 4);
    add(addend, qword[rbx + (group.write ? kWriteTlb : kReadTlb)]);
    lea(rdx, ptr[rdx + (group.span - 1)]);
    shr(rdx, 12);
    cmp(rdx, qword[addend]);
    jne(copyEntry(group.first), T_NEAR);
    mov(addend, qword[addend + 8]);
    if (clusterCopied_[group.cluster]) return;
    clusterCopied_[group.cluster] = true;
    deferred_.push_back([this, cluster = group.cluster] {
      inGroupCopy_ = true;
      raxAfter_ = kNothingInRax;
      emitRange(groups_.clusters[cluster].first, groups_.clusters[cluster].last + 1);
      inGroupCopy_ = false;
      jmp(*clusterRejoins_[cluster], T_NEAR);
    });
  }
  Label& copyEntry(uint32_t index) {
    Label*& entry = copyEntries_[index];
    if (entry == nullptr) entry = &newLabel();
    return *entry;
  }
  // Where an access at `index` outside every group goes on after its slow
  // path: the copy's next instruction when a cluster runs past it, else null (back to the main line).
  Label* slowPathDivert(uint32_t index) {
    if (inGroupCopy_) return nullptr;
    for (const AccessCluster& cluster : groups_.clusters)
      if (cluster.first < index && index < cluster.last) return &copyEntry(index + 1);
    return nullptr;
  }
  // A register operand holding x[r] for a member's address or value: its
  // host register, rax when forwarded, else `scratch` loaded from its slot.
  Xbyak::Reg64 groupOperand(unsigned r, const Xbyak::Reg64& scratch) {
    if (inRax(r)) return rax;
    if (inHostRegister(r)) return static_cast<const Xbyak::Reg64&>(xreg(r));
    mov(scratch, xreg(r));
    return scratch;
  }
  void emitGroupedLoad(uint32_t index, const DecodedInsn& in) {
    const Xbyak::Reg64 base = groupOperand(in.rs1, rax);
    loadExtended(in.op, base + addendRegister(groups_.groups[groups_.groupOf[index]]) + in.imm);
    storeRax(in.rd);
  }
  void emitGroupedStore(uint32_t index, const DecodedInsn& in, unsigned size) {
    const Xbyak::Reg64 value = groupOperand(in.rs2, rdx);
    const Xbyak::Reg64 base = groupOperand(in.rs1, rcx);
    const Xbyak::RegExp address = base + addendRegister(groups_.groups[groups_.groupOf[index]]) + in.imm;
    switch (size) {
      case 1: mov(byte[address], value.cvt8()); break;
      case 2: mov(word[address], value.cvt16()); break;
      case 4: mov(dword[address], value.cvt32()); break;
      default: mov(qword[address], value); break;
    }
  }
  bool isGroupMember(uint32_t index) const { return !inGroupCopy_ && groups_.groupOf[index] >= 0; }

  // x[r] (64 or 32 bits) as an operand: its host register if pinned (and
  // not displaced) or borrowed, else its HartHotState slot.
  const Xbyak::Operand& xreg(unsigned r) const {
    if (borrowed_[r] != nullptr) return borrowed_[r]->host;
    const GuestOperands& operands = guestOperands();
    if (operands.isPinned[r] && !displaced_[r]) return operands.pinned[r];
    return operands.memory[r];
  }
  const Xbyak::Operand& xreg32(unsigned r) const {
    if (borrowed_[r] != nullptr) return borrowed_[r]->host32;
    const GuestOperands& operands = guestOperands();
    if (operands.isPinned[r] && !displaced_[r]) return operands.pinned32[r];
    return operands.memory32[r];
  }
  bool inHostRegister(unsigned r) const {
    return borrowed_[r] != nullptr || (guestOperands().isPinned[r] && !displaced_[r]);
  }

  // Borrowed registers: in a translation that never names some pinned guest
  // register (or, looping back to its own start, names it less), that
  // register's host register holds an unpinned guest register the
  // translation uses more often instead (sha256's rounds keep s6, s7 and a2
  // busy and never touch s0 or sp; coremark_like's matrix loop sums in t0).
  // The displaced value lives in its HartHotState slot meanwhile. Outside the translation's body the usual mapping
  // holds: leaveBorrowed() restores it before every exit (chained blocks,
  // the run loop, fault stubs) and every helper call (whose thunk syncs the
  // pinned registers), and helper calls borrow again after.
  struct Borrowed {
    unsigned guest;        // the unpinned guest register now in `host`
    unsigned displaced;    // the pinned guest register `host` normally holds
    Xbyak::Reg64 host;
    Xbyak::Reg32 host32;
  };
  // Outside loops a borrow takes only a pinned register the translation
  // never names, for one it uses this often: below it the entry and exit
  // moves (at every exit path) cost more than they save. A translation that
  // loops back to its own start pays them once per loop, not per iteration:
  // there any register used more often than the one it displaces is worth it.
  static constexpr uint32_t kBorrowMinUses = 6;
  static constexpr uint32_t kLoopBorrowMinUses = 1;
  bool loopsToItsStart() const {
    for (size_t i = 0; i + 1 < insns_.size(); ++i) {
      const DecodedInsn& in = insns_[i];
      if (((in.op >= Op::Beq && in.op <= Op::Bgeu) || in.op == Op::Jal) && in.pcOffset + in.imm == 0) return true;
    }
    return false;
  }
  void chooseBorrowedRegisters() {
    uint32_t uses[kDiscardRegister + 1] = {};
    for (size_t i = 0; i + 1 < insns_.size(); ++i) {  // every register field, whatever its file: conservative
      for (const unsigned r : {insns_[i].rd, insns_[i].rs1, insns_[i].rs2, insns_[i].rs3}) ++uses[r];
    }
    const bool loop = loopsToItsStart();
    const uint32_t minUses = loop ? kLoopBorrowMinUses : kBorrowMinUses;
    std::vector<unsigned> candidates;
    for (unsigned r = 1; r < kDiscardRegister; ++r)
      if (!guestOperands().isPinned[r] && uses[r] >= minUses) candidates.push_back(r);
    std::stable_sort(candidates.begin(), candidates.end(), [&](unsigned a, unsigned b) { return uses[a] > uses[b]; });
    std::vector<PinnedRegister> pinned(std::begin(kPinned), std::end(kPinned));
    std::stable_sort(pinned.begin(), pinned.end(),
                     [&](const PinnedRegister& a, const PinnedRegister& b) { return uses[a.guest] < uses[b.guest]; });
    auto next = candidates.begin();
    for (const PinnedRegister& p : pinned) {  // the least used pinned register for the most used candidate
      if (next == candidates.end() || uses[*next] < uses[p.guest] + minUses || (!loop && uses[p.guest] != 0)) break;
      borrows_.push_back({*next++, p.guest, Xbyak::Reg64(p.host), Xbyak::Reg32(p.host)});
    }
    for (const Borrowed& b : borrows_) {
      borrowed_[b.guest] = &b;
      displaced_[b.displaced] = true;
    }
  }
  // Kept f registers (FpRegisterMap) follow the borrowed ones: loaded on
  // entry (inline) and after helper calls, the written ones stored before
  // exits and helper calls; the last two through the translation's own
  // subroutines (emitKeptFpSubroutines), as they sit on every exit and
  // slow path.
  void enterBorrowed() {
    for (const Borrowed& b : borrows_) {
      mov(guestSlot(b.displaced), b.host);
      mov(b.host, guestSlot(b.guest));
    }
    loadKeptFpRegisters();
  }
  void leaveBorrowed() {
    for (const Borrowed& b : borrows_) {
      mov(guestSlot(b.guest), b.host);
      mov(b.host, guestSlot(b.displaced));
    }
    if (fpRegisters_.anyWritten) call(storeKeptFp_);
  }
  void reloadKeptFpRegisters() {
    if (fpRegisters_.anyKept) call(loadKeptFp_);
  }
  void loadKeptFpRegisters() {
    for (unsigned r = 0; r < 32; ++r)
      if (fpRegisters_.kept(r)) movsd(Xbyak::Xmm(fpRegisters_.xmm[r]), fRegisterSlot(r));
  }
  // Called from generated code (rsp 16-byte aligned, so the scratch slot at [rsp] is untouched).
  void emitKeptFpSubroutines() {
    L(storeKeptFp_);
    for (unsigned r = 0; r < 32; ++r)
      if (fpRegisters_.written[r]) movsd(fRegisterSlot(r), Xbyak::Xmm(fpRegisters_.xmm[r]));
    ret();
    L(loadKeptFp_);
    loadKeptFpRegisters();
    ret();
  }
  // Forwarding through rax: an instruction that leaves x[rd] in rax records
  // it (storeRax), and the next one reads its sources from rax instead of
  // reloading a HartHotState slot it has just stored (the store-to-load
  // latency sat on every dependency chain through an unpinned register).
  // translate() moves the record forward one instruction at a time, so
  // nothing emitted in between can have clobbered rax.
  static constexpr unsigned kNothingInRax = ~0u;
  bool inRax(unsigned r) const { return !inGroupCopy_ && raxHolds_ == r; }  // the copy forwards nothing: entered midway
  void loadRax(unsigned r) {
    if (!inRax(r)) mov(rax, xreg(r));
    raxHolds_ = kNothingInRax;  // the caller goes on to change it
  }
  // eax = the low word of x[r] (the upper half of rax is undefined).
  void loadEax(unsigned r) {
    if (!inRax(r)) mov(eax, xreg32(r));
    raxHolds_ = kNothingInRax;
  }
  // to = x[r], rax left as it is.
  void copyX(const Xbyak::Reg64& to, unsigned r) {
    if (inRax(r)) mov(to, rax);
    else mov(to, xreg(r));
  }
  void storeRax(unsigned rd) {
    mov(xreg(rd), rax);
    raxAfter_ = rd;
  }
  Label& newLabel() { return labels_.emplace_back(); }
  // Through the shared thunk: every helper sees (and may change) all of x in
  // HartHotState. From the translation's body (borrowed registers lent back
  // around the call), or from an exit path (already left).
  void callHelper(const void* function) {
    leaveBorrowed();
    callHelperFromExit(function);
    for (const Borrowed& b : borrows_) mov(b.host, guestSlot(b.guest));  // the thunk reloaded the pinned ones
    reloadKeptFpRegisters();  // helpers may change f, and do not keep xmm registers
  }
  void callHelperFromExit(const void* function) {
    mov(rax, reinterpret_cast<uint64_t>(function));
    call(callHelper_);
  }
  // Helpers get the block's own decoded instruction (insns_ holds copies).
  void loadArgInsn(const Xbyak::Reg64& reg, const DecodedInsn& in) {
    mov(reg, reinterpret_cast<uint64_t>(origins_[static_cast<size_t>(&in - insns_.data())]));
  }

  // The translation runs on through the not-taken side of a conditional
  // branch that ends the block into the block that follows it, when that one
  // is decoded and on the same page (so it is checked and dropped with ours:
  // see Block::chain), up to kMaxTraceBlocks blocks or kMaxTraceInstructions:
  // fewer exits, and rax forwarding across them. insns_ holds the
  // instructions with pcOffset from our start, then a sentinel.
  static constexpr unsigned kMaxTraceBlocks = 4;
  static constexpr uint32_t kMaxTraceInstructions = 64;
  void gatherTrace(BlockCache& blocks) {
    const Block* part = &block_;
    uint32_t offset = 0;
    for (unsigned parts = 1;; ++parts) {
      for (uint32_t i = 0; i < part->instructionCount; ++i) {
        insns_.push_back(part->insns[i]);
        insns_.back().pcOffset = static_cast<uint16_t>(offset + part->insns[i].pcOffset);
        origins_.push_back(&part->insns[i]);
      }
      offset += part->byteLength;
      if (parts == kMaxTraceBlocks || part->instructionCount == 0 || pageOffset_ + offset >= 4096) break;
      const Op last = part->insns[part->instructionCount - 1].op;
      if (last < Op::Beq || last > Op::Bgeu) break;
      const Block* next = blocks.find(block_.physicalPc + offset);
      if (next == nullptr || insns_.size() + next->instructionCount > kMaxTraceInstructions) break;
      part = next;
    }
    insns_.push_back(part->insns[part->instructionCount]);  // the sentinel: pcOffset = bytes covered
    insns_.back().pcOffset = static_cast<uint16_t>(offset);
    origins_.push_back(&part->insns[part->instructionCount]);
  }

  // Jumps to a per-instruction fault stub when al == 0 (a helper reported a pending exception).
  void faultIfFalse(uint32_t index, const DecodedInsn& in) {
    test(al, al);
    jz(faultLabel(index, in), T_NEAR);
  }
  Label& faultLabel(uint32_t index, const DecodedInsn& in) {
    Label& label = newLabel();
    deferred_.push_back([this, &label, index, offset = in.pcOffset] {
      L(label);
      leaveBorrowed();
      mov(ecx, index);
      mov(edx, offset);
      jmp(fault_, T_NEAR);
    });
    return label;
  }

  // Exit with pc = block base + delta after retiring `retired` instructions;
  // chains straight to the successor while nothing needs attention.
  void emitDirectExit(int64_t delta, uint32_t retired) {
    if (delta == 0) {
      emitLoopBack(retired);
      return;
    }
    leaveBorrowed();
    add(rbp, retired);
    if (delta != 0) add(r12, static_cast<uint32_t>(static_cast<int32_t>(delta)));
    emitChainChecks(exit_);
    const int64_t targetOffset = static_cast<int64_t>(pageOffset_) + delta;
    if (targetOffset < 0 || targetOffset >= 4096) {
      jmp(lookup_, T_NEAR);
      return;
    }
    // Same page: the successor's physical address follows from ours, for every virtual alias.
    const uint64_t targetPa = block_.physicalPc + static_cast<uint64_t>(delta);
    Label& site = newLabel();
    Label& link = newLabel();
    L(site);
    jmp(link, T_NEAR);  // 5 bytes, patched by linkDirect
    directExits_.push_back({&site, targetPa});
    deferred_.push_back([this, &site, &link, targetPa] {
      L(link);
      mov(rdi, reinterpret_cast<uint64_t>(&engine_));
      mov(rsi, rbx);
      mov(rdx, targetPa);
      lea(rcx, ptr[rip + site]);
      callHelperFromExit(reinterpret_cast<const void*>(&JitEngine::linkDirect));
      test(rax, rax);
      jz(exit_, T_NEAR);
      jmp(rax);
    });
  }
  // A loop back to the translation's own start: straight to its body, the
  // borrowed registers staying where they are (left only to exit).
  void emitLoopBack(uint32_t retired) {
    add(rbp, retired);
    Label& leave = newLabel();
    emitChainChecks(leave);
    jmp(body_, T_NEAR);
    deferred_.push_back([this, &leave] {
      L(leave);
      leaveBorrowed();
      jmp(exit_, T_NEAR);
    });
  }
  // Exit to the pc in r12 (computed jump).
  void emitIndirectExit(uint32_t retired) {
    leaveBorrowed();
    add(rbp, retired);
    emitChainChecks(exit_);
    jmp(lookup_, T_NEAR);
  }
  // As the interpreter's chaining: only when nothing needs attention and
  // the timer poll is not due; else to `notNow`.
  void emitChainChecks(Label& notNow) {
    mov(eax, dword[rbx + kAttention]);
    or_(eax, dword[rbx + kSingleBlock]);
    jnz(notNow, T_NEAR);
    sub(dword[rbx + kTimerCountdown], 1);
    jle(notNow, T_NEAR);
  }
  // Exit to the run loop after an instruction that may have changed privilege,
  // translation or interrupt state (pc already set by its executor).
  void emitReturnToRunLoop(uint32_t retired) {
    leaveBorrowed();
    add(rbp, retired);
    xor_(eax, eax);
    jmp(exitToRunLoop_, T_NEAR);
  }

  void emitSharedExits() {
    emitKeptFpSubroutines();
    L(exit_);
    mov(qword[rbx + kPc], r12);
    xor_(eax, eax);
    jmp(exitToRunLoop_, T_NEAR);
    // Computed or cross-page exit to r12: fetch TLB -> physical pc -> jump cache, inline.
    Label& slowLookup = newLabel();
    L(lookup_);
    mov(qword[rbx + kPc], r12);
    mov(rax, r12);
    shr(rax, 12);
    movzx(ecx, al);  // TLB slot (256 slots)
    lea(rcx, ptr[rcx + rcx * 2]);  // * 24 bytes: 3 qwords
    mov(rdx, qword[rbx + kFetchTlb]);
    cmp(rax, qword[rdx + rcx * 8]);
    jne(slowLookup, T_NEAR);
    mov(rax, r12);
    add(rax, qword[rdx + rcx * 8 + offsetof(FetchTlbEntry, physicalAddend)]);
    mov(ecx, eax);
    shr(ecx, 1);
    and_(ecx, JitEngine::kJumpCacheSlots - 1);
    shl(ecx, 4);
    mov(rdx, reinterpret_cast<uint64_t>(engine_.jumpCache()));
    cmp(rax, qword[rdx + rcx]);
    jne(slowLookup, T_NEAR);
    jmp(qword[rdx + rcx + 8]);
    L(slowLookup);
    mov(rdi, reinterpret_cast<uint64_t>(&engine_));
    mov(rsi, rbx);
    callHelperFromExit(reinterpret_cast<const void*>(&JitEngine::lookup));
    test(rax, rax);
    jz(exit_, T_NEAR);
    jmp(rax);
    L(fault_);  // ecx = instructions retired before the faulting one, edx = its pc offset
    lea(rax, ptr[r12 + rdx]);
    mov(qword[rbx + kPc], rax);
    add(rbp, rcx);
    mov(rdi, rbx);
    callHelperFromExit(reinterpret_cast<const void*>(&helperTakeException));
    mov(eax, 1);
    jmp(exitToRunLoop_, T_NEAR);
  }

  // rax = the loaded value, extended as the guest load requires.
  void loadExtended(Op op, const Xbyak::RegExp& address) {
    switch (op) {
      case Op::Lb: movsx(rax, byte[address]); break;
      case Op::Lbu: movzx(eax, byte[address]); break;
      case Op::Lh: movsx(rax, word[address]); break;
      case Op::Lhu: movzx(eax, word[address]); break;
      case Op::Lw: movsxd(rax, dword[address]); break;
      case Op::Lwu: mov(eax, dword[address]); break;
      default: mov(rax, qword[address]); break;  // Ld
    }
  }

  // rsi = va; on a TLB hit leaves rcx = the host addend and falls through, else jumps to `miss`.
  // The tag is compared with the page of the access's last byte: an access
  // running past its page finds the next page's number, which cannot be the
  // tag of this page's slot (the two differ in the slot-index bits), so
  // crossing costs no separate check.
  void emitTlbProbe(int currentTlbOffset, unsigned size, Label& miss) {
    mov(ecx, esi);
    shr(ecx, 12 - 4);  // slot * 16 bytes
    and_(ecx, (HartHotState::kTlbSlots - 1) << 4);
    add(rcx, qword[rbx + currentTlbOffset]);
    lea(rax, ptr[rsi + (size - 1)]);
    shr(rax, 12);
    cmp(rax, qword[rcx]);
    jne(miss, T_NEAR);
    mov(rcx, qword[rcx + 8]);
  }

  void emitAddress(const DecodedInsn& in) {
    copyX(rsi, in.rs1);
    if (in.imm != 0) add(rsi, in.imm);
  }

  void emitLoad(uint32_t index, const DecodedInsn& in, unsigned size) {
    if (isGroupMember(index)) {
      emitGroupedLoad(index, in);
      return;
    }
    Label* divert = slowPathDivert(index);
    Label& miss = newLabel();
    Label& done = newLabel();
    emitAddress(in);
    emitTlbProbe(kReadTlb, size, miss);
    loadExtended(in.op, rsi + rcx);
    L(done);  // the slow path joins with the value in rax too
    storeRax(in.rd);
    deferred_.push_back([this, &miss, &done, index, &in, size, divert] {
      L(miss);
      mov(rdi, rbx);
      mov(edx, size);
      mov(rcx, rsp);  // the trampoline's spare stack slot receives the value
      callHelper(reinterpret_cast<const void*>(&helperLoad));
      faultIfFalse(index, in);
      loadExtended(in.op, rsp);
      if (divert != nullptr) {
        mov(xreg(in.rd), rax);
        jmp(*divert, T_NEAR);
      } else {
        jmp(done, T_NEAR);
      }
    });
  }

  void emitStore(uint32_t index, const DecodedInsn& in, unsigned size) {
    if (isGroupMember(index)) {
      emitGroupedStore(index, in, size);
      return;
    }
    Label* divert = slowPathDivert(index);
    Label& miss = newLabel();
    Label& done = newLabel();
    emitAddress(in);
    copyX(rdx, in.rs2);
    emitTlbProbe(kWriteTlb, size, miss);
    switch (size) {
      case 1: mov(byte[rsi + rcx], dl); break;
      case 2: mov(word[rsi + rcx], dx); break;
      case 4: mov(dword[rsi + rcx], edx); break;
      default: mov(qword[rsi + rcx], rdx); break;
    }
    L(done);
    deferred_.push_back([this, &miss, &done, index, &in, size, divert] {
      L(miss);
      mov(rdi, rbx);
      mov(ecx, size);
      callHelper(reinterpret_cast<const void*>(&helperStore));
      faultIfFalse(index, in);
      jmp(divert != nullptr ? *divert : done, T_NEAR);
    });
  }

  // Flags for the branch's condition: x[rs1] compared with x[rs2].
  void emitBranchCompare(const DecodedInsn& in) {
    if (inRax(in.rs2) && in.rs1 != in.rs2) {
      cmp(xreg(in.rs1), rax);
    } else {
      const bool inRegister = inHostRegister(in.rs1);
      const Xbyak::Reg64& left = inRegister ? static_cast<const Xbyak::Reg64&>(xreg(in.rs1)) : rax;
      if (!inRegister) loadRax(in.rs1);
      if (in.rs2 == 0) test(left, left);  // x0: beqz, bnez, bltz, bgez
      else if (in.rs2 == in.rs1) cmp(left, left);
      else cmp(left, xreg(in.rs2));
    }
  }
  // `mayContinue`: the trace may go on inline on the not-taken side.
  void emitBranch(uint32_t index, const DecodedInsn& in, bool mayContinue = true) {
    Label& taken = newLabel();
    emitBranchCompare(in);
    switch (in.op) {
      case Op::Beq: je(taken, T_NEAR); break;
      case Op::Bne: jne(taken, T_NEAR); break;
      case Op::Blt: jl(taken, T_NEAR); break;
      case Op::Bge: jge(taken, T_NEAR); break;
      case Op::Bltu: jb(taken, T_NEAR); break;
      default: jae(taken, T_NEAR); break;  // Bgeu
    }
    const int64_t takenDelta = static_cast<int64_t>(in.pcOffset) + in.imm;
    const DecodedInsn& next = insns_[index + 1];
    if (mayContinue && index + 2 < insns_.size()) {  // the trace goes on with the next block, unless single-stepping
      deferred_.push_back([this, &taken, takenDelta, index] {
        L(taken);
        emitDirectExit(takenDelta, index + 1);
      });
      Label& stepping = newLabel();
      cmp(dword[rbx + kSingleBlock], 0);
      jne(stepping, T_NEAR);
      deferred_.push_back([this, &stepping, &next, index] {
        L(stepping);
        emitDirectExit(next.pcOffset, index + 1);
      });
      return;
    }
    emitDirectExit(next.pcOffset, index + 1);
    L(taken);
    emitDirectExit(takenDelta, index + 1);
  }

  // If-conversion: a conditional branch that only skips a few ALU
  // instructions updating one register in place (`beqz a4, 1f; xor a2, a2,
  // s1; slli a2, a2, 48; srli a2, a2, 48; 1:`, gcc's code for a ?: without a
  // conditional move) becomes their result computed aside and a cmov, with
  // the instret of the skipped ones taken back by a cmov too: a data-
  // dependent branch that the host mispredicted half the time is gone.
  // Returns the index of the branch target in insns_, where translation goes
  // on, or 0 if `in` is not such a branch (nothing emitted).
  static constexpr uint32_t kMaxSkipped = 4;
  uint32_t emitConditionalSkip(uint32_t index, const DecodedInsn& in) {
    if (in.op < Op::Beq || in.op > Op::Bgeu || in.imm <= 0) return 0;
    const int64_t target = static_cast<int64_t>(in.pcOffset) + in.imm;
    uint32_t join = index + 1;
    while (join < insns_.size() - 1 && insns_[join].pcOffset < target && join - index <= kMaxSkipped) ++join;
    if (join == index + 1 || insns_[join].pcOffset != target || join - index - 1 > kMaxSkipped) return 0;
    const unsigned r = insns_[index + 1].rd;
    for (uint32_t k = index + 1; k < join; ++k)
      if (!updatesInPlace(insns_[k], r)) return 0;
    // Single-stepping runs the branch itself: it ends the step.
    Label& stepping = newLabel();
    cmp(dword[rbx + kSingleBlock], 0);
    jne(stepping, T_NEAR);
    deferred_.push_back([this, &stepping, index, &in] {
      L(stepping);
      raxHolds_ = kNothingInRax;
      emitBranch(index, in, false);
    });
    // rcx = x[r] after the skipped instructions.
    copyX(rcx, r);
    for (uint32_t k = index + 1; k < join; ++k) {
      const DecodedInsn& skipped = insns_[k];
      const auto source = [&]() -> const Xbyak::Operand& {
        return inRax(skipped.rs2) ? static_cast<const Xbyak::Operand&>(rax) : xreg(skipped.rs2);
      };
      switch (skipped.op) {
        case Op::Add: add(rcx, source()); break;
        case Op::Sub: sub(rcx, source()); break;
        case Op::Xor: xor_(rcx, source()); break;
        case Op::Or: or_(rcx, source()); break;
        case Op::And: and_(rcx, source()); break;
        case Op::Addi: add(rcx, skipped.imm); break;
        case Op::Xori: xor_(rcx, skipped.imm); break;
        case Op::Ori: or_(rcx, skipped.imm); break;
        case Op::Andi: and_(rcx, skipped.imm); break;
        case Op::Slli: shl(rcx, skipped.imm); break;
        case Op::Srli: shr(rcx, skipped.imm); break;
        default: sar(rcx, skipped.imm); break;  // Srai
      }
    }
    emitBranchCompare(in);
    // Taken: x[r] keeps its value and the skipped instructions do not retire
    // (every later exit counts them, as if they had run).
    const Xbyak::Operand& destination = xreg(r);
    if (destination.isREG()) {
      cmovWhenTaken(in.op, false, static_cast<const Xbyak::Reg&>(destination), rcx);
    } else {
      cmovWhenTaken(in.op, true, rcx, destination);
      mov(destination, rcx);
    }
    lea(rdx, ptr[rbp - static_cast<int>(join - index - 1)]);
    cmovWhenTaken(in.op, true, rbp, rdx);
    return join;
  }
  // Whether `in` is an ALU instruction emitConditionalSkip computes aside: r = r op (register or immediate), r != x0.
  static bool updatesInPlace(const DecodedInsn& in, unsigned r) {
    if (in.rd != r || in.rs1 != r || r == kDiscardRegister || r == 0) return false;
    switch (in.op) {
      case Op::Add: case Op::Sub: case Op::Xor: case Op::Or: case Op::And: return in.rs2 != r;
      case Op::Addi: case Op::Xori: case Op::Ori: case Op::Andi: case Op::Slli: case Op::Srli: case Op::Srai: return true;
      default: return false;
    }
  }
  // dst = src when the branch `op` is taken (whenTaken) or not taken, from the flags of emitBranchCompare.
  void cmovWhenTaken(Op op, bool whenTaken, const Xbyak::Reg& dst, const Xbyak::Operand& src) {
    switch (op) {
      case Op::Beq: whenTaken ? cmove(dst, src) : cmovne(dst, src); break;
      case Op::Bne: whenTaken ? cmovne(dst, src) : cmove(dst, src); break;
      case Op::Blt: whenTaken ? cmovl(dst, src) : cmovge(dst, src); break;
      case Op::Bge: whenTaken ? cmovge(dst, src) : cmovl(dst, src); break;
      case Op::Bltu: whenTaken ? cmovb(dst, src) : cmovae(dst, src); break;
      default: whenTaken ? cmovae(dst, src) : cmovb(dst, src); break;  // Bgeu
    }
  }

  // rax = rs1 op rs2, result (64-bit) to rd. `commutative`: rs2 already in rax may stand first.
  void emitRegisterOp(const DecodedInsn& in, void (BlockTranslator::*op)(const Xbyak::Operand&, const Xbyak::Operand&),
                      bool commutative) {
    if (inRax(in.rs2) && in.rs1 != in.rs2) {
      if (commutative) {
        (this->*op)(rax, xreg(in.rs1));
      } else {
        mov(rcx, rax);
        mov(rax, xreg(in.rs1));
        (this->*op)(rax, rcx);
      }
    } else {
      loadRax(in.rs1);
      (this->*op)(rax, in.rs2 == in.rs1 ? static_cast<const Xbyak::Operand&>(rax) : xreg(in.rs2));
    }
    storeRax(in.rd);
  }
  void emitImmediateOp(const DecodedInsn& in, void (BlockTranslator::*op)(const Xbyak::Operand&, uint32_t)) {
    loadRax(in.rs1);
    (this->*op)(rax, static_cast<uint32_t>(in.imm));
    storeRax(in.rd);
  }
  void storeSignExtendedEax(const DecodedInsn& in) {
    movsxd(rax, eax);
    storeRax(in.rd);
  }
  // rd = (rs1 <cmp> rhs) ? 1 : 0
  void emitSet(const DecodedInsn& in, bool isSigned, bool immediate) {
    xor_(ecx, ecx);
    loadRax(in.rs1);
    if (immediate) cmp(rax, in.imm);
    else cmp(rax, xreg(in.rs2));
    if (isSigned) setl(cl);
    else setb(cl);
    mov(xreg(in.rd), rcx);
  }
  void emitShift(const DecodedInsn& in, bool word, void (BlockTranslator::*op)(const Xbyak::Operand&, const Xbyak::Reg8&)) {
    copyX(rcx, in.rs2);
    if (word) {
      loadEax(in.rs1);
      (this->*op)(eax, cl);
      storeSignExtendedEax(in);
    } else {
      loadRax(in.rs1);
      (this->*op)(rax, cl);
      storeRax(in.rd);
    }
  }
  void emitShiftImmediate(const DecodedInsn& in, bool word, void (BlockTranslator::*op)(const Xbyak::Operand&, int)) {
    if (word) {
      loadEax(in.rs1);
      (this->*op)(eax, in.imm);
      storeSignExtendedEax(in);
    } else {
      loadRax(in.rs1);
      (this->*op)(rax, in.imm);
      storeRax(in.rd);
    }
  }
  void emitMulDivHelper(const DecodedInsn& in) {
    copyX(rdi, in.rs1);
    copyX(rsi, in.rs2);
    mov(edx, static_cast<uint32_t>(in.op));
    callHelper(reinterpret_cast<const void*>(&helperMulDiv));
    storeRax(in.rd);
  }
  // An instruction executed by its HartCore executor: helper(core, insn) -> false on exception.
  void emitExecutorCall(uint32_t index, const DecodedInsn& in, const void* helper) {
    mov(rdi, rbx);
    loadArgInsn(rsi, in);
    callHelper(helper);
    faultIfFalse(index, in);
  }

  // F and D: jit_fp's inline fast path where it has one, falling back to the
  // executor; the executor alone for the rest.
  void emitFp(uint32_t index, const DecodedInsn& in) {
    Label& slow = newLabel();
    const auto emitExecutor = [this, index, &in] {
      if (isFpCsrAccess(in)) emitCsrCall(index, in);
      else emitExecutorCall(index, in, reinterpret_cast<const void*>(&helperFp));
    };
    Label* checkFailed = nullptr;
    const auto checkFailedLabel = [&]() -> Label& {
      if (checkFailed == nullptr) {
        checkFailed = &newLabel();
        deferred_.push_back([this, label = checkFailed, index, &in, emitExecutor] {
          L(*label);
          emitExecutor();
          lea(rax, ptr[r12 + insns_[index + 1].pcOffset]);
          mov(qword[rbx + kPc], rax);
          emitReturnToRunLoop(index + 1);
        });
      }
      return *checkFailed;
    };
    FpEmitContext context{*this, fpFacts_, fpRegisters_, checkFailedLabel,
                          [this](const Xbyak::Reg64& to, unsigned r) { mov(to, xreg(r)); },
                          [this](unsigned r, const Xbyak::Reg64& from) { mov(xreg(r), from); },
                          [this](bool write, unsigned size, Label& miss) {
                            emitTlbProbe(write ? kWriteTlb : kReadTlb, size, miss);
                          },
                          [this]() -> Label& { return newLabel(); },
                          [this](std::function<void()> emit) { deferred_.push_back(std::move(emit)); }};
    if (!emitFpFastPath(context, in, slow)) {
      emitExecutor();
      return;
    }
    Label& done = newLabel();
    L(done);
    deferred_.push_back([this, &slow, &done, emitExecutor] {
      L(slow);
      emitExecutor();
      jmp(done, T_NEAR);
    });
  }
  // executeCsr, with pc that of the CSR instruction while it runs.
  void emitCsrCall(uint32_t index, const DecodedInsn& in) {
    lea(rax, ptr[r12 + in.pcOffset]);
    mov(qword[rbx + kPc], rax);
    mov(rdi, rbx);
    loadArgInsn(rsi, in);
    mov(edx, index);
    callHelper(reinterpret_cast<const void*>(&helperCsr));
    faultIfFalse(index, in);
  }

  // Common two-instruction idioms as one host operation: lui/auipc + addi(w)
  // on the same register (a constant or pc-relative address) and
  // slli 32 + srli 32 (zero-extend the low word). False if `first, second`
  // is not such a pair.
  bool emitFusedPair(const DecodedInsn& first, const DecodedInsn& second) {
    const unsigned rd = first.rd;
    if (rd == kDiscardRegister || second.rd != rd || second.rs1 != rd) return false;
    if ((first.op == Op::Lui || first.op == Op::Auipc) && (second.op == Op::Addi || second.op == Op::Addiw)) {
      const int64_t upper = static_cast<int64_t>(first.imm);
      if (first.op == Op::Lui) {
        int64_t value = upper + second.imm;
        if (second.op == Op::Addiw) value = static_cast<int32_t>(static_cast<uint32_t>(value));
        mov(rax, static_cast<uint64_t>(value));
      } else {
        const int64_t displacement = first.pcOffset + upper + second.imm;
        if (displacement != static_cast<int32_t>(displacement)) return false;  // beyond lea's reach
        lea(rax, ptr[r12 + static_cast<int32_t>(displacement)]);
        if (second.op == Op::Addiw) movsxd(rax, eax);
      }
      storeRax(rd);
      return true;
    }
    if (first.op == Op::Slli && second.op == Op::Srli && first.imm == 32 && second.imm == 32) {
      if (inRax(first.rs1)) mov(eax, eax);  // a 32-bit move zero-extends
      else mov(eax, xreg32(first.rs1));
      storeRax(rd);
      return true;
    }
    return false;
  }

  void emitInstruction(uint32_t index, const DecodedInsn& in) {
    // Results aimed at x0 go to the discard slot; pure computations into it can be dropped.
    const bool discard = in.rd == kDiscardRegister;
    switch (in.op) {
      case Op::Lui:
        if (discard) break;
        mov(rax, static_cast<uint64_t>(static_cast<int64_t>(in.imm)));
        storeRax(in.rd);
        break;
      case Op::Auipc:
        if (discard) break;
        mov(rax, static_cast<uint64_t>(static_cast<int64_t>(in.pcOffset) + in.imm));
        add(rax, r12);
        storeRax(in.rd);
        break;
      case Op::Jal:
        if (!discard) {
          lea(rax, ptr[r12 + insns_[index + 1].pcOffset]);
          mov(xreg(in.rd), rax);
        }
        emitDirectExit(static_cast<int64_t>(in.pcOffset) + in.imm, index + 1);
        break;
      case Op::Jalr:
        loadRax(in.rs1);
        if (in.imm != 0) add(rax, in.imm);
        and_(rax, -2);
        if (!discard) {
          lea(rcx, ptr[r12 + insns_[index + 1].pcOffset]);
          mov(xreg(in.rd), rcx);
        }
        mov(r12, rax);
        emitIndirectExit(index + 1);
        break;
      case Op::Beq:
      case Op::Bne:
      case Op::Blt:
      case Op::Bge:
      case Op::Bltu:
      case Op::Bgeu: emitBranch(index, in); break;
      case Op::Lb:
      case Op::Lbu: emitLoad(index, in, 1); break;
      case Op::Lh:
      case Op::Lhu: emitLoad(index, in, 2); break;
      case Op::Lw:
      case Op::Lwu: emitLoad(index, in, 4); break;
      case Op::Ld: emitLoad(index, in, 8); break;
      case Op::Sb: emitStore(index, in, 1); break;
      case Op::Sh: emitStore(index, in, 2); break;
      case Op::Sw: emitStore(index, in, 4); break;
      case Op::Sd: emitStore(index, in, 8); break;
      case Op::Addi:
        if (discard) break;
        if (in.rs1 == 0) {  // li
          mov(rax, static_cast<uint64_t>(static_cast<int64_t>(in.imm)));
        } else {
          loadRax(in.rs1);
          if (in.imm != 0) add(rax, in.imm);
        }
        storeRax(in.rd);
        break;
      case Op::Slti:
        if (!discard) emitSet(in, true, true);
        break;
      case Op::Sltiu:
        if (!discard) emitSet(in, false, true);
        break;
      case Op::Xori:
        if (!discard) emitImmediateOp(in, &BlockTranslator::xorImmediate);
        break;
      case Op::Ori:
        if (!discard) emitImmediateOp(in, &BlockTranslator::orImmediate);
        break;
      case Op::Andi:
        if (!discard) emitImmediateOp(in, &BlockTranslator::andImmediate);
        break;
      case Op::Slli:
        if (!discard) emitShiftImmediate(in, false, &BlockTranslator::shlImmediate);
        break;
      case Op::Srli:
        if (!discard) emitShiftImmediate(in, false, &BlockTranslator::shrImmediate);
        break;
      case Op::Srai:
        if (!discard) emitShiftImmediate(in, false, &BlockTranslator::sarImmediate);
        break;
      case Op::Add:
        if (!discard) emitRegisterOp(in, &BlockTranslator::addOperands, true);
        break;
      case Op::Sub:
        if (!discard) emitRegisterOp(in, &BlockTranslator::subOperands, false);
        break;
      case Op::Xor:
        if (!discard) emitRegisterOp(in, &BlockTranslator::xorOperands, true);
        break;
      case Op::Or:
        if (!discard) emitRegisterOp(in, &BlockTranslator::orOperands, true);
        break;
      case Op::And:
        if (!discard) emitRegisterOp(in, &BlockTranslator::andOperands, true);
        break;
      case Op::Mul:
        if (!discard) emitRegisterOp(in, &BlockTranslator::imulOperands, true);
        break;
      case Op::Sll:
        if (!discard) emitShift(in, false, &BlockTranslator::shlByCl);
        break;
      case Op::Srl:
        if (!discard) emitShift(in, false, &BlockTranslator::shrByCl);
        break;
      case Op::Sra:
        if (!discard) emitShift(in, false, &BlockTranslator::sarByCl);
        break;
      case Op::Slt:
        if (!discard) emitSet(in, true, false);
        break;
      case Op::Sltu:
        if (!discard) emitSet(in, false, false);
        break;
      case Op::Addiw:
        if (discard) break;
        loadEax(in.rs1);
        if (in.imm != 0) add(eax, in.imm);
        storeSignExtendedEax(in);
        break;
      case Op::Slliw:
        if (!discard) emitShiftImmediate(in, true, &BlockTranslator::shlImmediate);
        break;
      case Op::Srliw:
        if (!discard) emitShiftImmediate(in, true, &BlockTranslator::shrImmediate);
        break;
      case Op::Sraiw:
        if (!discard) emitShiftImmediate(in, true, &BlockTranslator::sarImmediate);
        break;
      case Op::Addw:
      case Op::Subw:
      case Op::Mulw:
        if (discard) break;
        if (inRax(in.rs2) && in.rs1 != in.rs2) {
          mov(ecx, eax);
          mov(eax, xreg32(in.rs1));
          if (in.op == Op::Addw) add(eax, ecx);
          else if (in.op == Op::Subw) sub(eax, ecx);
          else imul(eax, ecx);
          storeSignExtendedEax(in);
          break;
        }
        loadEax(in.rs1);
        if (in.op == Op::Addw) add(eax, xreg32(in.rs2));
        else if (in.op == Op::Subw) sub(eax, xreg32(in.rs2));
        else imul(eax, xreg32(in.rs2));
        storeSignExtendedEax(in);
        break;
      case Op::Sllw:
        if (!discard) emitShift(in, true, &BlockTranslator::shlByCl);
        break;
      case Op::Srlw:
        if (!discard) emitShift(in, true, &BlockTranslator::shrByCl);
        break;
      case Op::Sraw:
        if (!discard) emitShift(in, true, &BlockTranslator::sarByCl);
        break;
      case Op::Mulh:
      case Op::Mulhu:
        if (discard) break;
        copyX(rcx, in.rs2);
        loadRax(in.rs1);
        if (in.op == Op::Mulh) imul(rcx);
        else mul(rcx);
        mov(xreg(in.rd), rdx);
        break;
      case Op::Mulhsu:
      case Op::Div:
      case Op::Divu:
      case Op::Rem:
      case Op::Remu:
      case Op::Divw:
      case Op::Divuw:
      case Op::Remw:
      case Op::Remuw:
        if (!discard) emitMulDivHelper(in);
        break;
      case Op::Fence: break;  // host loads and stores already keep TSO order
      case Op::FenceFull: mfence(); break;
      case Op::Csrrw:
      case Op::Csrrs:
      case Op::Csrrc:
      case Op::Csrrwi:
      case Op::Csrrsi:
      case Op::Csrrci:
        if (isFpCsrAccess(in)) {  // inline where FS is Dirty; the block goes on
          emitFp(index, in);
          break;
        }
        // pc is that of the CSR instruction while it runs, the next one after it.
        emitCsrCall(index, in);
        lea(rax, ptr[r12 + insns_[index + 1].pcOffset]);
        mov(qword[rbx + kPc], rax);
        emitReturnToRunLoop(index + 1);
        break;
      case Op::FenceI:
      case Op::Ecall:
      case Op::Ebreak:
      case Op::Mret:
      case Op::Sret:
      case Op::Wfi:
      case Op::SfenceVma:
        lea(rax, ptr[r12 + in.pcOffset]);
        mov(qword[rbx + kPc], rax);
        emitExecutorCall(index, in, reinterpret_cast<const void*>(&helperSystem));
        emitReturnToRunLoop(index + 1);
        break;
      case Op::Illegal:
        mov(rdi, rbx);
        loadArgInsn(rsi, in);
        callHelper(reinterpret_cast<const void*>(&helperIllegal));
        jmp(faultLabel(index, in), T_NEAR);
        break;
      default:
        if (in.op >= Op::LrW && in.op <= Op::AmoMaxuD) {
          emitExecutorCall(index, in, reinterpret_cast<const void*>(&helperAtomic));
        } else {  // F and D
          emitFp(index, in);
        }
        break;
    }
  }

  // Member-function adaptors so one emitter serves several x86 opcodes.
  void addOperands(const Xbyak::Operand& a, const Xbyak::Operand& b) { add(a, b); }
  void subOperands(const Xbyak::Operand& a, const Xbyak::Operand& b) { sub(a, b); }
  void xorOperands(const Xbyak::Operand& a, const Xbyak::Operand& b) { xor_(a, b); }
  void orOperands(const Xbyak::Operand& a, const Xbyak::Operand& b) { or_(a, b); }
  void andOperands(const Xbyak::Operand& a, const Xbyak::Operand& b) { and_(a, b); }
  void imulOperands(const Xbyak::Operand& a, const Xbyak::Operand& b) { imul(static_cast<const Xbyak::Reg&>(a), b); }
  void xorImmediate(const Xbyak::Operand& a, uint32_t imm) { xor_(a, imm); }
  void orImmediate(const Xbyak::Operand& a, uint32_t imm) { or_(a, imm); }
  void andImmediate(const Xbyak::Operand& a, uint32_t imm) { and_(a, imm); }
  void shlByCl(const Xbyak::Operand& a, const Xbyak::Reg8& count) { shl(a, count); }
  void shrByCl(const Xbyak::Operand& a, const Xbyak::Reg8& count) { shr(a, count); }
  void sarByCl(const Xbyak::Operand& a, const Xbyak::Reg8& count) { sar(a, count); }
  void shlImmediate(const Xbyak::Operand& a, int count) { shl(a, count); }
  void shrImmediate(const Xbyak::Operand& a, int count) { shr(a, count); }
  void sarImmediate(const Xbyak::Operand& a, int count) { sar(a, count); }

  const Block& block_;
  JitEngine& engine_;
  const void* exitToRunLoop_;
  const void* callHelper_;
  const uint64_t pageOffset_;
  std::deque<Label> labels_;  // stable addresses: deferred emitters refer to them
  std::vector<std::function<void()>> deferred_;  // out-of-line paths, emitted after the block's body
  struct DirectExitLabel {
    Label* site;
    uint64_t targetPa;
  };
  std::vector<DirectExitLabel> directExits_;  // their jumps, unpatched
  Label exit_, lookup_, fault_;
  Label storeKeptFp_, loadKeptFp_;  // see leaveBorrowed
  Label body_;  // after the entry's borrowing: where loops back to the start go
  std::vector<DecodedInsn> insns_;           // the trace's instructions (see gatherTrace)
  std::vector<const DecodedInsn*> origins_;  // ... and where each lives in its block
  std::vector<Borrowed> borrows_;
  const Borrowed* borrowed_[kDiscardRegister + 1] = {};  // by guest register; into borrows_ (never resized after)
  bool displaced_[kDiscardRegister + 1] = {};            // pinned guest registers whose host register is lent
  unsigned raxHolds_ = kNothingInRax;  // the guest register rax holds at this instruction's start
  unsigned raxAfter_ = kNothingInRax;  // ... and at the next one's
  FpBlockFacts fpFacts_;
  FpRegisterMap fpRegisters_;  // f registers kept in xmm registers
  AccessGroupPlan groups_;
  std::vector<Label*> clusterRejoins_;      // by cluster: after its last instruction on the main line
  std::vector<bool> clusterCopied_;         // by cluster: its fallback copy is on the deferred list
  std::map<uint32_t, Label*> copyEntries_;  // fallback-copy labels where misses and diverted slow paths go on
  bool inGroupCopy_ = false;                 // emitting a group's fallback copy
};

class TrampolineEmitter : public Xbyak::CodeGenerator {
 public:
  explicit TrampolineEmitter(CodeCache& cache) : CodeGenerator(cache.remaining(), cache.cursor()) {
    // enter(core, pc, code): save the callee-saved registers generated code
    // owns; the 8-byte spare slot at [rsp] keeps calls 16-byte aligned and
    // receives slow-path load results.
    enter = getCurr();
    push(rbx);
    push(rbp);
    push(r12);
    push(r13);
    push(r14);
    push(r15);
    sub(rsp, 8);
    mov(rbx, rdi);
    xor_(ebp, ebp);
    mov(r12, rsi);
    syncPinned(*this, false);
    jmp(rdx);
    align(16);
    exit = getCurr();
    syncPinned(*this, true);
    add(qword[rbx + kInstret], rbp);
    add(rsp, 8);
    pop(r15);
    pop(r14);
    pop(r13);
    pop(r12);
    pop(rbp);
    pop(rbx);
    ret();
    // callHelper (rax = the helper, its arguments in place): generated code
    // calls it with rsp 16-byte aligned, so the return address needs 8 more.
    align(16);
    callHelper = getCurr();
    sub(rsp, 8);
    syncPinned(*this, true);
    add(qword[rbx + kInstret], rbp);
    xor_(ebp, ebp);
    call(rax);
    syncPinned(*this, false);
    add(rsp, 8);
    ret();
  }
  const uint8_t* enter;
  const uint8_t* exit;
  const uint8_t* callHelper;
};

}  // namespace

Trampolines emitTrampolines(CodeCache& cache) {
  TrampolineEmitter emitter(cache);
  cache.commit(emitter.getSize());
  cache.pinPrefix();
  return {reinterpret_cast<EnterFunction>(const_cast<uint8_t*>(emitter.enter)), emitter.exit, emitter.callHelper};
}

const void* translateBlock(const Block& block, BlockCache& blocks, CodeCache& cache, JitEngine& engine,
                           const Trampolines& trampolines, std::vector<DirectExit>* directExits) {
  const uint8_t* start = cache.cursor();
  try {
    BlockTranslator translator(cache, block, blocks, engine, trampolines);
    translator.translate();
    translator.ready();
    cache.commit(translator.getSize());
    if (directExits != nullptr) translator.appendDirectExits(*directExits);
  } catch (const Xbyak::Error& error) {
    if (static_cast<int>(error) == Xbyak::ERR_CODE_IS_TOO_BIG) return nullptr;  // the cache is full
    throw;
  }
  return start;
}

}  // namespace strata::cpu::jit
