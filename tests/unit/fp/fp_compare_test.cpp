// Hand-computed cases for fmin/fmax, feq/flt/fle, fclass, sign injection and
// NaN boxing.
#include "fp_test_util.h"

namespace strata::cpu::fp::test {
namespace {

FP_TEST_SUITE(FpMinMax);
FP_TEST_SUITE(FpCompare);
FP_TEST_SUITE(FpClassify);
FP_TEST_SUITE(FpSignInject);
FP_TEST_SUITE(FpNaNBoxing);
FP_TEST_SUITE(FpRoundingMode);

TEST_P(FpMinMax, SignedZerosAreOrdered) {
  EXPECT_FP(f32Min(kF32NegZero, kF32PosZero, flags), kF32NegZero, 0);
  EXPECT_FP(f32Min(kF32PosZero, kF32NegZero, flags), kF32NegZero, 0);
  EXPECT_FP(f32Max(kF32NegZero, kF32PosZero, flags), kF32PosZero, 0);
  EXPECT_FP(f32Max(kF32PosZero, kF32NegZero, flags), kF32PosZero, 0);
  EXPECT_FP(f64Min(kF64PosZero, kF64NegZero, flags), kF64NegZero, 0);
  EXPECT_FP(f64Max(kF64NegZero, kF64PosZero, flags), kF64PosZero, 0);
}

TEST_P(FpMinMax, OrdinaryValues) {
  EXPECT_FP(f32Min(kF32One, kF32Two, flags), kF32One, 0);
  EXPECT_FP(f32Max(kF32One, kF32Two, flags), kF32Two, 0);
  EXPECT_FP(f32Min(kF32NegOne, 0xc0000000, flags), 0xc0000000, 0);  // -2 < -1
  EXPECT_FP(f32Max(kF32NegOne, 0xc0000000, flags), kF32NegOne, 0);
  EXPECT_FP(f32Min(kF32NegInf, kF32MaxFinite, flags), kF32NegInf, 0);
  EXPECT_FP(f64Max(kF64PosInf, kF64NegInf, flags), kF64PosInf, 0);
  EXPECT_FP(f64Min(kF64MinSubnormal, kF64PosZero, flags), kF64PosZero, 0);
  EXPECT_FP(f64Min(0x8000000000000001, kF64PosZero, flags), 0x8000000000000001, 0);
}

TEST_P(FpMinMax, OneNaNReturnsTheOtherOperand) {
  EXPECT_FP(f32Min(kF32QNaN, kF32One, flags), kF32One, 0);
  EXPECT_FP(f32Max(kF32NegOne, kF32QNaNPayload, flags), kF32NegOne, 0);
  EXPECT_FP(f64Max(kF64QNaN, kF64NegZero, flags), kF64NegZero, 0);
  // A signaling NaN still yields the other operand, but raises NV.
  EXPECT_FP(f32Min(kF32SNaN, kF32One, flags), kF32One, NV);
  EXPECT_FP(f64Max(kF64One, kF64SNaN, flags), kF64One, NV);
}

TEST_P(FpMinMax, TwoNaNsReturnCanonicalNaN) {
  EXPECT_FP(f32Min(kF32QNaNPayload, kF32NegQNaN, flags), kCanonicalNaN32, 0);
  EXPECT_FP(f32Max(kF32SNaN, kF32QNaN, flags), kCanonicalNaN32, NV);
  EXPECT_FP(f64Min(kF64QNaNPayload, kF64QNaNPayload, flags), kCanonicalNaN64, 0);
  EXPECT_FP(f64Max(kF64SNaN, kF64SNaN, flags), kCanonicalNaN64, NV);
}

TEST_P(FpCompare, EqualityIsQuiet) {
  EXPECT_FP(f32Eq(kF32One, kF32One, flags), true, 0);
  EXPECT_FP(f32Eq(kF32One, kF32Two, flags), false, 0);
  EXPECT_FP(f32Eq(kF32PosZero, kF32NegZero, flags), true, 0);
  EXPECT_FP(f32Eq(kF32QNaN, kF32QNaN, flags), false, 0);
  EXPECT_FP(f32Eq(kF32QNaN, kF32One, flags), false, 0);
  EXPECT_FP(f32Eq(kF32SNaN, kF32One, flags), false, NV);
  EXPECT_FP(f64Eq(kF64NegZero, kF64PosZero, flags), true, 0);
  EXPECT_FP(f64Eq(kF64PosInf, kF64PosInf, flags), true, 0);
  EXPECT_FP(f64Eq(kF64One, kF64SNaN, flags), false, NV);
}

TEST_P(FpCompare, OrderingIsSignaling) {
  EXPECT_FP(f32Lt(kF32QNaN, kF32One, flags), false, NV);
  EXPECT_FP(f32Le(kF32One, kF32QNaN, flags), false, NV);
  EXPECT_FP(f32Lt(kF32SNaN, kF32One, flags), false, NV);
  EXPECT_FP(f64Le(kF64QNaN, kF64QNaN, flags), false, NV);
  EXPECT_FP(f64Lt(kF64One, kF64QNaNPayload, flags), false, NV);
}

TEST_P(FpCompare, OrderingOfValues) {
  EXPECT_FP(f32Lt(kF32NegZero, kF32PosZero, flags), false, 0);
  EXPECT_FP(f32Le(kF32NegZero, kF32PosZero, flags), true, 0);
  EXPECT_FP(f32Le(kF32PosZero, kF32NegZero, flags), true, 0);
  EXPECT_FP(f32Lt(kF32NegOne, kF32One, flags), true, 0);
  EXPECT_FP(f32Lt(kF32One, kF32NegOne, flags), false, 0);
  EXPECT_FP(f32Lt(0xc0000000, kF32NegOne, flags), true, 0);   // -2 < -1
  EXPECT_FP(f32Lt(kF32NegOne, 0xc0000000, flags), false, 0);
  EXPECT_FP(f32Lt(kF32One, kF32One, flags), false, 0);
  EXPECT_FP(f32Le(kF32One, kF32One, flags), true, 0);
  EXPECT_FP(f64Lt(kF64NegInf, kF64PosInf, flags), true, 0);
  EXPECT_FP(f64Lt(kF64MinSubnormal, kF64MinNormal, flags), true, 0);
  EXPECT_FP(f64Le(kF64Two, kF64One, flags), false, 0);
  EXPECT_FP(f64Lt(0x8000000000000001, kF64NegZero, flags), true, 0);
}

TEST_P(FpClassify, EveryClassBinary32) {
  EXPECT_EQ(f32Classify(kF32NegInf), 1u << 0);
  EXPECT_EQ(f32Classify(kF32NegOne), 1u << 1);
  EXPECT_EQ(f32Classify(0x80000001), 1u << 2);
  EXPECT_EQ(f32Classify(kF32NegZero), 1u << 3);
  EXPECT_EQ(f32Classify(kF32PosZero), 1u << 4);
  EXPECT_EQ(f32Classify(kF32MaxSubnormal), 1u << 5);
  EXPECT_EQ(f32Classify(kF32MinNormal), 1u << 6);
  EXPECT_EQ(f32Classify(kF32MaxFinite), 1u << 6);
  EXPECT_EQ(f32Classify(kF32PosInf), 1u << 7);
  EXPECT_EQ(f32Classify(kF32SNaN), 1u << 8);
  EXPECT_EQ(f32Classify(kF32NegSNaN), 1u << 8);
  EXPECT_EQ(f32Classify(0x7fbfffff), 1u << 8);  // largest sNaN payload
  EXPECT_EQ(f32Classify(kF32QNaN), 1u << 9);
  EXPECT_EQ(f32Classify(kF32NegQNaN), 1u << 9);
}

TEST_P(FpClassify, EveryClassBinary64) {
  EXPECT_EQ(f64Classify(kF64NegInf), fclass::NegInf);
  EXPECT_EQ(f64Classify(0xc000000000000000), fclass::NegNormal);
  EXPECT_EQ(f64Classify(0x800fffffffffffff), fclass::NegSubnormal);
  EXPECT_EQ(f64Classify(kF64NegZero), fclass::NegZero);
  EXPECT_EQ(f64Classify(kF64PosZero), fclass::PosZero);
  EXPECT_EQ(f64Classify(kF64MinSubnormal), fclass::PosSubnormal);
  EXPECT_EQ(f64Classify(kF64One), fclass::PosNormal);
  EXPECT_EQ(f64Classify(kF64PosInf), fclass::PosInf);
  EXPECT_EQ(f64Classify(kF64SNaN), fclass::SignalingNaN);
  EXPECT_EQ(f64Classify(kF64QNaNPayload), fclass::QuietNaN);
  // The 10-bit mask layout of the spec.
  EXPECT_EQ(fclass::NegInf, 0x001u);
  EXPECT_EQ(fclass::QuietNaN, 0x200u);
}

TEST_P(FpSignInject, Binary32AndBinary64) {
  EXPECT_EQ(f32SignInject(kF32One, 0xc0000000), kF32NegOne);
  EXPECT_EQ(f32SignInject(kF32NegOne, kF32Two), kF32One);
  EXPECT_EQ(f32SignInjectNeg(kF32One, 0xc0000000), kF32One);
  EXPECT_EQ(f32SignInjectNeg(kF32One, kF32One), kF32NegOne);  // fneg.s
  EXPECT_EQ(f32SignInjectXor(kF32NegOne, 0xc0000000), kF32One);
  EXPECT_EQ(f32SignInjectXor(kF32NegOne, kF32NegOne), kF32One);  // fabs.s
  EXPECT_EQ(f32SignInjectXor(kF32NegOne, kF32Two), kF32NegOne);
  // NaN payloads pass through untouched: sign injection is not arithmetic.
  EXPECT_EQ(f32SignInjectNeg(kF32SNaN, kF32SNaN), kF32NegSNaN);
  EXPECT_EQ(f64SignInject(kF64One, kF64NegZero), kF64NegOne);
  EXPECT_EQ(f64SignInjectNeg(kF64NegOne, kF64NegOne), kF64One);
  EXPECT_EQ(f64SignInjectXor(kF64NegInf, kF64NegZero), kF64PosInf);
  EXPECT_EQ(f64SignInjectXor(kF64QNaNPayload, kF64One), kF64QNaNPayload);
}

TEST_P(FpNaNBoxing, BoxAndUnbox) {
  EXPECT_EQ(boxF32(kF32One), 0xffffffff3f800000ull);
  EXPECT_EQ(boxF32(kF32NegZero), 0xffffffff80000000ull);
  EXPECT_EQ(unboxF32(0xffffffff3f800000ull), kF32One);
  EXPECT_EQ(unboxF32(boxF32(kF32SNaN)), kF32SNaN);
  // Anything not boxed reads as the canonical NaN.
  EXPECT_EQ(unboxF32(0x000000003f800000ull), kCanonicalNaN32);
  EXPECT_EQ(unboxF32(0xfffffffe3f800000ull), kCanonicalNaN32);
  EXPECT_EQ(unboxF32(0x7fffffff3f800000ull), kCanonicalNaN32);
  EXPECT_EQ(unboxF32(kF64One), kCanonicalNaN32);
}

TEST_P(FpRoundingMode, ValidEncodings) {
  for (uint32_t rm = 0; rm <= 4; ++rm) EXPECT_TRUE(isValidRoundingMode(rm));
  EXPECT_FALSE(isValidRoundingMode(5));
  EXPECT_FALSE(isValidRoundingMode(6));
  EXPECT_FALSE(isValidRoundingMode(7));  // DYN must be resolved by the caller
  EXPECT_EQ(static_cast<int>(RoundingMode::RMM), 4);
}

TEST_P(FpRoundingMode, OutOfRangeModeBehavesAsRne) {
  // Callers must reject 5/6 and resolve 7, but a stray value must not be UB.
  const auto bogus = static_cast<RoundingMode>(7);
  EXPECT_FP(f32Add(0x3f800001, 0x33800000, bogus, flags), 0x3f800002, NX);  // odd tie goes to even
  EXPECT_FP(f64Mul(kF64MaxFinite, kF64Two, bogus, flags), kF64PosInf, OF | NX);
  EXPECT_FP(f64ToI32(bitsOf(2.5), bogus, flags), 2, NX);
  EXPECT_FP(f32MulAdd(kF32One, kF32One, 0x33800000, bogus, flags), kF32One, NX);
}

}  // namespace
}  // namespace strata::cpu::fp::test
