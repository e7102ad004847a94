// Inline F and D fast paths (see jit_fp.h). Why the host result is exact on
// each fast path: with RNE and no FTZ/DAZ, x86 SSE/FMA3 round like RISC-V and
// both detect tininess after rounding; they differ only in NaN results (x86
// propagates payloads, RISC-V returns the canonical NaN), so a result that is
// NaN, infinite, zero, subnormal or the smallest normal goes to the slow
// path, and what remains can only have raised NX. NX comes from MXCSR, read
// only while fflags.NX is still clear (once set, it cannot change anything).
#include "cpu/jit/jit_fp.h"

#include <xbyak/xbyak_util.h>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <vector>

#include "cpu/fp/fp_ops.h"
#include "cpu/hart_core.h"

namespace strata::cpu::jit {

namespace {

using namespace Xbyak::util;
using Xbyak::Label;

constexpr int kF = offsetof(HartHotState, f);
constexpr int kFflags = offsetof(HartHotState, fflags);
constexpr int kFrm = offsetof(HartHotState, frm);
// HartCore is not standard-layout (it owns mutexes) but has no virtual base,
// so mstatus sits at a fixed offset from the HartCore pointer in rbx.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
constexpr int kMstatus = offsetof(HartCore, mstatus);
#pragma GCC diagnostic pop
static_assert(csr::kStatusFs == 0x6000, "the FS check compares the low dword of mstatus");

constexpr uint32_t kMxcsrDefault = 0x1f80;  // RNE, exceptions masked, no FTZ/DAZ, status clear
constexpr uint8_t kMxcsrInexact = 0x20;     // PE
constexpr uint8_t kInexact = static_cast<uint8_t>(fp::fflags::NX);

// Fused multiply-add needs FMA3 (and the OS saving AVX state, which Xbyak's check includes).
bool hostHasFma() {
  static const bool has = Xbyak::util::Cpu().has(Xbyak::util::Cpu::tFMA);
  return has;
}

enum class Width { Single, Double };
// What an instruction needs of its rounding mode: none, any valid one (the
// operation is exact), round-to-nearest-even, or either RNE or RTZ (float to
// integer, where x86 has a truncating form).
enum class Rounding { None, Any, Nearest, NearestOrTruncate };

// Shared: the out-of-line code withInexact defers runs it after emit() returned.
class FpEmitter : public std::enable_shared_from_this<FpEmitter> {
 public:
  FpEmitter(const FpEmitContext& context, const DecodedInsn& in, Label& slow)
      : ctx_(context), c_(context.code), in_(in), slow_(slow) {}

  bool emit() {
    switch (in_.op) {
      case Op::Fld: return emitLoad(Width::Double);
      case Op::Flw: return emitLoad(Width::Single);
      case Op::Fsd: return emitStore(Width::Double);
      case Op::Fsw: return emitStore(Width::Single);

      case Op::FaddD: case Op::FsubD: case Op::FmulD: case Op::FdivD: case Op::FsqrtD:
        return emitArithmetic(Width::Double);
      case Op::FaddS: case Op::FsubS: case Op::FmulS: case Op::FdivS: case Op::FsqrtS:
        return emitArithmetic(Width::Single);
      case Op::FmaddD: case Op::FmsubD: case Op::FnmsubD: case Op::FnmaddD: return emitFused(Width::Double);
      case Op::FmaddS: case Op::FmsubS: case Op::FnmsubS: case Op::FnmaddS: return emitFused(Width::Single);

      case Op::FsgnjD: case Op::FsgnjnD: case Op::FsgnjxD: return emitSignInjection(Width::Double);
      case Op::FsgnjS: case Op::FsgnjnS: case Op::FsgnjxS: return emitSignInjection(Width::Single);
      case Op::FminD: case Op::FmaxD: return emitMinMax(Width::Double);
      case Op::FminS: case Op::FmaxS: return emitMinMax(Width::Single);
      case Op::FeqD: case Op::FltD: case Op::FleD: return emitCompare(Width::Double);
      case Op::FeqS: case Op::FltS: case Op::FleS: return emitCompare(Width::Single);

      case Op::FmvXD: case Op::FmvDX: case Op::FmvXW: case Op::FmvWX: return emitMove();

      case Op::FcvtDS: return emitWiden();
      case Op::FcvtSD: return emitNarrow();
      case Op::FcvtDW: case Op::FcvtDWu: case Op::FcvtDL:
      case Op::FcvtSW: case Op::FcvtSWu: case Op::FcvtSL: return emitFromInteger();
      case Op::FcvtWD: case Op::FcvtLD: case Op::FcvtWS: case Op::FcvtLS: return emitToInteger();
      default: return isFpCsrAccess(in_) && emitCsr();
    }
  }

 private:
  static Width widthOf(Op op) {
    switch (op) {
      case Op::FcvtDW: case Op::FcvtDWu: case Op::FcvtDL: case Op::FcvtWD: case Op::FcvtLD: return Width::Double;
      default: return Width::Single;
    }
  }
  // A double operand: its xmm register if kept (FpRegisterMap), else its HartHotState slot.
  const Xbyak::Operand& fDouble(unsigned r) {
    if (kept(r)) return keptXmm(r);
    operand_ = fRegisterSlot(r);
    return operand_;
  }
  // Singles are never kept in xmm registers.
  static Xbyak::Address fSingle(unsigned r) { return dword[rbx + kF + 8 * static_cast<int>(r)]; }
  static Xbyak::Address fBoxHalf(unsigned r) { return dword[rbx + kF + 8 * static_cast<int>(r) + 4]; }
  const Xbyak::Operand& fOperand(Width w, unsigned r) {
    if (w == Width::Double) return fDouble(r);
    operand_ = fSingle(r);
    return operand_;
  }
  bool kept(unsigned r) const { return ctx_.registers.kept(r); }
  const Xbyak::Xmm& keptXmm(unsigned r) {
    xmm_ = Xbyak::Xmm(ctx_.registers.xmm[r]);
    return xmm_;
  }
  // xmm = f[r] as a double (its low half; a kept register is copied whole, with no merge).
  void loadDouble(const Xbyak::Xmm& to, unsigned r) {
    if (kept(r)) c_.movapd(to, keptXmm(r));
    else c_.movsd(to, fRegisterSlot(r));
  }
  // The bits of f[r] (a double) to or from a general register.
  void loadDoubleBits(const Xbyak::Reg64& to, unsigned r) {
    if (kept(r)) c_.movq(to, keptXmm(r));
    else c_.mov(to, fRegisterSlot(r));
  }
  void storeDoubleBits(unsigned r, const Xbyak::Reg64& from) {
    if (kept(r)) c_.movq(keptXmm(r), from);
    else c_.mov(fRegisterSlot(r), from);
  }

  // Whether the instruction's static rounding mode allows a fast path.
  bool allows(Rounding rounding) const {
    switch (rounding) {
      case Rounding::None: return true;
      case Rounding::Any: return in_.rm <= 4 || in_.rm == 7;
      case Rounding::Nearest: return in_.rm == 0 || in_.rm == 7;
      default: return in_.rm <= 1 || in_.rm == 7;
    }
  }
  // Run-time entry checks, once per block (FpBlockFacts): FS is Dirty (so
  // neither an illegal-instruction trap nor an FS update is due) and a
  // dynamic rounding mode is acceptable.
  void emitEntryChecks(Rounding rounding) {
    if (!ctx_.facts.fsDirty) {
      c_.mov(eax, dword[rbx + kMstatus]);
      c_.and_(eax, static_cast<uint32_t>(csr::kStatusFs));
      c_.cmp(eax, static_cast<uint32_t>(csr::kStatusFs));
      c_.jne(ctx_.checkFailed(), Xbyak::CodeGenerator::T_NEAR);
      ctx_.facts.fsDirty = true;
    }
    if (in_.rm != 7 || rounding == Rounding::None || ctx_.facts.frmNearest) return;
    if (rounding == Rounding::Any) {  // valid modes 0..4; says nothing about RNE (0)
      c_.cmp(dword[rbx + kFrm], 4);
      c_.ja(slow_, Xbyak::CodeGenerator::T_NEAR);
      return;
    }
    c_.cmp(dword[rbx + kFrm], 0);
    c_.jne(ctx_.checkFailed(), Xbyak::CodeGenerator::T_NEAR);
    ctx_.facts.frmNearest = true;
  }
  // A single operand that is not NaN-boxed reads as the canonical NaN: software's case.
  void requireBoxed(unsigned r) {
    c_.cmp(fBoxHalf(r), -1);
    c_.jne(slow_, Xbyak::CodeGenerator::T_NEAR);
  }
  void storeResult(Width w) {
    if (w == Width::Double && kept(in_.rd)) {
      c_.movapd(keptXmm(in_.rd), xmm0);
    } else if (w == Width::Double) {
      c_.movsd(fRegisterSlot(in_.rd), xmm0);
    } else {
      c_.movss(fSingle(in_.rd), xmm0);
      c_.mov(fBoxHalf(in_.rd), -1);
    }
  }
  // Slow path unless |xmm0| is above the smallest normal and finite: then
  // the result is neither NaN nor tiny nor overflowed.
  void requireNormalResult(Width w) {
    if (w == Width::Double) {
      c_.movq(rax, xmm0);
      c_.add(rax, rax);  // drops the sign
      c_.mov(rcx, 0x0020000000000002ull);  // 2 * (smallest normal + 1 ulp)
      c_.sub(rax, rcx);
      c_.mov(rcx, 0xffbffffffffffffeull);  // 2 * (infinity - smallest normal - 1 ulp)
      c_.cmp(rax, rcx);
    } else {
      c_.movd(eax, xmm0);
      c_.add(eax, eax);
      c_.sub(eax, 0x01000002);
      c_.cmp(eax, 0xfdfffffe);
    }
    c_.jae(slow_, Xbyak::CodeGenerator::T_NEAR);
  }
  // Emits `compute` (which completes the instruction or jumps to the slow
  // path, and can have raised only the host's inexact flag) so fflags.NX is
  // set when it is due: nothing to do if it already is, else MXCSR is
  // cleared before and read after, out of line (NX is set early in most
  // FP programs and stays set: the main line is the plain computation).
  void withInexact(const std::function<void()>& compute) {
    Label& precise = ctx_.newLabel();
    Label& done = ctx_.newLabel();
    c_.test(byte[rbx + kFflags], kInexact);
    c_.jz(precise, Xbyak::CodeGenerator::T_NEAR);
    compute();
    c_.L(done);
    ctx_.defer([self = shared_from_this(), compute, &precise, &done] { self->emitPrecise(compute, precise, done); });
  }
  void emitPrecise(const std::function<void()>& compute, Label& precise, Label& done) {
    c_.L(precise);
    c_.mov(dword[rsp], kMxcsrDefault);
    c_.ldmxcsr(dword[rsp]);
    compute();
    c_.stmxcsr(dword[rsp]);
    c_.test(byte[rsp], kMxcsrInexact);
    c_.jz(done, Xbyak::CodeGenerator::T_NEAR);
    c_.or_(byte[rbx + kFflags], kInexact);
    c_.jmp(done, Xbyak::CodeGenerator::T_NEAR);
  }

  // rsi = x[rs1] + imm
  void emitAddress() {
    ctx_.loadX(rsi, in_.rs1);
    if (in_.imm != 0) c_.add(rsi, in_.imm);
  }
  // A TLB miss takes the slow path, whose executor does the full access.
  bool emitLoad(Width w) {
    emitEntryChecks(Rounding::None);
    emitAddress();
    ctx_.tlbProbe(false, w == Width::Double ? 8 : 4, slow_);
    if (w == Width::Double && kept(in_.rd)) {
      c_.movsd(keptXmm(in_.rd), qword[rsi + rcx]);
    } else if (w == Width::Double) {
      c_.mov(rax, qword[rsi + rcx]);
      c_.mov(fRegisterSlot(in_.rd), rax);
    } else {
      c_.mov(eax, dword[rsi + rcx]);
      c_.mov(fSingle(in_.rd), eax);
      c_.mov(fBoxHalf(in_.rd), -1);
    }
    return true;
  }
  bool emitStore(Width w) {
    emitEntryChecks(Rounding::None);
    emitAddress();
    ctx_.tlbProbe(true, w == Width::Double ? 8 : 4, slow_);
    if (w == Width::Double && kept(in_.rs2)) {
      c_.movsd(qword[rsi + rcx], keptXmm(in_.rs2));
    } else if (w == Width::Double) {
      c_.mov(rax, fRegisterSlot(in_.rs2));
      c_.mov(qword[rsi + rcx], rax);
    } else {  // the low half as it is, boxed or not
      c_.mov(eax, fSingle(in_.rs2));
      c_.mov(dword[rsi + rcx], eax);
    }
    return true;
  }

  bool emitArithmetic(Width w) {
    if (!allows(Rounding::Nearest)) return false;
    const bool unary = in_.op == Op::FsqrtD || in_.op == Op::FsqrtS;
    emitEntryChecks(Rounding::Nearest);
    if (w == Width::Single) {
      requireBoxed(in_.rs1);
      if (!unary) requireBoxed(in_.rs2);
    }
    withInexact([=, this] {
      if (w == Width::Double) loadDouble(xmm0, in_.rs1);
      else c_.movss(xmm0, fSingle(in_.rs1));
      const Xbyak::Operand& b = fOperand(w, in_.rs2);
      switch (in_.op) {
        case Op::FaddD: c_.addsd(xmm0, b); break;
        case Op::FsubD: c_.subsd(xmm0, b); break;
        case Op::FmulD: c_.mulsd(xmm0, b); break;
        case Op::FdivD: c_.divsd(xmm0, b); break;
        case Op::FsqrtD: c_.sqrtsd(xmm0, xmm0); break;
        case Op::FaddS: c_.addss(xmm0, b); break;
        case Op::FsubS: c_.subss(xmm0, b); break;
        case Op::FmulS: c_.mulss(xmm0, b); break;
        case Op::FdivS: c_.divss(xmm0, b); break;
        default: c_.sqrtss(xmm0, xmm0); break;  // FsqrtS
      }
      requireNormalResult(w);
      storeResult(w);
    });
    return true;
  }

  // RISC-V fnmsub is -(a*b) + c (x86 vfnmadd), fnmadd is -(a*b) - c (x86 vfnmsub).
  bool emitFused(Width w) {
    if (!hostHasFma() || !allows(Rounding::Nearest)) return false;
    emitEntryChecks(Rounding::Nearest);
    if (w == Width::Single) {
      requireBoxed(in_.rs1);
      requireBoxed(in_.rs2);
      requireBoxed(in_.rs3);
    }
    withInexact([=, this] {
      if (w == Width::Double) {
        loadDouble(xmm0, in_.rs1);
        loadDouble(xmm1, in_.rs2);
      } else {
        c_.movss(xmm0, fSingle(in_.rs1));
        c_.movss(xmm1, fSingle(in_.rs2));
      }
      const Xbyak::Operand& c = fOperand(w, in_.rs3);
      switch (in_.op) {  // xmm0 = xmm1 * xmm0 +- c
        case Op::FmaddD: c_.vfmadd213sd(xmm0, xmm1, c); break;
        case Op::FmsubD: c_.vfmsub213sd(xmm0, xmm1, c); break;
        case Op::FnmsubD: c_.vfnmadd213sd(xmm0, xmm1, c); break;
        case Op::FnmaddD: c_.vfnmsub213sd(xmm0, xmm1, c); break;
        case Op::FmaddS: c_.vfmadd213ss(xmm0, xmm1, c); break;
        case Op::FmsubS: c_.vfmsub213ss(xmm0, xmm1, c); break;
        case Op::FnmsubS: c_.vfnmadd213ss(xmm0, xmm1, c); break;
        default: c_.vfnmsub213ss(xmm0, xmm1, c); break;  // FnmaddS
      }
      requireNormalResult(w);
      storeResult(w);
    });
    return true;
  }

  // Bit operations on the sign; no flags.
  bool emitSignInjection(Width w) {
    emitEntryChecks(Rounding::None);
    const bool isDouble = w == Width::Double;
    if (!isDouble) {
      requireBoxed(in_.rs1);
      requireBoxed(in_.rs2);
    }
    const int signBit = isDouble ? 63 : 31;
    const Xbyak::Reg32e value = isDouble ? Xbyak::Reg32e(rax) : Xbyak::Reg32e(eax);
    const Xbyak::Reg32e sign = isDouble ? Xbyak::Reg32e(rdx) : Xbyak::Reg32e(edx);
    if (isDouble) {
      loadDoubleBits(rax, in_.rs1);
      loadDoubleBits(rdx, in_.rs2);
    } else {
      c_.mov(value, fSingle(in_.rs1));
      c_.mov(sign, fSingle(in_.rs2));
    }
    const bool xorSign = in_.op == Op::FsgnjxD || in_.op == Op::FsgnjxS;
    if (in_.op == Op::FsgnjnD || in_.op == Op::FsgnjnS) c_.not_(sign);
    c_.shr(sign, signBit);  // isolate the sign bit
    c_.shl(sign, signBit);
    if (xorSign) {
      c_.xor_(value, sign);
    } else {
      c_.btr(value, signBit);
      c_.or_(value, sign);
    }
    if (isDouble) {
      storeDoubleBits(in_.rd, rax);
    } else {
      c_.mov(fSingle(in_.rd), eax);
      c_.mov(fBoxHalf(in_.rd), -1);
    }
    return true;
  }

  // Ordered, unequal operands only: NaNs (flags, canonical results) and
  // equal ones (-0 vs +0) go to software. No flags otherwise.
  bool emitMinMax(Width w) {
    emitEntryChecks(Rounding::None);
    const bool isMin = in_.op == Op::FminD || in_.op == Op::FminS;
    if (w == Width::Double) {
      loadDouble(xmm0, in_.rs1);
      loadDouble(xmm1, in_.rs2);
      c_.ucomisd(xmm0, xmm1);
    } else {
      requireBoxed(in_.rs1);
      requireBoxed(in_.rs2);
      c_.movss(xmm0, fSingle(in_.rs1));
      c_.movss(xmm1, fSingle(in_.rs2));
      c_.ucomiss(xmm0, xmm1);
    }
    c_.jp(slow_, Xbyak::CodeGenerator::T_NEAR);
    c_.je(slow_, Xbyak::CodeGenerator::T_NEAR);
    if (w == Width::Double) {
      if (isMin) c_.minsd(xmm0, xmm1);
      else c_.maxsd(xmm0, xmm1);
    } else {
      if (isMin) c_.minss(xmm0, xmm1);
      else c_.maxss(xmm0, xmm1);
    }
    storeResult(w);
    return true;
  }

  // Ordered operands only: a NaN operand's flags (NV for flt/fle, or for a signaling NaN) are software's.
  bool emitCompare(Width w) {
    emitEntryChecks(Rounding::None);
    if (w == Width::Double) {
      loadDouble(xmm0, in_.rs1);
      c_.ucomisd(xmm0, fDouble(in_.rs2));
    } else {
      requireBoxed(in_.rs1);
      requireBoxed(in_.rs2);
      c_.movss(xmm0, fSingle(in_.rs1));
      c_.ucomiss(xmm0, fSingle(in_.rs2));
    }
    c_.jp(slow_, Xbyak::CodeGenerator::T_NEAR);
    switch (in_.op) {
      case Op::FeqD: case Op::FeqS: c_.sete(al); break;
      case Op::FltD: case Op::FltS: c_.setb(al); break;
      default: c_.setbe(al); break;  // Fle
    }
    c_.movzx(eax, al);
    ctx_.storeX(in_.rd, rax);
    return true;
  }

  // Moves copy bits without unboxing.
  bool emitMove() {
    emitEntryChecks(Rounding::None);
    switch (in_.op) {
      case Op::FmvXD:
        loadDoubleBits(rax, in_.rs1);
        ctx_.storeX(in_.rd, rax);
        break;
      case Op::FmvXW:
        c_.movsxd(rax, fSingle(in_.rs1));
        ctx_.storeX(in_.rd, rax);
        break;
      case Op::FmvDX:
        ctx_.loadX(rax, in_.rs1);
        storeDoubleBits(in_.rd, rax);
        break;
      default:  // FmvWX
        ctx_.loadX(rax, in_.rs1);
        c_.mov(fSingle(in_.rd), eax);
        c_.mov(fBoxHalf(in_.rd), -1);
        break;
    }
    return true;
  }

  // Exact for every non-NaN value; a NaN needs the canonical NaN (and NV if signaling).
  bool emitWiden() {
    if (!allows(Rounding::Any)) return false;
    emitEntryChecks(Rounding::Any);
    requireBoxed(in_.rs1);
    c_.cvtss2sd(xmm0, fSingle(in_.rs1));
    c_.ucomisd(xmm0, xmm0);
    c_.jp(slow_, Xbyak::CodeGenerator::T_NEAR);
    storeResult(Width::Double);
    return true;
  }
  bool emitNarrow() {
    if (!allows(Rounding::Nearest)) return false;
    emitEntryChecks(Rounding::Nearest);
    withInexact([=, this] {
      c_.cvtsd2ss(xmm0, fDouble(in_.rs1));
      requireNormalResult(Width::Single);
      storeResult(Width::Single);
    });
    return true;
  }

  // Integer to float never overflows or underflows; 32-bit integers to double are exact.
  bool emitFromInteger() {
    const Op op = in_.op;
    const bool exact = op == Op::FcvtDW || op == Op::FcvtDWu;
    const Rounding rounding = exact ? Rounding::Any : Rounding::Nearest;
    if (!allows(rounding)) return false;
    emitEntryChecks(rounding);
    const Width w = widthOf(op);
    const auto convert = [=, this] {
      ctx_.loadX(rax, in_.rs1);
      if (op == Op::FcvtDWu || op == Op::FcvtSWu) c_.mov(eax, eax);  // zero-extend, then convert as 64-bit
      else if (op == Op::FcvtDW || op == Op::FcvtSW) c_.movsxd(rax, eax);
      c_.xorps(xmm0, xmm0);  // no false dependency on the old xmm0
      if (w == Width::Double) c_.cvtsi2sd(xmm0, rax);
      else c_.cvtsi2ss(xmm0, rax);
      storeResult(w);
    };
    if (exact) convert();
    else withInexact(convert);
    return true;
  }

  // Signed conversions; out-of-range and NaN operands give x86's "integer
  // indefinite" (the minimum value), which goes to software (with a genuine
  // minimum too).
  bool emitToInteger() {
    if (!allows(Rounding::NearestOrTruncate)) return false;
    // A dynamic mode must be RNE; a static one RNE or RTZ.
    emitEntryChecks(in_.rm == 7 ? Rounding::Nearest : Rounding::None);
    const Width w = widthOf(in_.op);
    const bool wide = in_.op == Op::FcvtLD || in_.op == Op::FcvtLS;
    const bool truncate = in_.rm == 1;
    if (w == Width::Single) requireBoxed(in_.rs1);
    withInexact([=, this] {
      const Xbyak::Reg32e result = wide ? Xbyak::Reg32e(rax) : Xbyak::Reg32e(eax);
      const Xbyak::Operand& source = fOperand(w, in_.rs1);
      if (w == Width::Double) {
        if (truncate) c_.cvttsd2si(result, source);
        else c_.cvtsd2si(result, source);
      } else {
        if (truncate) c_.cvttss2si(result, source);
        else c_.cvtss2si(result, source);
      }
      if (wide) {
        c_.mov(rcx, 0x8000000000000000ull);
        c_.cmp(rax, rcx);
      } else {
        c_.cmp(eax, 0x80000000);
      }
      c_.je(slow_, Xbyak::CodeGenerator::T_NEAR);
      if (!wide) c_.movsxd(rax, eax);
      ctx_.storeX(in_.rd, rax);
    });
    return true;
  }

  // fflags, frm, fcsr with FS Dirty: accessible at every privilege, and a
  // write leaves FS as it is (executeCsr does the rest: FS Off or Clean).
  bool emitCsr() {
    emitEntryChecks(Rounding::None);
    const unsigned number = static_cast<unsigned>(in_.imm) & 0xfff;
    const Xbyak::Address flags = dword[rbx + kFflags], mode = dword[rbx + kFrm];
    if (number == csr::kFflags) {
      c_.mov(eax, flags);
    } else if (number == csr::kFrm) {
      c_.mov(eax, mode);
    } else {
      c_.mov(eax, mode);
      c_.shl(eax, 5);
      c_.or_(eax, flags);
    }
    const bool immediate = in_.op == Op::Csrrwi || in_.op == Op::Csrrsi || in_.op == Op::Csrrci;
    const bool swap = in_.op == Op::Csrrw || in_.op == Op::Csrrwi;
    if (swap || in_.rs1 != 0) {  // csrrs/csrrc with rs1 = x0 (or zimm 0) do not write
      if (immediate) c_.mov(ecx, in_.rs1);
      else ctx_.loadX(rcx, in_.rs1);
      if (in_.op == Op::Csrrs || in_.op == Op::Csrrsi) {
        c_.or_(ecx, eax);
      } else if (in_.op == Op::Csrrc || in_.op == Op::Csrrci) {
        c_.not_(ecx);
        c_.and_(ecx, eax);
      }
      if (number == csr::kFcsr) {
        c_.mov(edx, ecx);
        c_.and_(edx, 0x1f);
        c_.mov(flags, edx);
        c_.shr(ecx, 5);
      }
      c_.and_(ecx, number == csr::kFflags ? 0x1f : 7);
      c_.mov(number == csr::kFflags ? flags : mode, ecx);
      if (number != csr::kFflags) ctx_.facts.frmNearest = false;
    }
    ctx_.storeX(in_.rd, rax);
    return true;
  }

  FpEmitContext ctx_;
  Xbyak::CodeGenerator& c_;
  const DecodedInsn& in_;
  Label& slow_;
  Xbyak::Address operand_ = qword[rbx];  // what fDouble or fOperand returned last, when a slot
  Xbyak::Xmm xmm_;                       // ... when a kept register
};

// Calls use(register, asDouble, writes) for each f register `in` names:
// asDouble when every path of `in` (fast or executor) handles it kept in an
// xmm register (FpEmitter reads it through fDouble and its kin).
template <typename Use>
void forEachFpRegister(const DecodedInsn& in, Use use) {
  const Op op = in.op;
  const auto ternary = [&](bool isDouble) {
    use(in.rd, isDouble, true);
    use(in.rs1, isDouble, false);
    use(in.rs2, isDouble, false);
  };
  switch (op) {
    case Op::Fld: use(in.rd, true, true); break;
    case Op::Flw: use(in.rd, false, true); break;
    case Op::Fsd: use(in.rs2, true, false); break;
    case Op::Fsw: use(in.rs2, false, false); break;
    case Op::FmaddD: case Op::FmsubD: case Op::FnmsubD: case Op::FnmaddD:
    case Op::FmaddS: case Op::FmsubS: case Op::FnmsubS: case Op::FnmaddS: {
      const bool isDouble = op >= Op::FmaddD;
      ternary(isDouble);
      use(in.rs3, isDouble, false);
      break;
    }
    case Op::FaddD: case Op::FsubD: case Op::FmulD: case Op::FdivD:
    case Op::FsgnjD: case Op::FsgnjnD: case Op::FsgnjxD: case Op::FminD: case Op::FmaxD: ternary(true); break;
    case Op::FaddS: case Op::FsubS: case Op::FmulS: case Op::FdivS:
    case Op::FsgnjS: case Op::FsgnjnS: case Op::FsgnjxS: case Op::FminS: case Op::FmaxS: ternary(false); break;
    case Op::FsqrtD: case Op::FsqrtS:
      use(in.rd, op == Op::FsqrtD, true);
      use(in.rs1, op == Op::FsqrtD, false);
      break;
    case Op::FcvtSD:
      use(in.rd, false, true);
      use(in.rs1, true, false);
      break;
    case Op::FcvtDS:
      use(in.rd, true, true);
      use(in.rs1, false, false);
      break;
    case Op::FcvtWD: case Op::FcvtWuD: case Op::FcvtLD: case Op::FcvtLuD: case Op::FmvXD: case Op::FclassD:
      use(in.rs1, true, false);
      break;
    case Op::FcvtWS: case Op::FcvtWuS: case Op::FcvtLS: case Op::FcvtLuS: case Op::FmvXW: case Op::FclassS:
      use(in.rs1, false, false);
      break;
    case Op::FcvtDW: case Op::FcvtDWu: case Op::FcvtDL: case Op::FcvtDLu: case Op::FmvDX: use(in.rd, true, true); break;
    case Op::FcvtSW: case Op::FcvtSWu: case Op::FcvtSL: case Op::FcvtSLu: case Op::FmvWX: use(in.rd, false, true); break;
    case Op::FeqD: case Op::FltD: case Op::FleD: case Op::FeqS: case Op::FltS: case Op::FleS:
      use(in.rs1, op >= Op::FeqD, false);
      use(in.rs2, op >= Op::FeqD, false);
      break;
    default: break;  // not F or D: no f register
  }
}

}  // namespace

Xbyak::Address fRegisterSlot(unsigned r) { return qword[rbx + kF + 8 * static_cast<int>(r)]; }

FpRegisterMap planFpRegisters(std::span<const DecodedInsn> insns, bool loops) {
  uint32_t uses[32] = {};
  bool single[32] = {}, written[32] = {};
  for (const DecodedInsn& in : insns) {
    forEachFpRegister(in, [&](unsigned r, bool asDouble, bool writes) {
      ++uses[r];
      single[r] = single[r] || !asDouble;
      written[r] = written[r] || writes;
    });
  }
  // Below two uses, the load at entry (and store at exit) cost what they save; a loop pays them once.
  const uint32_t minUses = loops ? 1 : 2;
  std::vector<unsigned> candidates;
  for (unsigned r = 0; r < 32; ++r)
    if (!single[r] && uses[r] >= minUses) candidates.push_back(r);
  std::stable_sort(candidates.begin(), candidates.end(), [&](unsigned a, unsigned b) { return uses[a] > uses[b]; });
  if (candidates.size() > FpRegisterMap::kXmmCount) candidates.resize(FpRegisterMap::kXmmCount);
  FpRegisterMap map;
  int next = FpRegisterMap::kFirstXmm;
  for (const unsigned r : candidates) {
    map.xmm[r] = static_cast<int8_t>(next++);
    map.written[r] = written[r];
    map.anyWritten = map.anyWritten || written[r];
  }
  map.anyKept = !candidates.empty();
  return map;
}

bool emitFpFastPath(FpEmitContext& context, const DecodedInsn& in, Xbyak::Label& slow) {
  return std::make_shared<FpEmitter>(context, in, slow)->emit();
}

}  // namespace strata::cpu::jit
