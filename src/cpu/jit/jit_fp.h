// Inline x86-64 code for the hot RISC-V F and D instructions and the fflags,
// frm and fcsr CSR accesses. Each fast path
// runs the host SSE/FMA3 instruction only where its result and flags are
// bit-exact for RISC-V (FS dirty, round-to-nearest-even, NaN-boxed singles,
// normal non-tiny results, ...) and otherwise jumps to a slow label where the
// translator calls the interpreter's executor, which recomputes everything.
#pragma once

#include <xbyak/xbyak.h>

#include <functional>

#include "cpu/decoder.h"

namespace strata::cpu::jit {

// What the FP emitter borrows from the block translator. Generated-code
// register roles are the translator's: rbx = the HartCore and its HartHotState,
// [rsp] = an 8-byte scratch slot.
// What the block's earlier FP instructions have checked, so later ones need
// not check again: FS is Dirty (nothing in a block lowers it), frm is RNE
// (until an inline frm/fcsr write).
struct FpBlockFacts {
  bool fsDirty = false;
  bool frmNearest = false;
};

struct FpEmitContext {
  Xbyak::CodeGenerator& code;
  FpBlockFacts& facts;
  // A label that runs the instruction in the executor and then ends the
  // block: where a failed check leaves a fact false for the rest of it.
  std::function<Xbyak::Label&()> checkFailed;
  std::function<void(const Xbyak::Reg64& to, unsigned xr)> loadX;    // to = x[xr]
  std::function<void(unsigned xr, const Xbyak::Reg64& from)> storeX;  // x[xr] = from
  // rsi = the virtual address: falls through with rcx = its host addend on a
  // TLB hit of the read (or write) TLB, else jumps to `miss`.
  std::function<void(bool write, unsigned size, Xbyak::Label& miss)> tlbProbe;
};

// Emits the fast path of `in`, falling through when it completed and jumping
// to `slow` otherwise; false (nothing emitted) if `in` has no fast path.
bool emitFpFastPath(FpEmitContext& context, const DecodedInsn& in, Xbyak::Label& slow);

}  // namespace strata::cpu::jit
