// Hand-computed cases for the fused multiply-add family: single rounding,
// sign conventions of fmsub/fnmsub/fnmadd, signed zeros, and the invalid cases
// (inf*0 raises NV even with a quiet-NaN addend).
#include "fp_test_util.h"

namespace strata::cpu::fp::test {
namespace {

FP_TEST_SUITE(FpFma);

TEST_P(FpFma, SignConventionsOfTheFourForms) {
  const uint32_t two = kF32Two, three = 0x40400000, one = kF32One;
  EXPECT_FP(f32MulAdd(two, three, one, RNE, flags), 0x40e00000, 0);     //  2*3 + 1 =  7
  EXPECT_FP(f32MulSub(two, three, one, RNE, flags), 0x40a00000, 0);     //  2*3 - 1 =  5
  EXPECT_FP(f32NegMulSub(two, three, one, RNE, flags), 0xc0a00000, 0);  // -2*3 + 1 = -5
  EXPECT_FP(f32NegMulAdd(two, three, one, RNE, flags), 0xc0e00000, 0);  // -2*3 - 1 = -7
  const uint64_t two64 = kF64Two, three64 = 0x4008000000000000, one64 = kF64One;
  EXPECT_FP(f64MulAdd(two64, three64, one64, RNE, flags), 0x401c000000000000, 0);
  EXPECT_FP(f64MulSub(two64, three64, one64, RNE, flags), 0x4014000000000000, 0);
  EXPECT_FP(f64NegMulSub(two64, three64, one64, RNE, flags), 0xc014000000000000, 0);
  EXPECT_FP(f64NegMulAdd(two64, three64, one64, RNE, flags), 0xc01c000000000000, 0);
}

TEST_P(FpFma, SingleRoundingDiffersFromMulThenAdd32) {
  // (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24. Rounding the product first (RNE, a tie
  // to even) loses 2^-24, so mul-then-sub gives 0; fma keeps it exactly.
  const uint32_t a = 0x3f800800;              // 1 + 2^-12
  const uint32_t minusC = 0xbf801000;         // -(1 + 2^-11)
  uint32_t unfusedFlags = 0;
  const uint32_t product = f32Mul(a, a, RNE, unfusedFlags);
  EXPECT_EQ(f32Add(product, minusC, RNE, unfusedFlags), kF32PosZero);
  EXPECT_EQ(unfusedFlags, NX);
  EXPECT_FP(f32MulAdd(a, a, minusC, RNE, flags), 0x33800000, 0);     // 2^-24, exact
  EXPECT_FP(f32MulSub(a, a, 0x3f801000, RNE, flags), 0x33800000, 0);
  EXPECT_FP(f32NegMulAdd(a, a, 0xbf801000, RNE, flags), 0xb3800000, 0);
}

TEST_P(FpFma, SingleRoundingDiffersFromMulThenAdd64) {
  // (1 + 2^-27)^2 - (1 + 2^-26) = 2^-54.
  const uint64_t a = 0x3ff0000002000000;
  const uint64_t minusC = 0xbff0000004000000;
  uint32_t unfusedFlags = 0;
  const uint64_t product = f64Mul(a, a, RNE, unfusedFlags);
  EXPECT_EQ(f64Add(product, minusC, RNE, unfusedFlags), kF64PosZero);
  EXPECT_FP(f64MulAdd(a, a, minusC, RNE, flags), 0x3c90000000000000, 0);
}

TEST_P(FpFma, TieInTheSumRoundsPerMode) {
  // 1*1 + 2^-24 in binary32 is a tie between 1 and 1 + 2^-23.
  const uint32_t halfUlp = 0x33800000;
  EXPECT_FP(f32MulAdd(kF32One, kF32One, halfUlp, RNE, flags), 0x3f800000, NX);
  EXPECT_FP(f32MulAdd(kF32One, kF32One, halfUlp, RMM, flags), 0x3f800001, NX);
  EXPECT_FP(f32MulAdd(kF32One, kF32One, halfUlp, RUP, flags), 0x3f800001, NX);
  EXPECT_FP(f32MulAdd(kF32One, kF32One, halfUlp, RTZ, flags), 0x3f800000, NX);
  // (1 + 2^-27)^2 - 2^-26 = 1 + 2^-54: below half an ulp, only RUP moves.
  const uint64_t a = 0x3ff0000002000000;
  EXPECT_FP(f64MulAdd(a, a, 0xbe50000000000000, RNE, flags), kF64One, NX);
  EXPECT_FP(f64MulAdd(a, a, 0xbe50000000000000, RUP, flags), 0x3ff0000000000001, NX);
}

TEST_P(FpFma, InvalidCases) {
  // inf * 0 is invalid even when the addend is a quiet NaN.
  EXPECT_FP(f32MulAdd(kF32PosInf, kF32PosZero, kF32QNaN, RNE, flags), kCanonicalNaN32, NV);
  EXPECT_FP(f64MulAdd(kF64NegZero, kF64PosInf, kF64QNaN, RNE, flags), kCanonicalNaN64, NV);
  EXPECT_FP(f32MulAdd(kF32PosInf, kF32PosZero, kF32One, RNE, flags), kCanonicalNaN32, NV);
  // inf - inf after an exact infinite product.
  EXPECT_FP(f32MulAdd(kF32PosInf, kF32One, kF32NegInf, RNE, flags), kCanonicalNaN32, NV);
  EXPECT_FP(f64MulSub(kF64PosInf, kF64One, kF64PosInf, RNE, flags), kCanonicalNaN64, NV);
  EXPECT_FP(f64NegMulAdd(kF64PosInf, kF64One, kF64NegInf, RNE, flags), kCanonicalNaN64, NV);
  // Signaling NaN anywhere.
  EXPECT_FP(f32MulAdd(kF32One, kF32One, kF32SNaN, RNE, flags), kCanonicalNaN32, NV);
  EXPECT_FP(f64MulAdd(kF64SNaN, kF64One, kF64One, RNE, flags), kCanonicalNaN64, NV);
  // Quiet NaN without inf*0: no flag.
  EXPECT_FP(f32MulAdd(kF32QNaNPayload, kF32PosZero, kF32One, RNE, flags), kCanonicalNaN32, 0);
  EXPECT_FP(f64MulAdd(kF64One, kF64One, kF64QNaNPayload, RNE, flags), kCanonicalNaN64, 0);
}

TEST_P(FpFma, InfinitePartsWithoutConflict) {
  EXPECT_FP(f32MulAdd(kF32PosInf, kF32NegOne, kF32MaxFinite, RNE, flags), kF32NegInf, 0);
  EXPECT_FP(f32MulAdd(kF32Two, kF32Two, kF32NegInf, RNE, flags), kF32NegInf, 0);
  EXPECT_FP(f64NegMulSub(kF64PosInf, kF64One, kF64NegInf, RNE, flags), kF64NegInf, 0);
}

TEST_P(FpFma, SignedZeroResults) {
  // (+0) + (+0) = +0; (-0) + (+0) = +0 except -0 in RDN.
  EXPECT_FP(f32MulAdd(kF32One, kF32PosZero, kF32PosZero, RNE, flags), kF32PosZero, 0);
  EXPECT_FP(f32MulAdd(kF32One, kF32NegZero, kF32PosZero, RNE, flags), kF32PosZero, 0);
  EXPECT_FP(f32MulAdd(kF32One, kF32NegZero, kF32PosZero, RDN, flags), kF32NegZero, 0);
  EXPECT_FP(f32MulAdd(kF32One, kF32NegZero, kF32NegZero, RNE, flags), kF32NegZero, 0);
  // fnmadd: -(1*0) - 0 = -0 - 0 = -0.  fmsub: 1*0 - 0 = +0.  fnmsub: -(1*0) + 0 = +0.
  EXPECT_FP(f32NegMulAdd(kF32One, kF32PosZero, kF32PosZero, RNE, flags), kF32NegZero, 0);
  EXPECT_FP(f32MulSub(kF32One, kF32PosZero, kF32PosZero, RNE, flags), kF32PosZero, 0);
  EXPECT_FP(f32NegMulSub(kF32One, kF32PosZero, kF32PosZero, RNE, flags), kF32PosZero, 0);
  // Exact cancellation of a nonzero product: +0, or -0 in RDN.
  EXPECT_FP(f64MulAdd(kF64Two, kF64Two, 0xc010000000000000, RNE, flags), kF64PosZero, 0);
  EXPECT_FP(f64MulAdd(kF64Two, kF64Two, 0xc010000000000000, RDN, flags), kF64NegZero, 0);
  // A zero product leaves a nonzero addend untouched.
  EXPECT_FP(f64MulAdd(kF64PosZero, kF64MaxFinite, kF64MinSubnormal, RNE, flags), kF64MinSubnormal, 0);
}

TEST_P(FpFma, OverflowAndUnderflow) {
  EXPECT_FP(f32MulAdd(kF32MaxFinite, kF32Two, kF32NegOne, RNE, flags), kF32PosInf, OF | NX);
  EXPECT_FP(f32MulAdd(kF32MaxFinite, kF32Two, kF32NegOne, RTZ, flags), kF32MaxFinite, OF | NX);
  // The product overflows on its own but the addend brings it back: no flags.
  EXPECT_FP(f32MulAdd(kF32MaxFinite, kF32Two, 0xff7fffff, RNE, flags), kF32MaxFinite, 0);
  // Tiny product plus zero: 2^-149 * 0.5 + 0 is the RNE tie to 0.
  EXPECT_FP(f32MulAdd(kF32MinSubnormal, kF32Half, kF32PosZero, RNE, flags), kF32PosZero, UF | NX);
  EXPECT_FP(f32MulAdd(kF32MinSubnormal, kF32Half, kF32PosZero, RMM, flags), kF32MinSubnormal, UF | NX);
  // Tiny product next to a big addend: only the sticky bit survives.
  EXPECT_FP(f64MulAdd(kF64MinSubnormal, kF64MinSubnormal, kF64One, RUP, flags), 0x3ff0000000000001, NX);
  EXPECT_FP(f64MulAdd(kF64MinSubnormal, kF64MinSubnormal, kF64One, RNE, flags), kF64One, NX);
  EXPECT_FP(f64MulSub(kF64MinSubnormal, kF64MinSubnormal, kF64One, RTZ, flags), 0xbfefffffffffffff, NX);
}

}  // namespace
}  // namespace strata::cpu::fp::test
