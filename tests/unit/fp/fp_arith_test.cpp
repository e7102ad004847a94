// Hand-computed corner cases for fadd/fsub/fmul/fdiv/fsqrt (binary32 and binary64):
// rounding of exact ties in every mode, overflow per mode, after-rounding
// tininess, subnormals, signed zeros, NaN canonicalisation and flags.
#include "fp_test_util.h"

namespace strata::cpu::fp::test {
namespace {

FP_TEST_SUITE(FpAdd);
FP_TEST_SUITE(FpMul);
FP_TEST_SUITE(FpArith);
FP_TEST_SUITE(FpOverflow);
FP_TEST_SUITE(FpUnderflow);
FP_TEST_SUITE(FpDiv);
FP_TEST_SUITE(FpSqrt);

// ---- Ties and rounding modes ----

TEST_P(FpAdd, TieBelowEvenRoundsPerMode32) {
  // 1 + 2^-24 lies exactly halfway between 1 and 1 + 2^-23 (even candidate: 1).
  const uint32_t halfUlp = 0x33800000;  // 2^-24
  EXPECT_FP(f32Add(kF32One, halfUlp, RNE, flags), 0x3f800000, NX);
  EXPECT_FP(f32Add(kF32One, halfUlp, RTZ, flags), 0x3f800000, NX);
  EXPECT_FP(f32Add(kF32One, halfUlp, RDN, flags), 0x3f800000, NX);
  EXPECT_FP(f32Add(kF32One, halfUlp, RUP, flags), 0x3f800001, NX);
  EXPECT_FP(f32Add(kF32One, halfUlp, RMM, flags), 0x3f800001, NX);
}

TEST_P(FpAdd, TieAboveOddRoundsPerMode32) {
  // (1 + 2^-23) + 2^-24: halfway between odd 0x3f800001 and even 0x3f800002.
  const uint32_t halfUlp = 0x33800000;
  EXPECT_FP(f32Add(0x3f800001, halfUlp, RNE, flags), 0x3f800002, NX);
  EXPECT_FP(f32Add(0x3f800001, halfUlp, RTZ, flags), 0x3f800001, NX);
  EXPECT_FP(f32Add(0x3f800001, halfUlp, RDN, flags), 0x3f800001, NX);
  EXPECT_FP(f32Add(0x3f800001, halfUlp, RUP, flags), 0x3f800002, NX);
  EXPECT_FP(f32Add(0x3f800001, halfUlp, RMM, flags), 0x3f800002, NX);
}

TEST_P(FpAdd, NegativeTieRoundsPerMode32) {
  // -1 - 2^-24: RDN and RMM go away from zero, RUP toward it.
  const uint32_t negHalfUlp = 0xb3800000;
  EXPECT_FP(f32Add(kF32NegOne, negHalfUlp, RNE, flags), 0xbf800000, NX);
  EXPECT_FP(f32Add(kF32NegOne, negHalfUlp, RTZ, flags), 0xbf800000, NX);
  EXPECT_FP(f32Add(kF32NegOne, negHalfUlp, RDN, flags), 0xbf800001, NX);
  EXPECT_FP(f32Add(kF32NegOne, negHalfUlp, RUP, flags), 0xbf800000, NX);
  EXPECT_FP(f32Add(kF32NegOne, negHalfUlp, RMM, flags), 0xbf800001, NX);
}

TEST_P(FpAdd, QuarterUlpIsNotATie32) {
  const uint32_t quarterUlp = 0x33000000;  // 2^-25
  EXPECT_FP(f32Add(kF32One, quarterUlp, RNE, flags), 0x3f800000, NX);
  EXPECT_FP(f32Add(kF32One, quarterUlp, RMM, flags), 0x3f800000, NX);
  EXPECT_FP(f32Add(kF32One, quarterUlp, RUP, flags), 0x3f800001, NX);
}

TEST_P(FpAdd, TieRoundsPerMode64) {
  const uint64_t halfUlp = 0x3ca0000000000000;  // 2^-53
  EXPECT_FP(f64Add(kF64One, halfUlp, RNE, flags), 0x3ff0000000000000, NX);
  EXPECT_FP(f64Add(kF64One, halfUlp, RTZ, flags), 0x3ff0000000000000, NX);
  EXPECT_FP(f64Add(kF64One, halfUlp, RDN, flags), 0x3ff0000000000000, NX);
  EXPECT_FP(f64Add(kF64One, halfUlp, RUP, flags), 0x3ff0000000000001, NX);
  EXPECT_FP(f64Add(kF64One, halfUlp, RMM, flags), 0x3ff0000000000001, NX);
  // Odd lower neighbour: RNE now rounds up too.
  EXPECT_FP(f64Add(0x3ff0000000000001, halfUlp, RNE, flags), 0x3ff0000000000002, NX);
  EXPECT_FP(f64Add(0x3ff0000000000001, halfUlp, RTZ, flags), 0x3ff0000000000001, NX);
}

TEST_P(FpAdd, FarSmallerOperandOnlyAffectsDirectedModes64) {
  // 1 + 2^-1074: far below half an ulp; only RUP moves.
  EXPECT_FP(f64Add(kF64One, kF64MinSubnormal, RNE, flags), kF64One, NX);
  EXPECT_FP(f64Add(kF64One, kF64MinSubnormal, RMM, flags), kF64One, NX);
  EXPECT_FP(f64Add(kF64One, kF64MinSubnormal, RUP, flags), 0x3ff0000000000001, NX);
  // 1 - 2^-1074: RTZ and RDN drop to the predecessor 1 - 2^-53.
  EXPECT_FP(f64Sub(kF64One, kF64MinSubnormal, RNE, flags), kF64One, NX);
  EXPECT_FP(f64Sub(kF64One, kF64MinSubnormal, RTZ, flags), 0x3fefffffffffffff, NX);
  EXPECT_FP(f64Sub(kF64One, kF64MinSubnormal, RDN, flags), 0x3fefffffffffffff, NX);
  EXPECT_FP(f64Sub(kF64One, kF64MinSubnormal, RUP, flags), kF64One, NX);
}

TEST_P(FpAdd, ExactResultsRaiseNoFlags) {
  EXPECT_FP(f32Add(kF32One, kF32Two, RNE, flags), 0x40400000, 0);        // 1 + 2 = 3
  EXPECT_FP(f64Sub(kF64One, kF64Two, RMM, flags), kF64NegOne, 0);       // 1 - 2 = -1
  EXPECT_FP(f64Add(bitsOf(0.1), bitsOf(0.2), RNE, flags), bitsOf(0.30000000000000004), NX);
}

// ---- Signed zeros ----

TEST_P(FpAdd, SignedZeroRules) {
  EXPECT_FP(f32Add(kF32PosZero, kF32NegZero, RNE, flags), kF32PosZero, 0);
  EXPECT_FP(f32Add(kF32PosZero, kF32NegZero, RDN, flags), kF32NegZero, 0);
  EXPECT_FP(f32Add(kF32NegZero, kF32NegZero, RNE, flags), kF32NegZero, 0);
  EXPECT_FP(f32Sub(kF32NegZero, kF32PosZero, RUP, flags), kF32NegZero, 0);
  // x - x is +0, except -0 when rounding down.
  for (RoundingMode rm : {RNE, RTZ, RUP, RMM}) EXPECT_FP(f32Sub(kF32One, kF32One, rm, flags), kF32PosZero, 0);
  EXPECT_FP(f32Sub(kF32One, kF32One, RDN, flags), kF32NegZero, 0);
  EXPECT_FP(f64Add(kF64NegOne, kF64One, RDN, flags), kF64NegZero, 0);
  EXPECT_FP(f64Add(kF64NegOne, kF64One, RNE, flags), kF64PosZero, 0);
  // x + 0 keeps x (including the sign of a nonzero x).
  EXPECT_FP(f64Add(kF64NegOne, kF64PosZero, RNE, flags), kF64NegOne, 0);
}

TEST_P(FpMul, SignOfZeroProduct) {
  EXPECT_FP(f32Mul(kF32NegOne, kF32PosZero, RNE, flags), kF32NegZero, 0);
  EXPECT_FP(f32Mul(kF32NegZero, kF32NegZero, RNE, flags), kF32PosZero, 0);
  EXPECT_FP(f64Mul(kF64NegZero, kF64One, RUP, flags), kF64NegZero, 0);
}

// ---- Infinities and NaNs ----

TEST_P(FpAdd, InfinityArithmetic) {
  EXPECT_FP(f32Add(kF32PosInf, kF32PosInf, RNE, flags), kF32PosInf, 0);
  EXPECT_FP(f32Add(kF32PosInf, kF32NegInf, RNE, flags), kCanonicalNaN32, NV);
  EXPECT_FP(f32Sub(kF32PosInf, kF32PosInf, RNE, flags), kCanonicalNaN32, NV);
  EXPECT_FP(f32Add(kF32NegInf, kF32MaxFinite, RNE, flags), kF32NegInf, 0);
  EXPECT_FP(f64Sub(kF64One, kF64PosInf, RNE, flags), kF64NegInf, 0);
  EXPECT_FP(f64Add(kF64NegInf, kF64PosInf, RMM, flags), kCanonicalNaN64, NV);
}

TEST_P(FpArith, NaNOperandsGiveCanonicalNaN) {
  // Quiet NaN: no flag, payload and sign dropped.
  EXPECT_FP(f32Add(kF32QNaNPayload, kF32One, RNE, flags), kCanonicalNaN32, 0);
  EXPECT_FP(f32Mul(kF32One, kF32NegQNaN, RNE, flags), kCanonicalNaN32, 0);
  EXPECT_FP(f32Div(kF32QNaN, kF32PosZero, RNE, flags), kCanonicalNaN32, 0);  // no DZ for NaN
  EXPECT_FP(f64Sub(kF64QNaNPayload, kF64PosInf, RNE, flags), kCanonicalNaN64, 0);
  // Signaling NaN: NV.
  EXPECT_FP(f32Add(kF32One, kF32SNaN, RNE, flags), kCanonicalNaN32, NV);
  EXPECT_FP(f32Mul(kF32NegSNaN, kF32QNaN, RNE, flags), kCanonicalNaN32, NV);
  EXPECT_FP(f64Div(kF64SNaN, kF64One, RNE, flags), kCanonicalNaN64, NV);
  EXPECT_FP(f64Mul(kF64One, kF64SNaN, RNE, flags), kCanonicalNaN64, NV);
}

TEST_P(FpMul, ZeroTimesInfinityIsInvalid) {
  EXPECT_FP(f32Mul(kF32PosZero, kF32PosInf, RNE, flags), kCanonicalNaN32, NV);
  EXPECT_FP(f64Mul(kF64NegInf, kF64NegZero, RNE, flags), kCanonicalNaN64, NV);
  EXPECT_FP(f64Mul(kF64NegInf, kF64Two, RNE, flags), kF64NegInf, 0);
}

// ---- Overflow ----

TEST_P(FpOverflow, ResultDependsOnRoundingMode32) {
  // max + max = 2^129 - 2^105: far beyond the range.
  EXPECT_FP(f32Add(kF32MaxFinite, kF32MaxFinite, RNE, flags), kF32PosInf, OF | NX);
  EXPECT_FP(f32Add(kF32MaxFinite, kF32MaxFinite, RTZ, flags), kF32MaxFinite, OF | NX);
  EXPECT_FP(f32Add(kF32MaxFinite, kF32MaxFinite, RDN, flags), kF32MaxFinite, OF | NX);
  EXPECT_FP(f32Add(kF32MaxFinite, kF32MaxFinite, RUP, flags), kF32PosInf, OF | NX);
  EXPECT_FP(f32Add(kF32MaxFinite, kF32MaxFinite, RMM, flags), kF32PosInf, OF | NX);
  const uint32_t negMax = 0xff7fffff;
  EXPECT_FP(f32Add(negMax, negMax, RNE, flags), kF32NegInf, OF | NX);
  EXPECT_FP(f32Add(negMax, negMax, RTZ, flags), negMax, OF | NX);
  EXPECT_FP(f32Add(negMax, negMax, RDN, flags), kF32NegInf, OF | NX);
  EXPECT_FP(f32Add(negMax, negMax, RUP, flags), negMax, OF | NX);
  EXPECT_FP(f32Add(negMax, negMax, RMM, flags), kF32NegInf, OF | NX);
}

TEST_P(FpOverflow, DetectedAfterRounding32) {
  // max + 2^103 is a tie between max (odd) and 2^128: overflow only in the
  // modes that round up to 2^128.
  const uint32_t halfUlpOfMax = 0x73000000;  // 2^103
  EXPECT_FP(f32Add(kF32MaxFinite, halfUlpOfMax, RNE, flags), kF32PosInf, OF | NX);
  EXPECT_FP(f32Add(kF32MaxFinite, halfUlpOfMax, RMM, flags), kF32PosInf, OF | NX);
  EXPECT_FP(f32Add(kF32MaxFinite, halfUlpOfMax, RUP, flags), kF32PosInf, OF | NX);
  EXPECT_FP(f32Add(kF32MaxFinite, halfUlpOfMax, RTZ, flags), kF32MaxFinite, NX);
  EXPECT_FP(f32Add(kF32MaxFinite, halfUlpOfMax, RDN, flags), kF32MaxFinite, NX);
}

TEST_P(FpOverflow, ResultDependsOnRoundingMode64) {
  EXPECT_FP(f64Mul(kF64MaxFinite, kF64Two, RNE, flags), kF64PosInf, OF | NX);
  EXPECT_FP(f64Mul(kF64MaxFinite, kF64Two, RTZ, flags), kF64MaxFinite, OF | NX);
  EXPECT_FP(f64Mul(kF64MaxFinite, kF64Two, RUP, flags), kF64PosInf, OF | NX);
  EXPECT_FP(f64Mul(kF64MaxFinite, 0xc000000000000000, RUP, flags), 0xffefffffffffffff, OF | NX);
  EXPECT_FP(f64Mul(kF64MaxFinite, 0xc000000000000000, RDN, flags), kF64NegInf, OF | NX);
  EXPECT_FP(f64Div(kF64MaxFinite, kF64Half, RMM, flags), kF64PosInf, OF | NX);
  // Exactly max: no overflow.
  EXPECT_FP(f64Mul(0x7fdfffffffffffff, kF64Two, RNE, flags), kF64MaxFinite, 0);
}

// ---- Underflow and subnormals ----

TEST_P(FpUnderflow, ExactSubnormalRaisesNothing) {
  EXPECT_FP(f32Mul(kF32MinNormal, kF32Half, RNE, flags), 0x00400000, 0);  // 2^-127
  EXPECT_FP(f32Add(kF32MinSubnormal, kF32MinSubnormal, RNE, flags), 0x00000002, 0);
  EXPECT_FP(f32Add(kF32MaxSubnormal, kF32MinSubnormal, RNE, flags), kF32MinNormal, 0);
  EXPECT_FP(f64Sub(kF64MinNormal, kF64MinSubnormal, RNE, flags), kF64MaxSubnormal, 0);
  EXPECT_FP(f64Mul(kF64MinNormal, kF64Half, RNE, flags), 0x0008000000000000, 0);
}

TEST_P(FpUnderflow, HalfOfMinSubnormalPerMode) {
  // 2^-150 is a tie between 0 and the smallest subnormal.
  EXPECT_FP(f32Mul(kF32MinSubnormal, kF32Half, RNE, flags), 0x00000000, UF | NX);
  EXPECT_FP(f32Mul(kF32MinSubnormal, kF32Half, RTZ, flags), 0x00000000, UF | NX);
  EXPECT_FP(f32Mul(kF32MinSubnormal, kF32Half, RDN, flags), 0x00000000, UF | NX);
  EXPECT_FP(f32Mul(kF32MinSubnormal, kF32Half, RUP, flags), 0x00000001, UF | NX);
  EXPECT_FP(f32Mul(kF32MinSubnormal, kF32Half, RMM, flags), 0x00000001, UF | NX);
  EXPECT_FP(f64Mul(kF64MinSubnormal, 0xbfe0000000000000, RNE, flags), kF64NegZero, UF | NX);
  EXPECT_FP(f64Mul(kF64MinSubnormal, 0xbfe0000000000000, RDN, flags), 0x8000000000000001, UF | NX);
  EXPECT_FP(f64Mul(kF64MinSubnormal, 0xbfe0000000000000, RMM, flags), 0x8000000000000001, UF | NX);
}

TEST_P(FpUnderflow, InexactSubnormalTie32) {
  // (2^-126 + 2^-149) / 2 = 2^-127 + 2^-150: a tie in the subnormal range.
  EXPECT_FP(f32Mul(0x00800001, kF32Half, RNE, flags), 0x00400000, UF | NX);
  EXPECT_FP(f32Mul(0x00800001, kF32Half, RMM, flags), 0x00400001, UF | NX);
  EXPECT_FP(f32Mul(0x00800001, kF32Half, RTZ, flags), 0x00400000, UF | NX);
}

TEST_P(FpUnderflow, TininessIsDetectedAfterRounding) {
  // 2^-126 - 2^-150 has 24 significant bits: with an unbounded exponent it
  // stays below 2^-126, so it is tiny even though RNE delivers 2^-126.
  const uint64_t justBelowMinNormal24 = 0x380fffffe0000000;  // 2^-126 - 2^-150
  EXPECT_FP(f64ToF32(justBelowMinNormal24, RNE, flags), kF32MinNormal, UF | NX);
  EXPECT_FP(f64ToF32(justBelowMinNormal24, RTZ, flags), kF32MaxSubnormal, UF | NX);
  EXPECT_FP(f64ToF32(justBelowMinNormal24, RUP, flags), kF32MinNormal, UF | NX);
  // 2^-126 - 2^-151 rounds to 2^-126 even with an unbounded exponent (RNE,
  // RMM, RUP): not tiny, so only NX. RTZ/RDN stay below: tiny.
  const uint64_t justBelowMinNormal25 = 0x380ffffff0000000;  // 2^-126 - 2^-151
  EXPECT_FP(f64ToF32(justBelowMinNormal25, RNE, flags), kF32MinNormal, NX);
  EXPECT_FP(f64ToF32(justBelowMinNormal25, RMM, flags), kF32MinNormal, NX);
  EXPECT_FP(f64ToF32(justBelowMinNormal25, RUP, flags), kF32MinNormal, NX);
  EXPECT_FP(f64ToF32(justBelowMinNormal25, RTZ, flags), kF32MaxSubnormal, UF | NX);
  EXPECT_FP(f64ToF32(justBelowMinNormal25, RDN, flags), kF32MaxSubnormal, UF | NX);
  // Same boundary in binary64 via multiplication: (1 - 2^-53) * 2^-1022 is
  // exactly halfway between the largest subnormal and 2^-1022 and has 53
  // significant bits: RNE gives 2^-1022 but the value is tiny.
  EXPECT_FP(f64Mul(0x3fefffffffffffff, kF64MinNormal, RNE, flags), kF64MinNormal, UF | NX);
  EXPECT_FP(f64Mul(0x3fefffffffffffff, kF64MinNormal, RTZ, flags), kF64MaxSubnormal, UF | NX);
}

TEST_P(FpArith, FlagsAccumulateAndAreNeverCleared) {
  uint32_t flags = NV | DZ;
  EXPECT_EQ(f32Add(kF32One, kF32One, RNE, flags), kF32Two);
  EXPECT_EQ(flags, NV | DZ);
  EXPECT_EQ(f32Div(kF32One, 0x40400000, RNE, flags), 0x3eaaaaabu);
  EXPECT_EQ(flags, NV | DZ | NX);
}

// ---- Division ----

TEST_P(FpDiv, DivisionByZero) {
  EXPECT_FP(f32Div(kF32One, kF32PosZero, RNE, flags), kF32PosInf, DZ);
  EXPECT_FP(f32Div(kF32NegOne, kF32PosZero, RNE, flags), kF32NegInf, DZ);
  EXPECT_FP(f32Div(kF32One, kF32NegZero, RNE, flags), kF32NegInf, DZ);
  EXPECT_FP(f64Div(kF64MinSubnormal, kF64PosZero, RTZ, flags), kF64PosInf, DZ);
  EXPECT_FP(f32Div(kF32PosZero, kF32PosZero, RNE, flags), kCanonicalNaN32, NV);
  EXPECT_FP(f64Div(kF64NegZero, kF64PosZero, RNE, flags), kCanonicalNaN64, NV);
  // inf / 0 is an exact infinity, not a division by zero.
  EXPECT_FP(f64Div(kF64PosInf, kF64NegZero, RNE, flags), kF64NegInf, 0);
}

TEST_P(FpDiv, InfinitiesAndZeros) {
  EXPECT_FP(f32Div(kF32PosInf, kF32NegInf, RNE, flags), kCanonicalNaN32, NV);
  EXPECT_FP(f32Div(kF32One, kF32NegInf, RNE, flags), kF32NegZero, 0);
  EXPECT_FP(f64Div(kF64NegZero, kF64NegOne, RNE, flags), kF64PosZero, 0);
}

TEST_P(FpDiv, OneThirdPerMode) {
  // 1/3 = 1.0101...b x 2^-2. binary32: the bit after the 24th is 1 (then more
  // ones), so RNE/RMM/RUP round up. binary64: the next bit is 0.
  const uint32_t three32 = 0x40400000;
  EXPECT_FP(f32Div(kF32One, three32, RNE, flags), 0x3eaaaaab, NX);
  EXPECT_FP(f32Div(kF32One, three32, RMM, flags), 0x3eaaaaab, NX);
  EXPECT_FP(f32Div(kF32One, three32, RTZ, flags), 0x3eaaaaaa, NX);
  EXPECT_FP(f32Div(kF32One, three32, RDN, flags), 0x3eaaaaaa, NX);
  EXPECT_FP(f32Div(kF32One, three32, RUP, flags), 0x3eaaaaab, NX);
  const uint64_t three64 = 0x4008000000000000;
  EXPECT_FP(f64Div(kF64One, three64, RNE, flags), 0x3fd5555555555555, NX);
  EXPECT_FP(f64Div(kF64One, three64, RMM, flags), 0x3fd5555555555555, NX);
  EXPECT_FP(f64Div(kF64One, three64, RUP, flags), 0x3fd5555555555556, NX);
  EXPECT_FP(f64Div(kF64NegOne, three64, RDN, flags), 0xbfd5555555555556, NX);
  EXPECT_FP(f64Div(kF64NegOne, three64, RUP, flags), 0xbfd5555555555555, NX);
}

TEST_P(FpDiv, ExactQuotientsAndSubnormals) {
  EXPECT_FP(f32Div(0x40c00000, 0x40400000, RNE, flags), kF32Two, 0);  // 6 / 3
  // 2^-149 / 2^-23 = 2^-126 exactly: subnormal dividend, normal quotient.
  EXPECT_FP(f32Div(kF32MinSubnormal, 0x34000000, RNE, flags), kF32MinNormal, 0);
  EXPECT_FP(f64Div(kF64MinSubnormal, kF64Two, RNE, flags), kF64PosZero, UF | NX);
  EXPECT_FP(f64Div(kF64MinSubnormal, kF64Two, RUP, flags), kF64MinSubnormal, UF | NX);
}

// ---- Square root ----

TEST_P(FpSqrt, ExactAndRounded) {
  EXPECT_FP(f32Sqrt(0x40800000, RNE, flags), kF32Two, 0);  // sqrt(4)
  EXPECT_FP(f64Sqrt(0x4010000000000000, RNE, flags), kF64Two, 0);
}

TEST_P(FpSqrt, SqrtOfTwoPerMode) {
  // binary32 sqrt(2) = 0x3fb504f3 is below the true value; binary64
  // 0x3ff6a09e667f3bcd is above it.
  EXPECT_FP(f32Sqrt(kF32Two, RNE, flags), 0x3fb504f3, NX);
  EXPECT_FP(f32Sqrt(kF32Two, RTZ, flags), 0x3fb504f3, NX);
  EXPECT_FP(f32Sqrt(kF32Two, RUP, flags), 0x3fb504f4, NX);
  EXPECT_FP(f32Sqrt(kF32Two, RMM, flags), 0x3fb504f3, NX);
  EXPECT_FP(f64Sqrt(kF64Two, RNE, flags), 0x3ff6a09e667f3bcd, NX);
  EXPECT_FP(f64Sqrt(kF64Two, RMM, flags), 0x3ff6a09e667f3bcd, NX);
  EXPECT_FP(f64Sqrt(kF64Two, RTZ, flags), 0x3ff6a09e667f3bcc, NX);
  EXPECT_FP(f64Sqrt(kF64Two, RDN, flags), 0x3ff6a09e667f3bcc, NX);
  EXPECT_FP(f64Sqrt(kF64Two, RUP, flags), 0x3ff6a09e667f3bcd, NX);
}

TEST_P(FpSqrt, SpecialOperands) {
  EXPECT_FP(f32Sqrt(kF32NegOne, RNE, flags), kCanonicalNaN32, NV);
  EXPECT_FP(f64Sqrt(kF64NegOne, RNE, flags), kCanonicalNaN64, NV);
  EXPECT_FP(f64Sqrt(0x8000000000000001, RNE, flags), kCanonicalNaN64, NV);  // negative subnormal
  EXPECT_FP(f32Sqrt(kF32NegInf, RNE, flags), kCanonicalNaN32, NV);
  EXPECT_FP(f32Sqrt(kF32NegZero, RNE, flags), kF32NegZero, 0);
  EXPECT_FP(f64Sqrt(kF64PosZero, RNE, flags), kF64PosZero, 0);
  EXPECT_FP(f64Sqrt(kF64PosInf, RNE, flags), kF64PosInf, 0);
  EXPECT_FP(f32Sqrt(kF32SNaN, RNE, flags), kCanonicalNaN32, NV);
  EXPECT_FP(f32Sqrt(kF32NegQNaN, RNE, flags), kCanonicalNaN32, 0);
}

TEST_P(FpSqrt, SubnormalOperands) {
  // sqrt(2^-148) = 2^-74 (exponent field 127-74 = 53 = 0x35).
  EXPECT_FP(f32Sqrt(0x00000002, RNE, flags), 0x1a800000, 0);
  // sqrt(4 * 2^-1074) = 2^-536 exactly (field 1023-536 = 487 = 0x1e7).
  EXPECT_FP(f64Sqrt(0x0000000000000004, RNE, flags), 0x1e70000000000000, 0);
  // sqrt(2^-1074) = 2^-537 exactly, field 486 = 0x1e6.
  EXPECT_FP(f64Sqrt(kF64MinSubnormal, RNE, flags), 0x1e60000000000000, 0);
}

}  // namespace
}  // namespace strata::cpu::fp::test
