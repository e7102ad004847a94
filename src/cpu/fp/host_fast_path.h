// Internal to cpu/fp (included by fp_ops.cpp only): x86-64 host-FPU shortcuts
// for the common cases, each returning false when it cannot guarantee the
// bit-exact RISC-V result and flags, so the caller falls back to software.
// Host instructions are issued through inline asm so the compiler can neither
// constant-fold them nor move them across MXCSR accesses.
#pragma once

#include <bit>
#include <cstdint>

#include "cpu/fp/fp_ops.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define STRATA_FP_HOST_FAST_PATH 1
#else
#define STRATA_FP_HOST_FAST_PATH 0
#endif

namespace strata::cpu::fp::hostfast {

#if STRATA_FP_HOST_FAST_PATH

// FMA3 is needed for exact error terms and fused ops; checked once at load.
// Before the check runs (static-init order), the flag reads false and every
// call simply takes the software path.
extern const bool kHostHasFma;
// SSE4.1 roundsd rounds to an integral value in an immediate mode.
extern const bool kHostHasSse41;

// MXCSR as we need it: all exceptions masked, round-to-nearest-even, no
// flush-to-zero, no denormals-are-zero. Status flag bits (0..5) ignored.
inline constexpr uint32_t kMxcsrControlMask = 0xffc0;
inline constexpr uint32_t kMxcsrDefaultControl = 0x1f80;

inline uint32_t readMxcsr() {
  uint32_t csr;
  asm volatile("stmxcsr %0" : "=m"(csr));
  return csr;
}
inline void writeMxcsr(uint32_t csr) { asm volatile("ldmxcsr %0" : : "m"(csr)); }

// The error-free-transform paths rely on the host rounding to nearest-even.
inline bool hostIsDefaultRne() { return (readMxcsr() & kMxcsrControlMask) == kMxcsrDefaultControl; }

inline double asDouble(uint64_t bits) { return std::bit_cast<double>(bits); }
inline float asFloat(uint32_t bits) { return std::bit_cast<float>(bits); }
inline uint64_t bitsOf(double v) { return std::bit_cast<uint64_t>(v); }
inline uint32_t bitsOf(float v) { return std::bit_cast<uint32_t>(v); }

inline double add(double a, double b) { asm("addsd %1, %0" : "+x"(a) : "x"(b)); return a; }
inline double sub(double a, double b) { asm("subsd %1, %0" : "+x"(a) : "x"(b)); return a; }
inline double mul(double a, double b) { asm("mulsd %1, %0" : "+x"(a) : "x"(b)); return a; }
inline double div(double a, double b) { asm("divsd %1, %0" : "+x"(a) : "x"(b)); return a; }
inline double sqrt(double a) { asm("sqrtsd %0, %0" : "+x"(a)); return a; }
// a*b + c with one rounding (requires kHostHasFma).
inline double fma(double a, double b, double c) { asm("vfmadd231sd %2, %1, %0" : "+x"(c) : "x"(a), "x"(b)); return c; }
inline float toFloat(double a) {
  float r;
  asm("cvtsd2ss %1, %0" : "=x"(r) : "x"(a));
  return r;
}
inline double toDouble(float a) {  // exact
  double r;
  asm("cvtss2sd %1, %0" : "=x"(r) : "x"(a));
  return r;
}

inline int f64ExpField(uint64_t x) { return static_cast<int>((x >> 52) & 0x7ff); }
inline int f32ExpField(uint32_t x) { return static_cast<int>((x >> 23) & 0xff); }

// ---- binary64, RNE, via error-free transforms ----

// Operands below 2^1023 in magnitude cannot overflow, and a sum never
// underflows inexactly, so only NX needs detecting: TwoSum's error term.
inline bool f64Add(uint64_t a, uint64_t b, uint64_t& result, uint32_t& flags) {
  if (f64ExpField(a) >= 0x7fe || f64ExpField(b) >= 0x7fe || !hostIsDefaultRne()) return false;
  const double x = asDouble(a), y = asDouble(b);
  const double s = add(x, y);
  const double yPart = sub(s, x);
  const double err = add(sub(x, sub(s, yPart)), sub(y, yPart));
  if (err != 0.0) flags |= fflags::NX;
  result = bitsOf(s);
  return true;
}

// Normal operands whose exponents keep the product (and its exact error
// term, fma(x, y, -p)) well inside the normal range.
inline bool f64Mul(uint64_t a, uint64_t b, uint64_t& result, uint32_t& flags) {
  const int ea = f64ExpField(a), eb = f64ExpField(b);
  const int productExp = ea + eb - 2 * 1023;
  if (ea == 0 || eb == 0 || ea == 0x7ff || eb == 0x7ff || productExp < -960 || productExp > 1020) return false;
  if (!kHostHasFma || !hostIsDefaultRne()) return false;
  const double x = asDouble(a), y = asDouble(b);
  const double p = mul(x, y);
  if (fma(x, y, -p) != 0.0) flags |= fflags::NX;
  result = bitsOf(p);
  return true;
}

// Exponents within +-500 keep the quotient normal and the remainder
// a - q*b exactly representable, so it is zero exactly when q is exact.
inline bool f64Div(uint64_t a, uint64_t b, uint64_t& result, uint32_t& flags) {
  const int ea = f64ExpField(a) - 1023, eb = f64ExpField(b) - 1023;
  if (ea < -500 || ea > 500 || eb < -500 || eb > 500) return false;
  if (!kHostHasFma || !hostIsDefaultRne()) return false;
  const double x = asDouble(a), y = asDouble(b);
  const double q = div(x, y);
  if (fma(-q, y, x) != 0.0) flags |= fflags::NX;
  result = bitsOf(q);
  return true;
}

inline bool f64Sqrt(uint64_t a, uint64_t& result, uint32_t& flags) {
  const int ea = f64ExpField(a) - 1023;
  if ((a >> 63) != 0 || ea < -960 || ea > 1023 || !kHostHasFma || !hostIsDefaultRne()) return false;
  const double x = asDouble(a);
  const double s = sqrt(x);
  if (fma(-s, s, x) != 0.0) flags |= fflags::NX;
  result = bitsOf(s);
  return true;
}

// ---- binary32, RNE, computed in binary64 ----
// binary64 has more than 2*24+2 bits, so rounding an +,-,*,/,sqrt result
// first to binary64 and then to binary32 equals rounding it once to binary32.

inline bool f32Add(uint32_t a, uint32_t b, uint32_t& result, uint32_t& flags) {
  if (f32ExpField(a) >= 0xfe || f32ExpField(b) >= 0xfe || !hostIsDefaultRne()) return false;
  const double x = toDouble(asFloat(a)), y = toDouble(asFloat(b));
  const double s = add(x, y);
  const double yPart = sub(s, x);
  const double err = add(sub(x, sub(s, yPart)), sub(y, yPart));
  const float r = toFloat(s);
  if (err != 0.0 || toDouble(r) != s) flags |= fflags::NX;
  result = bitsOf(r);
  return true;
}

// True if |v| is at least the smallest binary32 normal and the rounded
// result r is finite: then neither underflow nor overflow can apply.
inline bool f32InNormalRange(double v, float r) {
  const uint64_t magnitude = bitsOf(v) & 0x7fffffffffffffffull;
  return magnitude >= 0x3810000000000000ull /* 2^-126 */ && f32ExpField(bitsOf(r)) != 0xff;
}

inline bool f32Mul(uint32_t a, uint32_t b, uint32_t& result, uint32_t& flags) {
  if (f32ExpField(a) == 0xff || f32ExpField(b) == 0xff || !hostIsDefaultRne()) return false;
  const double p = mul(toDouble(asFloat(a)), toDouble(asFloat(b)));  // exact: 48 bits
  const float r = toFloat(p);
  if (!f32InNormalRange(p, r)) return false;
  if (toDouble(r) != p) flags |= fflags::NX;
  result = bitsOf(r);
  return true;
}

inline bool f32Div(uint32_t a, uint32_t b, uint32_t& result, uint32_t& flags) {
  if (f32ExpField(a) == 0xff || f32ExpField(b) == 0xff || (b & 0x7fffffff) == 0) return false;
  if (!kHostHasFma || !hostIsDefaultRne()) return false;
  const double x = toDouble(asFloat(a)), y = toDouble(asFloat(b));
  const double q = div(x, y);
  const float r = toFloat(q);
  // Margin of one binade above 2^-126 so a quotient rounded up to 2^-126 is never missed.
  const uint64_t magnitude = bitsOf(q) & 0x7fffffffffffffffull;
  if (magnitude < 0x3820000000000000ull /* 2^-125 */ || f32ExpField(bitsOf(r)) == 0xff) return false;
  if (fma(-toDouble(r), y, x) != 0.0) flags |= fflags::NX;  // r*y has 48 bits: exact
  result = bitsOf(r);
  return true;
}

inline bool f32Sqrt(uint32_t a, uint32_t& result, uint32_t& flags) {
  if ((a >> 31) != 0 || (a & 0x7fffffff) == 0 || f32ExpField(a) == 0xff) return false;
  if (!kHostHasFma || !hostIsDefaultRne()) return false;
  const double x = toDouble(asFloat(a));
  const float r = toFloat(sqrt(x));
  const double rd = toDouble(r);
  if (fma(-rd, rd, x) != 0.0) flags |= fflags::NX;
  result = bitsOf(r);
  return true;
}

// ---- Operations scoped by an MXCSR write (RNE only) ----
// Finite operands only: then the host raises exactly the IEEE flags RISC-V
// wants (x86 also detects tininess after rounding); NaN/inf cases differ
// (e.g. inf*0 + qNaN) and go to software. Only RNE is served: rewriting
// MXCSR with a different rounding control measured 10-150 ns per operation
// on the target hosts, slower than the software path, while rewriting it
// with the value it already holds costs a few ns.

inline uint32_t flagsFromMxcsr(uint32_t csr) {
  uint32_t f = 0;
  if (csr & 0x01) f |= fflags::NV;  // IE
  if (csr & 0x04) f |= fflags::DZ;  // ZE
  if (csr & 0x08) f |= fflags::OF;  // OE
  if (csr & 0x10) f |= fflags::UF;  // UE
  if (csr & 0x20) f |= fflags::NX;  // PE
  return f;
}

// Plain arithmetic for the RNE cases the error-free paths decline
// (subnormal or extreme operands, zero divisors). The host's invalid results
// (0/0, sqrt of a negative) are its default NaN, replaced by the canonical NaN.
enum class ArithOp { Add, Sub, Mul, Div, Sqrt };

inline double arithVolatile(ArithOp op, double x, double y) {
  switch (op) {
    case ArithOp::Add: asm volatile("addsd %1, %0" : "+x"(x) : "x"(y)); break;
    case ArithOp::Sub: asm volatile("subsd %1, %0" : "+x"(x) : "x"(y)); break;
    case ArithOp::Mul: asm volatile("mulsd %1, %0" : "+x"(x) : "x"(y)); break;
    case ArithOp::Div: asm volatile("divsd %1, %0" : "+x"(x) : "x"(y)); break;
    case ArithOp::Sqrt: asm volatile("sqrtsd %0, %0" : "+x"(x)); break;
  }
  return x;
}
inline float arithVolatile(ArithOp op, float x, float y) {
  switch (op) {
    case ArithOp::Add: asm volatile("addss %1, %0" : "+x"(x) : "x"(y)); break;
    case ArithOp::Sub: asm volatile("subss %1, %0" : "+x"(x) : "x"(y)); break;
    case ArithOp::Mul: asm volatile("mulss %1, %0" : "+x"(x) : "x"(y)); break;
    case ArithOp::Div: asm volatile("divss %1, %0" : "+x"(x) : "x"(y)); break;
    case ArithOp::Sqrt: asm volatile("sqrtss %0, %0" : "+x"(x)); break;
  }
  return x;
}

// Runs `op` with MXCSR at its default control (RNE, all masked, no FTZ/DAZ)
// and fresh status flags; ORs the raised flags into `flags`.
template <class Op> inline auto runWithFreshMxcsr(uint32_t& flags, Op op) {
  const uint32_t saved = readMxcsr();
  writeMxcsr(kMxcsrDefaultControl);
  const auto r = op();
  const uint32_t after = readMxcsr();
  writeMxcsr(saved);
  flags |= flagsFromMxcsr(after);
  return r;
}

inline bool f64Arith(ArithOp op, uint64_t a, uint64_t b, uint64_t& result, uint32_t& flags) {
  if (f64ExpField(a) == 0x7ff || (op != ArithOp::Sqrt && f64ExpField(b) == 0x7ff)) return false;
  result = bitsOf(runWithFreshMxcsr(flags, [&] { return arithVolatile(op, asDouble(a), asDouble(b)); }));
  if ((result & 0x7fffffffffffffffull) > 0x7ff0000000000000ull) result = kCanonicalNaN64;
  return true;
}

inline bool f32Arith(ArithOp op, uint32_t a, uint32_t b, uint32_t& result, uint32_t& flags) {
  if (f32ExpField(a) == 0xff || (op != ArithOp::Sqrt && f32ExpField(b) == 0xff)) return false;
  result = bitsOf(runWithFreshMxcsr(flags, [&] { return arithVolatile(op, asFloat(a), asFloat(b)); }));
  if ((result & 0x7fffffffu) > 0x7f800000u) result = kCanonicalNaN32;
  return true;
}

inline bool f64MulAdd(uint64_t a, uint64_t b, uint64_t c, uint64_t& result, uint32_t& flags) {
  if (!kHostHasFma || f64ExpField(a) == 0x7ff || f64ExpField(b) == 0x7ff || f64ExpField(c) == 0x7ff) return false;
  result = bitsOf(runWithFreshMxcsr(flags, [&] {
    double acc = asDouble(c);
    asm volatile("vfmadd231sd %2, %1, %0" : "+x"(acc) : "x"(asDouble(a)), "x"(asDouble(b)));
    return acc;
  }));
  return true;
}

inline bool f32MulAdd(uint32_t a, uint32_t b, uint32_t c, uint32_t& result, uint32_t& flags) {
  if (!kHostHasFma || f32ExpField(a) == 0xff || f32ExpField(b) == 0xff || f32ExpField(c) == 0xff) return false;
  result = bitsOf(runWithFreshMxcsr(flags, [&] {
    float acc = asFloat(c);
    asm volatile("vfmadd231ss %2, %1, %0" : "+x"(acc) : "x"(asFloat(a)), "x"(asFloat(b)));
    return acc;
  }));
  return true;
}

// ---- binary32 <-> binary64 ----

// Widening is exact for every non-NaN value, so the host mode is irrelevant.
inline bool f32ToF64(uint32_t a, uint64_t& result) {
  if (f32ExpField(a) == 0xff && (a & 0x7fffff) != 0) return false;  // NaN: canonicalise in software
  result = bitsOf(toDouble(asFloat(a)));
  return true;
}

// Narrowing in RNE; results that could be tiny or overflow go to software.
inline bool f64ToF32(uint64_t a, uint32_t& result, uint32_t& flags) {
  const uint64_t magnitude = a & 0x7fffffffffffffffull;
  if (magnitude < 0x3820000000000000ull /* 2^-125 */ || f64ExpField(a) == 0x7ff || !hostIsDefaultRne()) return false;
  const double x = asDouble(a);
  const float r = toFloat(x);
  if (f32ExpField(bitsOf(r)) == 0xff) return false;
  if (toDouble(r) != x) flags |= fflags::NX;
  result = bitsOf(r);
  return true;
}

// ---- Float -> integer ----
// roundsd with an immediate mode (bit 3 suppresses the host inexact flag)
// gives the exactly rounded integral value; in-range values then convert
// exactly. Out-of-range, NaN, infinity and RMM go to software.

inline double roundIntegral(double x, RoundingMode rm) {
  switch (rm) {
    case RoundingMode::RDN: asm("roundsd $9, %0, %0" : "+x"(x)); break;
    case RoundingMode::RUP: asm("roundsd $10, %0, %0" : "+x"(x)); break;
    case RoundingMode::RTZ: asm("roundsd $11, %0, %0" : "+x"(x)); break;
    default: asm("roundsd $8, %0, %0" : "+x"(x)); break;
  }
  return x;
}

inline uint64_t signExtend32(uint64_t v) {
  return static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(static_cast<uint32_t>(v))));
}

// x must be finite. Writes the rd value (32-bit results sign-extended).
inline bool doubleToInteger(double x, bool isSigned, int width, RoundingMode rm, uint64_t& result, uint32_t& flags) {
  constexpr double kTwo31 = 2147483648.0, kTwo32 = 4294967296.0;
  constexpr double kTwo63 = 9223372036854775808.0, kTwo64 = 18446744073709551616.0;
  const double r = roundIntegral(x, rm);
  uint64_t v;
  if (isSigned) {
    const double limit = width == 32 ? kTwo31 : kTwo63;
    if (!(r >= -limit && r < limit)) return false;
    v = static_cast<uint64_t>(static_cast<int64_t>(r));
  } else {
    if (!(r >= 0.0 && r < (width == 32 ? kTwo32 : kTwo64))) return false;  // -0.0 passes: result 0
    v = r < kTwo63 ? static_cast<uint64_t>(static_cast<int64_t>(r))
                   : static_cast<uint64_t>(static_cast<int64_t>(r - kTwo63)) ^ (uint64_t(1) << 63);
  }
  result = width == 32 ? signExtend32(v) : v;
  if (r != x) flags |= fflags::NX;
  return true;
}

inline bool f64ToInteger(uint64_t a, bool isSigned, int width, RoundingMode rm, uint64_t& result, uint32_t& flags) {
  if (rm == RoundingMode::RMM || !kHostHasSse41 || f64ExpField(a) == 0x7ff) return false;
  return doubleToInteger(asDouble(a), isSigned, width, rm, result, flags);
}

inline bool f32ToInteger(uint32_t a, bool isSigned, int width, RoundingMode rm, uint64_t& result, uint32_t& flags) {
  if (rm == RoundingMode::RMM || !kHostHasSse41 || f32ExpField(a) == 0xff) return false;
  return doubleToInteger(toDouble(asFloat(a)), isSigned, width, rm, result, flags);
}

#endif  // STRATA_FP_HOST_FAST_PATH

}  // namespace strata::cpu::fp::hostfast
