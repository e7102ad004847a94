// Software implementation of the RISC-V F/D arithmetic declared in fp_ops.h.
//
// Every operation reduces to one exact or "round-to-odd" intermediate held in a
// 128-bit integer significand, followed by a single rounding step (roundPack)
// that implements all five rounding modes, overflow, and after-rounding
// tininess. Round-to-odd (jamming discarded bits into the lowest bit) keeps
// the final rounding correct as long as the intermediate carries at least two
// more bits than the destination, which every caller below guarantees.
#include "cpu/fp/fp_ops.h"

#include <algorithm>
#include <atomic>
#include <cmath>

#include "cpu/fp/host_fast_path.h"

namespace strata::cpu::fp {

#if STRATA_FP_HOST_FAST_PATH
namespace hostfast {
extern const bool kHostHasFma = [] {
  __builtin_cpu_init();
  return __builtin_cpu_supports("fma") != 0;
}();
extern const bool kHostHasSse41 = [] {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.1") != 0;
}();
}  // namespace hostfast
#endif

namespace {

std::atomic<bool> hostAccelerationOn{true};

// Whether to try the host shortcut for this call.
inline bool tryHost([[maybe_unused]] RoundingMode rm, bool rneOnly) {
#if STRATA_FP_HOST_FAST_PATH
  return (!rneOnly || rm == RoundingMode::RNE) && hostAccelerationOn.load(std::memory_order_relaxed);
#else
  (void)rneOnly;
  return false;
#endif
}

using u128 = unsigned __int128;

template <int ExpBits, int FracBits, typename BitsT>
struct Format {
  using Bits = BitsT;
  static constexpr int kFracBits = FracBits;
  static constexpr int kBias = (1 << (ExpBits - 1)) - 1;
  static constexpr int kEmin = 1 - kBias;  // unbiased exponent of the smallest normal
  static constexpr int kEmax = kBias;
  static constexpr Bits kSignMask = Bits(1) << (ExpBits + FracBits);
  static constexpr Bits kExpMask = ((Bits(1) << ExpBits) - 1) << FracBits;
  static constexpr Bits kFracMask = (Bits(1) << FracBits) - 1;
  static constexpr Bits kQuietBit = Bits(1) << (FracBits - 1);
  static constexpr Bits kInf = kExpMask;
  static constexpr Bits kMaxFinite = kExpMask - 1;
  static constexpr Bits kCanonicalNaN = kExpMask | kQuietBit;
};
using F32 = Format<8, 23, uint32_t>;
using F64 = Format<11, 52, uint64_t>;
static_assert(F32::kCanonicalNaN == kCanonicalNaN32);
static_assert(F64::kCanonicalNaN == kCanonicalNaN64);

template <class F> constexpr bool signOf(typename F::Bits x) { return (x & F::kSignMask) != 0; }
template <class F> constexpr typename F::Bits magnitudeOf(typename F::Bits x) { return x & ~F::kSignMask; }
template <class F> constexpr bool isNaN(typename F::Bits x) { return magnitudeOf<F>(x) > F::kInf; }
template <class F> constexpr bool isSignalingNaN(typename F::Bits x) {
  return isNaN<F>(x) && (x & F::kQuietBit) == 0;
}
template <class F> constexpr bool isInf(typename F::Bits x) { return magnitudeOf<F>(x) == F::kInf; }
template <class F> constexpr bool isZero(typename F::Bits x) { return magnitudeOf<F>(x) == 0; }
template <class F> constexpr typename F::Bits signBit(bool negative) {
  return negative ? F::kSignMask : typename F::Bits(0);
}

int msbIndex(u128 v) {  // v != 0
  const uint64_t hi = static_cast<uint64_t>(v >> 64);
  if (hi != 0) return 127 - __builtin_clzll(hi);
  return 63 - __builtin_clzll(static_cast<uint64_t>(v));
}

// A finite nonzero value sig * 2^exp with sig normalised to [2^M, 2^(M+1)).
struct Unpacked {
  bool sign;
  int exp;
  uint64_t sig;
};

template <class F> Unpacked unpack(typename F::Bits x) {
  const int expField = static_cast<int>((x & F::kExpMask) >> F::kFracBits);
  uint64_t sig = x & F::kFracMask;
  int exp;
  if (expField == 0) {  // subnormal: normalise so all callers see the same shape
    const int shift = F::kFracBits - msbIndex(sig);
    sig <<= shift;
    exp = F::kEmin - F::kFracBits - shift;
  } else {
    sig |= uint64_t(1) << F::kFracBits;
    exp = expField - F::kBias - F::kFracBits;
  }
  return {signOf<F>(x), exp, sig};
}

// sig >> shift, with the first discarded bit (round) and whether any lower
// discarded bit is set (sticky). shift >= 1; may exceed 127.
struct ShiftedOut {
  u128 kept;
  bool round;
  bool sticky;
};
ShiftedOut shiftRightForRounding(u128 sig, int shift) {
  if (shift > 128) return {0, false, sig != 0};
  if (shift == 128) return {0, (sig >> 127) != 0, (sig & ~(u128(1) << 127)) != 0};
  const u128 lowMask = (u128(1) << (shift - 1)) - 1;
  return {sig >> shift, ((sig >> (shift - 1)) & 1) != 0, (sig & lowMask) != 0};
}

bool roundsUp(RoundingMode rm, bool negative, bool keptOdd, bool round, bool sticky) {
  switch (rm) {
    case RoundingMode::RNE: return round && (sticky || keptOdd);
    case RoundingMode::RTZ: return false;
    case RoundingMode::RDN: return negative && (round || sticky);
    case RoundingMode::RUP: return !negative && (round || sticky);
    case RoundingMode::RMM: return round;
  }
  return round && (sticky || keptOdd);  // unreachable for valid modes; behave as RNE
}

template <class F> typename F::Bits overflowResult(bool negative, RoundingMode rm, uint32_t& flags) {
  flags |= fflags::OF | fflags::NX;
  bool toInf;
  switch (rm) {
    case RoundingMode::RTZ: toInf = false; break;
    case RoundingMode::RDN: toInf = negative; break;
    case RoundingMode::RUP: toInf = !negative; break;
    default: toInf = true; break;
  }
  return signBit<F>(negative) | (toInf ? F::kInf : F::kMaxFinite);
}

// Rounds the value (-1)^negative * sig * 2^exp (sig != 0; exact, or
// round-to-odd with >= 2 spare bits) into format F, raising NX/UF/OF.
template <class F>
typename F::Bits roundPack(bool negative, int exp, u128 sig, RoundingMode rm, uint32_t& flags) {
  constexpr int M = F::kFracBits;
  const int msb = msbIndex(sig);
  const int leadExp = exp + msb;  // exponent of the leading one bit
  if (leadExp > F::kEmax) return overflowResult<F>(negative, rm, flags);

  const int quantumExp = std::max(leadExp, F::kEmin) - M;
  const int shift = quantumExp - exp;
  u128 kept;
  bool inexact = false;
  if (shift <= 0) {
    kept = sig << -shift;
  } else {
    const ShiftedOut s = shiftRightForRounding(sig, shift);
    inexact = s.round || s.sticky;
    kept = s.kept + (roundsUp(rm, negative, (s.kept & 1) != 0, s.round, s.sticky) ? 1 : 0);
  }

  if (inexact) {
    flags |= fflags::NX;
    // Tininess after rounding: the result is tiny if rounding to M+1 bits
    // with an unbounded exponent range would stay below 2^Emin.
    bool tiny = leadExp < F::kEmin;
    if (leadExp == F::kEmin - 1) {
      const int unboundedShift = msb - M;
      if (unboundedShift > 0) {
        const ShiftedOut u = shiftRightForRounding(sig, unboundedShift);
        const u128 rounded = u.kept + (roundsUp(rm, negative, (u.kept & 1) != 0, u.round, u.sticky) ? 1 : 0);
        if (rounded == (u128(1) << (M + 1))) tiny = false;
      }
    }
    if (tiny) flags |= fflags::UF;
  }

  // kept includes the hidden bit, so adding it to (biasedExp-1) << M also
  // carries correctly into the exponent field (subnormal -> normal, and a
  // rounding carry into the next binade).
  const int biasedExp = quantumExp + M + F::kBias;  // >= 1
  const u128 packed = (u128(biasedExp - 1) << M) + kept;
  if (packed >= F::kInf) return overflowResult<F>(negative, rm, flags);
  return signBit<F>(negative) | static_cast<typename F::Bits>(packed);
}

template <class F> typename F::Bits zeroResult(bool negative) { return signBit<F>(negative); }

// Sum of two exact nonzero values x*2^ex and y*2^ey (x, y < 2^120), rounded
// once. The smaller-magnitude operand is aligned to the larger one's scale,
// jamming anything that falls off into the lowest bit.
template <class F>
typename F::Bits addExact(bool xNeg, int ex, u128 x, bool yNeg, int ey, u128 y, RoundingMode rm,
                          uint32_t& flags) {
  if (ex + msbIndex(x) < ey + msbIndex(y)) {
    std::swap(xNeg, yNeg);
    std::swap(ex, ey);
    std::swap(x, y);
  }
  const int normShift = 125 - msbIndex(x);
  x <<= normShift;
  ex -= normShift;
  const int d = ey - ex;
  if (d >= 0) {
    y <<= d;  // y's top is not above x's, so this stays below 2^126
  } else if (-d >= 128) {
    y = 1;
  } else {
    const u128 lost = y & ((u128(1) << -d) - 1);
    y = (y >> -d) | (lost != 0 ? 1 : 0);
  }
  if (xNeg == yNeg) return roundPack<F>(xNeg, ex, x + y, rm, flags);
  if (x == y) return zeroResult<F>(rm == RoundingMode::RDN);
  if (x > y) return roundPack<F>(xNeg, ex, x - y, rm, flags);
  return roundPack<F>(yNeg, ex, y - x, rm, flags);
}

template <class F> typename F::Bits invalidNaN(uint32_t& flags) {
  flags |= fflags::NV;
  return F::kCanonicalNaN;
}

template <class F>
typename F::Bits addImpl(typename F::Bits a, typename F::Bits b, bool negateB, RoundingMode rm, uint32_t& flags) {
  using Bits = typename F::Bits;
  if (isNaN<F>(a) || isNaN<F>(b)) {
    if (isSignalingNaN<F>(a) || isSignalingNaN<F>(b)) flags |= fflags::NV;
    return F::kCanonicalNaN;
  }
  if (negateB) b ^= F::kSignMask;
  if (isInf<F>(a)) {
    if (isInf<F>(b) && signOf<F>(a) != signOf<F>(b)) return invalidNaN<F>(flags);
    return a;
  }
  if (isInf<F>(b)) return b;
  if (isZero<F>(a)) {
    if (!isZero<F>(b)) return b;
    if (signOf<F>(a) == signOf<F>(b)) return a;
    return zeroResult<F>(rm == RoundingMode::RDN);
  }
  if (isZero<F>(b)) return a;
  const Unpacked ua = unpack<F>(a);
  const Unpacked ub = unpack<F>(b);
  return static_cast<Bits>(addExact<F>(ua.sign, ua.exp, ua.sig, ub.sign, ub.exp, ub.sig, rm, flags));
}

template <class F>
typename F::Bits mulImpl(typename F::Bits a, typename F::Bits b, RoundingMode rm, uint32_t& flags) {
  if (isNaN<F>(a) || isNaN<F>(b)) {
    if (isSignalingNaN<F>(a) || isSignalingNaN<F>(b)) flags |= fflags::NV;
    return F::kCanonicalNaN;
  }
  const bool negative = signOf<F>(a) != signOf<F>(b);
  if (isInf<F>(a) || isInf<F>(b)) {
    if (isZero<F>(a) || isZero<F>(b)) return invalidNaN<F>(flags);
    return signBit<F>(negative) | F::kInf;
  }
  if (isZero<F>(a) || isZero<F>(b)) return zeroResult<F>(negative);
  const Unpacked ua = unpack<F>(a);
  const Unpacked ub = unpack<F>(b);
  return roundPack<F>(negative, ua.exp + ub.exp, u128(ua.sig) * ub.sig, rm, flags);
}

template <class F>
typename F::Bits divImpl(typename F::Bits a, typename F::Bits b, RoundingMode rm, uint32_t& flags) {
  if (isNaN<F>(a) || isNaN<F>(b)) {
    if (isSignalingNaN<F>(a) || isSignalingNaN<F>(b)) flags |= fflags::NV;
    return F::kCanonicalNaN;
  }
  const bool negative = signOf<F>(a) != signOf<F>(b);
  if (isInf<F>(a)) {
    if (isInf<F>(b)) return invalidNaN<F>(flags);
    return signBit<F>(negative) | F::kInf;
  }
  if (isInf<F>(b)) return zeroResult<F>(negative);
  if (isZero<F>(b)) {
    if (isZero<F>(a)) return invalidNaN<F>(flags);
    flags |= fflags::DZ;
    return signBit<F>(negative) | F::kInf;
  }
  if (isZero<F>(a)) return zeroResult<F>(negative);
  const Unpacked ua = unpack<F>(a);
  const Unpacked ub = unpack<F>(b);
  // Scale the dividend so the quotient has far more than M+3 bits.
  constexpr int kScale = 126 - F::kFracBits;
  const u128 dividend = u128(ua.sig) << kScale;
  u128 quotient = dividend / ub.sig;
  if (dividend % ub.sig != 0) quotient |= 1;
  return roundPack<F>(negative, ua.exp - ub.exp - kScale, quotient, rm, flags);
}

// floor(sqrt(n)) for n < 2^128.
uint64_t integerSqrt(u128 n) {
  const long double estimate = std::sqrt(static_cast<long double>(n));
  uint64_t r = estimate >= 18446744073709551615.0L ? UINT64_MAX : static_cast<uint64_t>(estimate);
  while (u128(r) * r > n) --r;
  while (r != UINT64_MAX && u128(r + 1) * (r + 1) <= n) ++r;
  return r;
}

template <class F> typename F::Bits sqrtImpl(typename F::Bits a, RoundingMode rm, uint32_t& flags) {
  if (isNaN<F>(a)) {
    if (isSignalingNaN<F>(a)) flags |= fflags::NV;
    return F::kCanonicalNaN;
  }
  if (isZero<F>(a)) return a;  // sqrt(-0) = -0
  if (signOf<F>(a)) return invalidNaN<F>(flags);
  if (isInf<F>(a)) return a;
  Unpacked ua = unpack<F>(a);
  u128 sig = ua.sig;
  if (ua.exp & 1) {  // make the exponent even so it halves exactly
    sig <<= 1;
    ua.exp -= 1;
  }
  constexpr int kScale = (126 - F::kFracBits) & ~1;  // even, keeps sig << kScale < 2^128
  const u128 n = sig << kScale;
  const uint64_t root = integerSqrt(n);
  u128 result = root;
  if (u128(root) * root != n) result |= 1;
  return roundPack<F>(false, (ua.exp - kScale) / 2, result, rm, flags);
}

// Computes (negateProduct ? -(a*b) : a*b) + (negateAddend ? -c : c) with one rounding.
template <class F>
typename F::Bits fmaImpl(typename F::Bits a, typename F::Bits b, typename F::Bits c, bool negateProduct,
                         bool negateAddend, RoundingMode rm, uint32_t& flags) {
  const bool infTimesZero = (isInf<F>(a) && isZero<F>(b)) || (isZero<F>(a) && isInf<F>(b));
  if (isNaN<F>(a) || isNaN<F>(b) || isNaN<F>(c)) {
    if (isSignalingNaN<F>(a) || isSignalingNaN<F>(b) || isSignalingNaN<F>(c) || infTimesZero) {
      flags |= fflags::NV;
    }
    return F::kCanonicalNaN;
  }
  if (negateAddend) c ^= F::kSignMask;
  const bool productNeg = (signOf<F>(a) != signOf<F>(b)) != negateProduct;
  const bool addendNeg = signOf<F>(c);
  if (infTimesZero) return invalidNaN<F>(flags);
  if (isInf<F>(a) || isInf<F>(b)) {
    if (isInf<F>(c) && addendNeg != productNeg) return invalidNaN<F>(flags);
    return signBit<F>(productNeg) | F::kInf;
  }
  if (isInf<F>(c)) return c;
  if (isZero<F>(a) || isZero<F>(b)) {
    if (!isZero<F>(c)) return c;
    if (productNeg == addendNeg) return zeroResult<F>(productNeg);
    return zeroResult<F>(rm == RoundingMode::RDN);
  }
  const Unpacked ua = unpack<F>(a);
  const Unpacked ub = unpack<F>(b);
  const u128 product = u128(ua.sig) * ub.sig;
  if (isZero<F>(c)) return roundPack<F>(productNeg, ua.exp + ub.exp, product, rm, flags);
  const Unpacked uc = unpack<F>(c);
  return addExact<F>(productNeg, ua.exp + ub.exp, product, addendNeg, uc.exp, uc.sig, rm, flags);
}

// Strict "a < b" for non-NaN values with -0 < +0.
template <class F> bool totalLess(typename F::Bits a, typename F::Bits b) {
  const bool aNeg = signOf<F>(a);
  const bool bNeg = signOf<F>(b);
  if (aNeg != bNeg) return aNeg;
  return aNeg ? a > b : a < b;
}

template <class F> typename F::Bits minMaxImpl(typename F::Bits a, typename F::Bits b, bool wantMax, uint32_t& flags) {
  if (isSignalingNaN<F>(a) || isSignalingNaN<F>(b)) flags |= fflags::NV;
  const bool aNaN = isNaN<F>(a);
  const bool bNaN = isNaN<F>(b);
  if (aNaN && bNaN) return F::kCanonicalNaN;
  if (aNaN) return b;
  if (bNaN) return a;
  const bool aLess = totalLess<F>(a, b);
  return (aLess != wantMax) ? a : b;
}

template <class F> bool eqImpl(typename F::Bits a, typename F::Bits b, uint32_t& flags) {
  if (isNaN<F>(a) || isNaN<F>(b)) {
    if (isSignalingNaN<F>(a) || isSignalingNaN<F>(b)) flags |= fflags::NV;
    return false;
  }
  return a == b || (isZero<F>(a) && isZero<F>(b));
}

// IEEE "<" (orLess=false) or "<=" (orLess=true); signaling on any NaN.
template <class F> bool ltLeImpl(typename F::Bits a, typename F::Bits b, bool orEqual, uint32_t& flags) {
  if (isNaN<F>(a) || isNaN<F>(b)) {
    flags |= fflags::NV;
    return false;
  }
  if (isZero<F>(a) && isZero<F>(b)) return orEqual;
  if (a == b) return orEqual;
  return totalLess<F>(a, b);
}

template <class F> uint32_t classifyImpl(typename F::Bits a) {
  const bool negative = signOf<F>(a);
  const typename F::Bits mag = magnitudeOf<F>(a);
  if (isNaN<F>(a)) return (a & F::kQuietBit) ? fclass::QuietNaN : fclass::SignalingNaN;
  if (mag == F::kInf) return negative ? fclass::NegInf : fclass::PosInf;
  if (mag == 0) return negative ? fclass::NegZero : fclass::PosZero;
  if ((mag & F::kExpMask) == 0) return negative ? fclass::NegSubnormal : fclass::PosSubnormal;
  return negative ? fclass::NegNormal : fclass::PosNormal;
}

// Narrowing or widening between formats From and To.
template <class From, class To>
typename To::Bits convertFloat(typename From::Bits a, RoundingMode rm, uint32_t& flags) {
  if (isNaN<From>(a)) {
    if (isSignalingNaN<From>(a)) flags |= fflags::NV;
    return To::kCanonicalNaN;
  }
  const bool negative = signOf<From>(a);
  if (isInf<From>(a)) return signBit<To>(negative) | To::kInf;
  if (isZero<From>(a)) return zeroResult<To>(negative);
  const Unpacked ua = unpack<From>(a);
  return roundPack<To>(negative, ua.exp, ua.sig, rm, flags);
}

// Float to a `width`-bit integer, saturating per the spec's fcvt table.
// Returns the rd value (32-bit results sign-extended).
template <class F>
uint64_t toInteger(typename F::Bits a, bool isSigned, int width, RoundingMode rm, uint32_t& flags) {
  const u128 unsignedMax = (u128(1) << width) - 1;
  const u128 signedMax = (u128(1) << (width - 1)) - 1;
  const u128 maxPositive = isSigned ? signedMax : unsignedMax;
  const u128 minNegativeMagnitude = isSigned ? signedMax + 1 : 0;
  auto toRegister = [width](u128 magnitude, bool negative) -> uint64_t {
    uint64_t v = static_cast<uint64_t>(magnitude);
    if (negative) v = ~v + 1;
    if (width == 32) v = static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(static_cast<uint32_t>(v))));
    return v;
  };
  auto invalid = [&](bool negative) -> uint64_t {
    flags |= fflags::NV;
    return negative ? toRegister(minNegativeMagnitude, true) : toRegister(maxPositive, false);
  };

  if (isNaN<F>(a)) return invalid(false);
  const bool negative = signOf<F>(a);
  if (isInf<F>(a)) return invalid(negative);
  if (isZero<F>(a)) return 0;

  const Unpacked ua = unpack<F>(a);
  u128 magnitude;
  bool inexact = false;
  if (ua.exp >= 0) {
    if (ua.exp + F::kFracBits >= width + 1) return invalid(negative);  // at least 2^width
    magnitude = u128(ua.sig) << ua.exp;
  } else {
    const ShiftedOut s = shiftRightForRounding(ua.sig, -ua.exp);
    inexact = s.round || s.sticky;
    magnitude = s.kept + (roundsUp(rm, negative, (s.kept & 1) != 0, s.round, s.sticky) ? 1 : 0);
  }
  if (negative ? magnitude > minNegativeMagnitude : magnitude > maxPositive) return invalid(negative);
  if (inexact) flags |= fflags::NX;
  return toRegister(magnitude, negative);
}

template <class F> typename F::Bits fromInteger(bool negative, uint64_t magnitude, RoundingMode rm, uint32_t& flags) {
  using Bits = typename F::Bits;
  constexpr int M = F::kFracBits;
  if (magnitude == 0) return 0;
  // Integers with at most M+1 significant bits convert exactly: pack directly.
  const int msb = 63 - __builtin_clzll(magnitude);
  if (msb - __builtin_ctzll(magnitude) <= M) {
    const uint64_t significand = msb <= M ? magnitude << (M - msb) : magnitude >> (msb - M);
    return signBit<F>(negative) | (static_cast<Bits>(msb + F::kBias) << M) |
           static_cast<Bits>(significand & F::kFracMask);
  }
  return roundPack<F>(negative, 0, magnitude, rm, flags);
}

uint64_t magnitudeOfSigned(int64_t v) {
  return v < 0 ? ~static_cast<uint64_t>(v) + 1 : static_cast<uint64_t>(v);
}

}  // namespace

void setHostAcceleration(bool enabled) { hostAccelerationOn.store(enabled, std::memory_order_relaxed); }
bool hostAccelerationEnabled() { return hostAccelerationOn.load(std::memory_order_relaxed); }

// Each entry point tries the host shortcut first (see host_fast_path.h); the
// shortcut declines every case it cannot do bit-exactly. The arithmetic
// shortcuts serve round-to-nearest-even only.
#if STRATA_FP_HOST_FAST_PATH
#define STRATA_FP_TRY_HOST_RNE(CALL)              \
  do {                                            \
    if (tryHost(rm, true)) {                      \
      decltype(a) hostResult;                     \
      if (CALL) return hostResult;                \
    }                                             \
  } while (0)
#else
#define STRATA_FP_TRY_HOST_RNE(CALL) \
  do {                               \
  } while (0)
#endif

namespace {

#if STRATA_FP_HOST_FAST_PATH
// The host shortcuts of one format, so one entry template serves both widths.
template <class F> struct HostOps;
template <> struct HostOps<F32> {
  static constexpr auto add = hostfast::f32Add;
  static constexpr auto mul = hostfast::f32Mul;
  static constexpr auto div = hostfast::f32Div;
  static constexpr auto sqrt = hostfast::f32Sqrt;
  static constexpr auto arith = hostfast::f32Arith;
  static constexpr auto mulAdd = hostfast::f32MulAdd;
  static constexpr auto toInteger = hostfast::f32ToInteger;
};
template <> struct HostOps<F64> {
  static constexpr auto add = hostfast::f64Add;
  static constexpr auto mul = hostfast::f64Mul;
  static constexpr auto div = hostfast::f64Div;
  static constexpr auto sqrt = hostfast::f64Sqrt;
  static constexpr auto arith = hostfast::f64Arith;
  static constexpr auto mulAdd = hostfast::f64MulAdd;
  static constexpr auto toInteger = hostfast::f64ToInteger;
};
#endif

// Arithmetic tries the exact error-free host path, then the MXCSR-scoped one
// (for the subnormal and extreme operands the first declines), then software.
// The sign flips are template arguments so each entry point keeps constant
// operands, as a hand-written one would.
template <class F, bool Subtract>
typename F::Bits addEntry(typename F::Bits a, typename F::Bits b, RoundingMode rm, uint32_t& flags) {
  STRATA_FP_TRY_HOST_RNE(HostOps<F>::add(a, Subtract ? b ^ F::kSignMask : b, hostResult, flags));
  STRATA_FP_TRY_HOST_RNE(HostOps<F>::arith(Subtract ? hostfast::ArithOp::Sub : hostfast::ArithOp::Add, a, b,
                                           hostResult, flags));
  return addImpl<F>(a, b, Subtract, rm, flags);
}
template <class F> typename F::Bits mulEntry(typename F::Bits a, typename F::Bits b, RoundingMode rm, uint32_t& flags) {
  STRATA_FP_TRY_HOST_RNE(HostOps<F>::mul(a, b, hostResult, flags));
  STRATA_FP_TRY_HOST_RNE(HostOps<F>::arith(hostfast::ArithOp::Mul, a, b, hostResult, flags));
  return mulImpl<F>(a, b, rm, flags);
}
template <class F> typename F::Bits divEntry(typename F::Bits a, typename F::Bits b, RoundingMode rm, uint32_t& flags) {
  STRATA_FP_TRY_HOST_RNE(HostOps<F>::div(a, b, hostResult, flags));
  STRATA_FP_TRY_HOST_RNE(HostOps<F>::arith(hostfast::ArithOp::Div, a, b, hostResult, flags));
  return divImpl<F>(a, b, rm, flags);
}
template <class F> typename F::Bits sqrtEntry(typename F::Bits a, RoundingMode rm, uint32_t& flags) {
  STRATA_FP_TRY_HOST_RNE(HostOps<F>::sqrt(a, hostResult, flags));
  STRATA_FP_TRY_HOST_RNE(HostOps<F>::arith(hostfast::ArithOp::Sqrt, a, a, hostResult, flags));
  return sqrtImpl<F>(a, rm, flags);
}

// The four fused forms are sign flips of operands of one fused a*b + c.
template <class F, bool NegateProduct, bool NegateAddend>
typename F::Bits fmaEntry(typename F::Bits a, typename F::Bits b, typename F::Bits c, RoundingMode rm,
                          uint32_t& flags) {
  STRATA_FP_TRY_HOST_RNE(HostOps<F>::mulAdd(NegateProduct ? a ^ F::kSignMask : a, b,
                                            NegateAddend ? c ^ F::kSignMask : c, hostResult, flags));
  return fmaImpl<F>(a, b, c, NegateProduct, NegateAddend, rm, flags);
}

}  // namespace

// ---- Arithmetic ----
uint32_t f32Add(uint32_t a, uint32_t b, RoundingMode rm, uint32_t& flags) { return addEntry<F32, false>(a, b, rm, flags); }
uint32_t f32Sub(uint32_t a, uint32_t b, RoundingMode rm, uint32_t& flags) { return addEntry<F32, true>(a, b, rm, flags); }
uint32_t f32Mul(uint32_t a, uint32_t b, RoundingMode rm, uint32_t& flags) { return mulEntry<F32>(a, b, rm, flags); }
uint32_t f32Div(uint32_t a, uint32_t b, RoundingMode rm, uint32_t& flags) { return divEntry<F32>(a, b, rm, flags); }
uint32_t f32Sqrt(uint32_t a, RoundingMode rm, uint32_t& flags) { return sqrtEntry<F32>(a, rm, flags); }
uint64_t f64Add(uint64_t a, uint64_t b, RoundingMode rm, uint32_t& flags) { return addEntry<F64, false>(a, b, rm, flags); }
uint64_t f64Sub(uint64_t a, uint64_t b, RoundingMode rm, uint32_t& flags) { return addEntry<F64, true>(a, b, rm, flags); }
uint64_t f64Mul(uint64_t a, uint64_t b, RoundingMode rm, uint32_t& flags) { return mulEntry<F64>(a, b, rm, flags); }
uint64_t f64Div(uint64_t a, uint64_t b, RoundingMode rm, uint32_t& flags) { return divEntry<F64>(a, b, rm, flags); }
uint64_t f64Sqrt(uint64_t a, RoundingMode rm, uint32_t& flags) { return sqrtEntry<F64>(a, rm, flags); }

// ---- Fused multiply-add ----
uint32_t f32MulAdd(uint32_t a, uint32_t b, uint32_t c, RoundingMode rm, uint32_t& flags) {
  return fmaEntry<F32, false, false>(a, b, c, rm, flags);
}
uint32_t f32MulSub(uint32_t a, uint32_t b, uint32_t c, RoundingMode rm, uint32_t& flags) {
  return fmaEntry<F32, false, true>(a, b, c, rm, flags);
}
uint32_t f32NegMulSub(uint32_t a, uint32_t b, uint32_t c, RoundingMode rm, uint32_t& flags) {
  return fmaEntry<F32, true, false>(a, b, c, rm, flags);
}
uint32_t f32NegMulAdd(uint32_t a, uint32_t b, uint32_t c, RoundingMode rm, uint32_t& flags) {
  return fmaEntry<F32, true, true>(a, b, c, rm, flags);
}
uint64_t f64MulAdd(uint64_t a, uint64_t b, uint64_t c, RoundingMode rm, uint32_t& flags) {
  return fmaEntry<F64, false, false>(a, b, c, rm, flags);
}
uint64_t f64MulSub(uint64_t a, uint64_t b, uint64_t c, RoundingMode rm, uint32_t& flags) {
  return fmaEntry<F64, false, true>(a, b, c, rm, flags);
}
uint64_t f64NegMulSub(uint64_t a, uint64_t b, uint64_t c, RoundingMode rm, uint32_t& flags) {
  return fmaEntry<F64, true, false>(a, b, c, rm, flags);
}
uint64_t f64NegMulAdd(uint64_t a, uint64_t b, uint64_t c, RoundingMode rm, uint32_t& flags) {
  return fmaEntry<F64, true, true>(a, b, c, rm, flags);
}

// ---- Min / max ----
uint32_t f32Min(uint32_t a, uint32_t b, uint32_t& flags) { return minMaxImpl<F32>(a, b, false, flags); }
uint32_t f32Max(uint32_t a, uint32_t b, uint32_t& flags) { return minMaxImpl<F32>(a, b, true, flags); }
uint64_t f64Min(uint64_t a, uint64_t b, uint32_t& flags) { return minMaxImpl<F64>(a, b, false, flags); }
uint64_t f64Max(uint64_t a, uint64_t b, uint32_t& flags) { return minMaxImpl<F64>(a, b, true, flags); }

// ---- Comparisons ----
bool f32Eq(uint32_t a, uint32_t b, uint32_t& flags) { return eqImpl<F32>(a, b, flags); }
bool f32Lt(uint32_t a, uint32_t b, uint32_t& flags) { return ltLeImpl<F32>(a, b, false, flags); }
bool f32Le(uint32_t a, uint32_t b, uint32_t& flags) { return ltLeImpl<F32>(a, b, true, flags); }
bool f64Eq(uint64_t a, uint64_t b, uint32_t& flags) { return eqImpl<F64>(a, b, flags); }
bool f64Lt(uint64_t a, uint64_t b, uint32_t& flags) { return ltLeImpl<F64>(a, b, false, flags); }
bool f64Le(uint64_t a, uint64_t b, uint32_t& flags) { return ltLeImpl<F64>(a, b, true, flags); }

// ---- Classify ----
uint32_t f32Classify(uint32_t a) { return classifyImpl<F32>(a); }
uint32_t f64Classify(uint64_t a) { return classifyImpl<F64>(a); }

// ---- Float <-> float ----
uint64_t f32ToF64(uint32_t a, uint32_t& flags) {
#if STRATA_FP_HOST_FAST_PATH
  uint64_t hostResult;
  if (tryHost(RoundingMode::RNE, false) && hostfast::f32ToF64(a, hostResult)) return hostResult;
#endif
  return convertFloat<F32, F64>(a, RoundingMode::RNE, flags);
}
uint32_t f64ToF32(uint64_t a, RoundingMode rm, uint32_t& flags) {
#if STRATA_FP_HOST_FAST_PATH
  uint32_t hostResult;
  if (tryHost(rm, true) && hostfast::f64ToF32(a, hostResult, flags)) return hostResult;
#endif
  return convertFloat<F64, F32>(a, rm, flags);
}

// ---- Float -> integer ----
namespace {
template <class F>
uint64_t toIntegerEntry(typename F::Bits a, bool isSigned, int width, RoundingMode rm, uint32_t& flags) {
#if STRATA_FP_HOST_FAST_PATH
  if (tryHost(rm, false)) {
    uint64_t hostResult;
    if (HostOps<F>::toInteger(a, isSigned, width, rm, hostResult, flags)) return hostResult;
  }
#endif
  return toInteger<F>(a, isSigned, width, rm, flags);
}
}  // namespace

uint64_t f32ToI32(uint32_t a, RoundingMode rm, uint32_t& flags) { return toIntegerEntry<F32>(a, true, 32, rm, flags); }
uint64_t f32ToU32(uint32_t a, RoundingMode rm, uint32_t& flags) { return toIntegerEntry<F32>(a, false, 32, rm, flags); }
uint64_t f32ToI64(uint32_t a, RoundingMode rm, uint32_t& flags) { return toIntegerEntry<F32>(a, true, 64, rm, flags); }
uint64_t f32ToU64(uint32_t a, RoundingMode rm, uint32_t& flags) { return toIntegerEntry<F32>(a, false, 64, rm, flags); }
uint64_t f64ToI32(uint64_t a, RoundingMode rm, uint32_t& flags) { return toIntegerEntry<F64>(a, true, 32, rm, flags); }
uint64_t f64ToU32(uint64_t a, RoundingMode rm, uint32_t& flags) { return toIntegerEntry<F64>(a, false, 32, rm, flags); }
uint64_t f64ToI64(uint64_t a, RoundingMode rm, uint32_t& flags) { return toIntegerEntry<F64>(a, true, 64, rm, flags); }
uint64_t f64ToU64(uint64_t a, RoundingMode rm, uint32_t& flags) { return toIntegerEntry<F64>(a, false, 64, rm, flags); }

// ---- Integer -> float ----
uint32_t i32ToF32(int32_t a, RoundingMode rm, uint32_t& flags) {
  return fromInteger<F32>(a < 0, magnitudeOfSigned(a), rm, flags);
}
uint32_t u32ToF32(uint32_t a, RoundingMode rm, uint32_t& flags) { return fromInteger<F32>(false, a, rm, flags); }
uint32_t i64ToF32(int64_t a, RoundingMode rm, uint32_t& flags) {
  return fromInteger<F32>(a < 0, magnitudeOfSigned(a), rm, flags);
}
uint32_t u64ToF32(uint64_t a, RoundingMode rm, uint32_t& flags) { return fromInteger<F32>(false, a, rm, flags); }
uint64_t i32ToF64(int32_t a, RoundingMode rm, uint32_t& flags) {
  return fromInteger<F64>(a < 0, magnitudeOfSigned(a), rm, flags);
}
uint64_t u32ToF64(uint32_t a, RoundingMode rm, uint32_t& flags) { return fromInteger<F64>(false, a, rm, flags); }
uint64_t i64ToF64(int64_t a, RoundingMode rm, uint32_t& flags) {
  return fromInteger<F64>(a < 0, magnitudeOfSigned(a), rm, flags);
}
uint64_t u64ToF64(uint64_t a, RoundingMode rm, uint32_t& flags) { return fromInteger<F64>(false, a, rm, flags); }

}  // namespace strata::cpu::fp
