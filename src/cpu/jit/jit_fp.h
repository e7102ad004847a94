// Inline x86-64 code for the hot RISC-V F and D instructions and the fflags,
// frm and fcsr CSR accesses. Each fast path
// runs the host SSE/FMA3 instruction only where its result and flags are
// bit-exact for RISC-V (FS dirty, round-to-nearest-even, NaN-boxed singles,
// normal non-tiny results, ...) and otherwise jumps to a slow label where the
// translator calls the interpreter's executor, which recomputes everything.
// Doubles are read from and written to xmm registers where the translator
// keeps them (FpRegisterMap, planFpRegisters).
#pragma once

#include <xbyak/xbyak.h>

#include <cstdint>
#include <functional>
#include <span>

#include "cpu/decoder.h"

namespace strata::cpu::jit {

// What the block's earlier FP instructions have checked, so later ones need
// not check again: FS is Dirty (nothing in a block lowers it), frm is RNE
// (until an inline frm/fcsr write).
struct FpBlockFacts {
  bool fsDirty = false;
  bool frmNearest = false;
};

// F registers a translation keeps in xmm registers while its body runs
// (planFpRegisters): each one is loaded at the translation's entry and after
// every helper call, and the ones it writes are stored back to HartHotState
// before every exit and helper call (the translator does both), so outside
// generated code HartHotState::f is always complete. Only doubles are kept:
// every instruction of the translation naming a kept register uses it as a
// double through a fast path that reads it from its xmm register (or calls
// the executor, after the store). xmm0 and xmm1 stay scratch.
struct FpRegisterMap {
  static constexpr int kFirstXmm = 2;
  static constexpr int kXmmCount = 14;
  int8_t xmm[32] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};  // per f register: its xmm, or -1
  bool written[32] = {};  // kept and written by the translation: stored back
  bool anyKept = false, anyWritten = false;  // whether there is anything to load, or to store back
  bool kept(unsigned r) const { return xmm[r] >= 0; }
};

// Which f registers `insns` (a translation's instructions, without the
// sentinel) keep in xmm registers: the most used ones (at least twice, or
// once in a translation that loops to its own start) among those no
// instruction names otherwise than as a double through an xmm-aware path.
FpRegisterMap planFpRegisters(std::span<const DecodedInsn> insns, bool loops);

// Where generated code finds f register r (as a double, or a NaN-boxed single in
// its low half): its slot in HartHotState::f, through rbx.
Xbyak::Address fRegisterSlot(unsigned r);

// What the FP emitter borrows from the block translator. Generated-code
// register roles are the translator's: rbx = the HartCore and its HartHotState,
// [rsp] = an 8-byte scratch slot.
struct FpEmitContext {
  Xbyak::CodeGenerator& code;
  FpBlockFacts& facts;
  const FpRegisterMap& registers;
  // A label that runs the instruction in the executor and then ends the
  // block: where a failed check leaves a fact false for the rest of it.
  std::function<Xbyak::Label&()> checkFailed;
  std::function<void(const Xbyak::Reg64& to, unsigned xr)> loadX;    // to = x[xr]
  std::function<void(unsigned xr, const Xbyak::Reg64& from)> storeX;  // x[xr] = from
  // rsi = the virtual address: falls through with rcx = its host addend on a
  // TLB hit of the read (or write) TLB, else jumps to `miss`.
  std::function<void(bool write, unsigned size, Xbyak::Label& miss)> tlbProbe;
  std::function<Xbyak::Label&()> newLabel;  // a label that lives as long as the translation
  // Emits code out of line, after the translation's body (the emitting code runs later).
  std::function<void(std::function<void()> emit)> defer;
};

// Emits the fast path of `in`, falling through when it completed and jumping
// to `slow` otherwise; false (nothing emitted) if `in` has no fast path.
bool emitFpFastPath(FpEmitContext& context, const DecodedInsn& in, Xbyak::Label& slow);

}  // namespace strata::cpu::jit
