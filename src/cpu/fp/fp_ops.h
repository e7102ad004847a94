// IEEE 754 binary32/binary64 arithmetic with RISC-V F/D semantics, as pure
// functions on bit patterns: every result is bit-exact for all five rounding
// modes, NaN results are the canonical NaN, and the accrued exception flags
// are exactly those a RISC-V hart would raise (tininess detected after rounding).
#pragma once

#include <cstdint>

namespace strata::cpu::fp {

// Static rounding modes, numbered as the frm field / instruction rm field.
// Resolving DYN (7) and rejecting reserved values (5, 6) is the caller's job;
// should an out-of-range value slip through, it behaves as RNE (never UB).
enum class RoundingMode : uint8_t {
  RNE = 0,  // to nearest, ties to even
  RTZ = 1,  // toward zero
  RDN = 2,  // toward -infinity
  RUP = 3,  // toward +infinity
  RMM = 4,  // to nearest, ties to max magnitude
};

// True for the encodings 0..4 that name a rounding mode above.
constexpr bool isValidRoundingMode(uint32_t rm) { return rm <= 4; }

// Exception flag bits, laid out as the fflags CSR. Operations OR them into
// their `flags` out-parameter and never clear bits.
namespace fflags {
inline constexpr uint32_t NX = 1u << 0;  // inexact
inline constexpr uint32_t UF = 1u << 1;  // underflow
inline constexpr uint32_t OF = 1u << 2;  // overflow
inline constexpr uint32_t DZ = 1u << 3;  // divide by zero
inline constexpr uint32_t NV = 1u << 4;  // invalid operation
}  // namespace fflags

inline constexpr uint32_t kCanonicalNaN32 = 0x7fc00000u;
inline constexpr uint64_t kCanonicalNaN64 = 0x7ff8000000000000ull;

// ---- NaN boxing of binary32 values in 64-bit f registers ----
constexpr uint64_t boxF32(uint32_t value) { return 0xffffffff00000000ull | value; }
// A value whose upper 32 bits are not all ones reads as the canonical NaN.
constexpr uint32_t unboxF32(uint64_t reg) {
  return (reg >> 32) == 0xffffffffu ? static_cast<uint32_t>(reg) : kCanonicalNaN32;
}

// ---- Arithmetic (fadd, fsub, fmul, fdiv, fsqrt) ----
uint32_t f32Add(uint32_t a, uint32_t b, RoundingMode rm, uint32_t& flags);
uint32_t f32Sub(uint32_t a, uint32_t b, RoundingMode rm, uint32_t& flags);
uint32_t f32Mul(uint32_t a, uint32_t b, RoundingMode rm, uint32_t& flags);
uint32_t f32Div(uint32_t a, uint32_t b, RoundingMode rm, uint32_t& flags);
uint32_t f32Sqrt(uint32_t a, RoundingMode rm, uint32_t& flags);
uint64_t f64Add(uint64_t a, uint64_t b, RoundingMode rm, uint32_t& flags);
uint64_t f64Sub(uint64_t a, uint64_t b, RoundingMode rm, uint32_t& flags);
uint64_t f64Mul(uint64_t a, uint64_t b, RoundingMode rm, uint32_t& flags);
uint64_t f64Div(uint64_t a, uint64_t b, RoundingMode rm, uint32_t& flags);
uint64_t f64Sqrt(uint64_t a, RoundingMode rm, uint32_t& flags);

// ---- Fused multiply-add family, one rounding ----
// fmadd:  a*b + c      fmsub:  a*b - c
// fnmsub: -(a*b) + c   fnmadd: -(a*b) - c
// inf*0 raises NV even when c is a quiet NaN, as the spec requires.
uint32_t f32MulAdd(uint32_t a, uint32_t b, uint32_t c, RoundingMode rm, uint32_t& flags);
uint32_t f32MulSub(uint32_t a, uint32_t b, uint32_t c, RoundingMode rm, uint32_t& flags);
uint32_t f32NegMulSub(uint32_t a, uint32_t b, uint32_t c, RoundingMode rm, uint32_t& flags);
uint32_t f32NegMulAdd(uint32_t a, uint32_t b, uint32_t c, RoundingMode rm, uint32_t& flags);
uint64_t f64MulAdd(uint64_t a, uint64_t b, uint64_t c, RoundingMode rm, uint32_t& flags);
uint64_t f64MulSub(uint64_t a, uint64_t b, uint64_t c, RoundingMode rm, uint32_t& flags);
uint64_t f64NegMulSub(uint64_t a, uint64_t b, uint64_t c, RoundingMode rm, uint32_t& flags);
uint64_t f64NegMulAdd(uint64_t a, uint64_t b, uint64_t c, RoundingMode rm, uint32_t& flags);

// ---- fmin / fmax (IEEE 754-2019 minimumNumber / maximumNumber) ----
// -0 < +0; one NaN operand yields the other operand; two NaNs yield the
// canonical NaN; any signaling NaN operand raises NV.
uint32_t f32Min(uint32_t a, uint32_t b, uint32_t& flags);
uint32_t f32Max(uint32_t a, uint32_t b, uint32_t& flags);
uint64_t f64Min(uint64_t a, uint64_t b, uint32_t& flags);
uint64_t f64Max(uint64_t a, uint64_t b, uint32_t& flags);

// ---- Comparisons (result 0 or 1, as written to rd) ----
// feq is quiet (NV only for signaling NaNs); flt/fle are signaling (NV for any NaN).
bool f32Eq(uint32_t a, uint32_t b, uint32_t& flags);
bool f32Lt(uint32_t a, uint32_t b, uint32_t& flags);
bool f32Le(uint32_t a, uint32_t b, uint32_t& flags);
bool f64Eq(uint64_t a, uint64_t b, uint32_t& flags);
bool f64Lt(uint64_t a, uint64_t b, uint32_t& flags);
bool f64Le(uint64_t a, uint64_t b, uint32_t& flags);

// ---- fclass: exactly one of these bits is set ----
namespace fclass {
inline constexpr uint32_t NegInf = 1u << 0;
inline constexpr uint32_t NegNormal = 1u << 1;
inline constexpr uint32_t NegSubnormal = 1u << 2;
inline constexpr uint32_t NegZero = 1u << 3;
inline constexpr uint32_t PosZero = 1u << 4;
inline constexpr uint32_t PosSubnormal = 1u << 5;
inline constexpr uint32_t PosNormal = 1u << 6;
inline constexpr uint32_t PosInf = 1u << 7;
inline constexpr uint32_t SignalingNaN = 1u << 8;
inline constexpr uint32_t QuietNaN = 1u << 9;
}  // namespace fclass
uint32_t f32Classify(uint32_t a);
uint32_t f64Classify(uint64_t a);

// ---- Sign injection (fsgnj, fsgnjn, fsgnjx): bit operations, no flags ----
constexpr uint32_t f32SignInject(uint32_t a, uint32_t b) { return (a & 0x7fffffffu) | (b & 0x80000000u); }
constexpr uint32_t f32SignInjectNeg(uint32_t a, uint32_t b) { return (a & 0x7fffffffu) | (~b & 0x80000000u); }
constexpr uint32_t f32SignInjectXor(uint32_t a, uint32_t b) { return a ^ (b & 0x80000000u); }
constexpr uint64_t f64SignInject(uint64_t a, uint64_t b) {
  return (a & 0x7fffffffffffffffull) | (b & 0x8000000000000000ull);
}
constexpr uint64_t f64SignInjectNeg(uint64_t a, uint64_t b) {
  return (a & 0x7fffffffffffffffull) | (~b & 0x8000000000000000ull);
}
constexpr uint64_t f64SignInjectXor(uint64_t a, uint64_t b) { return a ^ (b & 0x8000000000000000ull); }

// ---- Float <-> float (fcvt.d.s is exact; fcvt.s.d rounds) ----
uint64_t f32ToF64(uint32_t a, uint32_t& flags);
uint32_t f64ToF32(uint64_t a, RoundingMode rm, uint32_t& flags);

// ---- Float -> integer (fcvt.{w,wu,l,lu}.{s,d}) ----
// The result is the value written to rd: 32-bit results are sign-extended to
// 64 bits (also for wu). Out-of-range values, infinities and NaNs saturate
// per the spec's table (NaN -> largest positive) and raise NV only; in-range
// inexact results raise NX.
uint64_t f32ToI32(uint32_t a, RoundingMode rm, uint32_t& flags);
uint64_t f32ToU32(uint32_t a, RoundingMode rm, uint32_t& flags);
uint64_t f32ToI64(uint32_t a, RoundingMode rm, uint32_t& flags);
uint64_t f32ToU64(uint32_t a, RoundingMode rm, uint32_t& flags);
uint64_t f64ToI32(uint64_t a, RoundingMode rm, uint32_t& flags);
uint64_t f64ToU32(uint64_t a, RoundingMode rm, uint32_t& flags);
uint64_t f64ToI64(uint64_t a, RoundingMode rm, uint32_t& flags);
uint64_t f64ToU64(uint64_t a, RoundingMode rm, uint32_t& flags);

// ---- Integer -> float (fcvt.{s,d}.{w,wu,l,lu}); zero converts to +0 ----
// W/WU variants take the low 32 bits of rs1 (pass static_cast<int32_t>/<uint32_t>).
uint32_t i32ToF32(int32_t a, RoundingMode rm, uint32_t& flags);
uint32_t u32ToF32(uint32_t a, RoundingMode rm, uint32_t& flags);
uint32_t i64ToF32(int64_t a, RoundingMode rm, uint32_t& flags);
uint32_t u64ToF32(uint64_t a, RoundingMode rm, uint32_t& flags);
uint64_t i32ToF64(int32_t a, RoundingMode rm, uint32_t& flags);
uint64_t u32ToF64(uint32_t a, RoundingMode rm, uint32_t& flags);
uint64_t i64ToF64(int64_t a, RoundingMode rm, uint32_t& flags);
uint64_t u64ToF64(uint64_t a, RoundingMode rm, uint32_t& flags);

// ---- Host acceleration ----
// On x86-64 the common cases (RNE arithmetic, fma and fcvt on non-NaN,
// non-infinite operands; float->integer in every mode but RMM) run on the
// host FPU, with results and flags identical to the software path. The host
// rounding mode is never left changed. Enabled by default; tests and
// benchmarks turn it off to exercise or measure the software path alone.
void setHostAcceleration(bool enabled);
bool hostAccelerationEnabled();

}  // namespace strata::cpu::fp
