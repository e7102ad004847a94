// F and D instruction execution: operand unboxing, rounding-mode resolution,
// fflags accrual and mstatus.FS tracking around the pure arithmetic in
// cpu/fp/fp_ops.h.
#include "cpu/fp/fp_ops.h"
#include "cpu/hart_core.h"

namespace strata::cpu {

namespace {

bool usesRoundingMode(Op op) {
  switch (op) {
    case Op::FmaddS: case Op::FmsubS: case Op::FnmsubS: case Op::FnmaddS:
    case Op::FmaddD: case Op::FmsubD: case Op::FnmsubD: case Op::FnmaddD:
    case Op::FaddS: case Op::FsubS: case Op::FmulS: case Op::FdivS: case Op::FsqrtS:
    case Op::FaddD: case Op::FsubD: case Op::FmulD: case Op::FdivD: case Op::FsqrtD:
    case Op::FcvtSD: case Op::FcvtDS:
    case Op::FcvtWS: case Op::FcvtWuS: case Op::FcvtLS: case Op::FcvtLuS:
    case Op::FcvtWD: case Op::FcvtWuD: case Op::FcvtLD: case Op::FcvtLuD:
    case Op::FcvtSW: case Op::FcvtSWu: case Op::FcvtSL: case Op::FcvtSLu:
    case Op::FcvtDW: case Op::FcvtDWu: case Op::FcvtDL: case Op::FcvtDLu: return true;
    default: return false;
  }
}

uint64_t signExtend32(uint32_t value) { return static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(value))); }

}  // namespace

bool HartCore::executeFp(const DecodedInsn& insn) {
  using namespace fp;
  if (!fpEnabled()) return raiseIllegal(insn);
  RoundingMode rm = RoundingMode::RNE;
  if (usesRoundingMode(insn.op)) {
    const uint32_t mode = insn.rm == 7 ? frm : insn.rm;
    if (!isValidRoundingMode(mode)) return raiseIllegal(insn);
    rm = static_cast<RoundingMode>(mode);
  }
  const uint64_t a64 = f[insn.rs1], b64 = f[insn.rs2], c64 = f[insn.rs3];
  const uint32_t a32 = unboxF32(a64), b32 = unboxF32(b64), c32 = unboxF32(c64);
  uint32_t flags = 0;
  bool writesFloat = true;
  uint64_t result = 0;  // for the F register
  auto integer = [&](uint64_t value) {
    x[insn.rd] = value;
    writesFloat = false;
  };

  switch (insn.op) {
    case Op::Flw: {
      uint32_t value;
      if (!load(x[insn.rs1] + static_cast<int64_t>(insn.imm), value)) return false;
      result = boxF32(value);
      break;
    }
    case Op::Fld:
      if (!load(x[insn.rs1] + static_cast<int64_t>(insn.imm), result)) return false;
      break;
    case Op::Fsw:
      // The low 32 bits are stored as they are, boxed or not.
      return store(x[insn.rs1] + static_cast<int64_t>(insn.imm), static_cast<uint32_t>(f[insn.rs2]));
    case Op::Fsd: return store(x[insn.rs1] + static_cast<int64_t>(insn.imm), f[insn.rs2]);

    case Op::FmaddS: result = boxF32(f32MulAdd(a32, b32, c32, rm, flags)); break;
    case Op::FmsubS: result = boxF32(f32MulSub(a32, b32, c32, rm, flags)); break;
    case Op::FnmsubS: result = boxF32(f32NegMulSub(a32, b32, c32, rm, flags)); break;
    case Op::FnmaddS: result = boxF32(f32NegMulAdd(a32, b32, c32, rm, flags)); break;
    case Op::FmaddD: result = f64MulAdd(a64, b64, c64, rm, flags); break;
    case Op::FmsubD: result = f64MulSub(a64, b64, c64, rm, flags); break;
    case Op::FnmsubD: result = f64NegMulSub(a64, b64, c64, rm, flags); break;
    case Op::FnmaddD: result = f64NegMulAdd(a64, b64, c64, rm, flags); break;

    case Op::FaddS: result = boxF32(f32Add(a32, b32, rm, flags)); break;
    case Op::FsubS: result = boxF32(f32Sub(a32, b32, rm, flags)); break;
    case Op::FmulS: result = boxF32(f32Mul(a32, b32, rm, flags)); break;
    case Op::FdivS: result = boxF32(f32Div(a32, b32, rm, flags)); break;
    case Op::FsqrtS: result = boxF32(f32Sqrt(a32, rm, flags)); break;
    case Op::FaddD: result = f64Add(a64, b64, rm, flags); break;
    case Op::FsubD: result = f64Sub(a64, b64, rm, flags); break;
    case Op::FmulD: result = f64Mul(a64, b64, rm, flags); break;
    case Op::FdivD: result = f64Div(a64, b64, rm, flags); break;
    case Op::FsqrtD: result = f64Sqrt(a64, rm, flags); break;

    case Op::FsgnjS: result = boxF32(f32SignInject(a32, b32)); break;
    case Op::FsgnjnS: result = boxF32(f32SignInjectNeg(a32, b32)); break;
    case Op::FsgnjxS: result = boxF32(f32SignInjectXor(a32, b32)); break;
    case Op::FsgnjD: result = f64SignInject(a64, b64); break;
    case Op::FsgnjnD: result = f64SignInjectNeg(a64, b64); break;
    case Op::FsgnjxD: result = f64SignInjectXor(a64, b64); break;
    case Op::FminS: result = boxF32(f32Min(a32, b32, flags)); break;
    case Op::FmaxS: result = boxF32(f32Max(a32, b32, flags)); break;
    case Op::FminD: result = f64Min(a64, b64, flags); break;
    case Op::FmaxD: result = f64Max(a64, b64, flags); break;

    case Op::FcvtSD: result = boxF32(f64ToF32(a64, rm, flags)); break;
    case Op::FcvtDS: result = f32ToF64(a32, flags); break;

    case Op::FcvtWS: integer(f32ToI32(a32, rm, flags)); break;
    case Op::FcvtWuS: integer(f32ToU32(a32, rm, flags)); break;
    case Op::FcvtLS: integer(f32ToI64(a32, rm, flags)); break;
    case Op::FcvtLuS: integer(f32ToU64(a32, rm, flags)); break;
    case Op::FcvtWD: integer(f64ToI32(a64, rm, flags)); break;
    case Op::FcvtWuD: integer(f64ToU32(a64, rm, flags)); break;
    case Op::FcvtLD: integer(f64ToI64(a64, rm, flags)); break;
    case Op::FcvtLuD: integer(f64ToU64(a64, rm, flags)); break;

    case Op::FcvtSW: result = boxF32(i32ToF32(static_cast<int32_t>(x[insn.rs1]), rm, flags)); break;
    case Op::FcvtSWu: result = boxF32(u32ToF32(static_cast<uint32_t>(x[insn.rs1]), rm, flags)); break;
    case Op::FcvtSL: result = boxF32(i64ToF32(static_cast<int64_t>(x[insn.rs1]), rm, flags)); break;
    case Op::FcvtSLu: result = boxF32(u64ToF32(x[insn.rs1], rm, flags)); break;
    case Op::FcvtDW: result = i32ToF64(static_cast<int32_t>(x[insn.rs1]), rm, flags); break;
    case Op::FcvtDWu: result = u32ToF64(static_cast<uint32_t>(x[insn.rs1]), rm, flags); break;
    case Op::FcvtDL: result = i64ToF64(static_cast<int64_t>(x[insn.rs1]), rm, flags); break;
    case Op::FcvtDLu: result = u64ToF64(x[insn.rs1], rm, flags); break;

    // Moves copy bits without unboxing.
    case Op::FmvXW: integer(signExtend32(static_cast<uint32_t>(a64))); break;
    case Op::FmvWX: result = boxF32(static_cast<uint32_t>(x[insn.rs1])); break;
    case Op::FmvXD: integer(a64); break;
    case Op::FmvDX: result = x[insn.rs1]; break;

    case Op::FeqS: integer(f32Eq(a32, b32, flags)); break;
    case Op::FltS: integer(f32Lt(a32, b32, flags)); break;
    case Op::FleS: integer(f32Le(a32, b32, flags)); break;
    case Op::FeqD: integer(f64Eq(a64, b64, flags)); break;
    case Op::FltD: integer(f64Lt(a64, b64, flags)); break;
    case Op::FleD: integer(f64Le(a64, b64, flags)); break;
    case Op::FclassS: integer(f32Classify(a32)); break;
    case Op::FclassD: integer(f64Classify(a64)); break;
    default: return raiseIllegal(insn);
  }
  if (writesFloat) {
    f[insn.rd] = result;
    setFsDirty();
  }
  if (flags) {
    fflags |= flags;
    setFsDirty();
  }
  return true;
}

}  // namespace strata::cpu
