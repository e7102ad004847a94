// Hand-computed cases for fcvt between formats and integers: the spec's
// saturation table (NaN, +-inf, out of range), rounding of exact ties in every
// mode, rounding to a value just out of range, sign extension of 32-bit
// results, and exactness of widening conversions.
#include "fp_test_util.h"

namespace strata::cpu::fp::test {
namespace {

FP_TEST_SUITE(FpToInt);
FP_TEST_SUITE(FpFromInt);
FP_TEST_SUITE(FpFloatToFloat);

constexpr uint64_t kI32Min = 0xffffffff80000000;  // -2^31, sign-extended
constexpr uint64_t kI32Max = 0x000000007fffffff;
constexpr uint64_t kU32Max = 0xffffffffffffffff;  // 2^32-1, sign-extended as the spec says
constexpr uint64_t kI64Min = 0x8000000000000000;
constexpr uint64_t kI64Max = 0x7fffffffffffffff;
constexpr uint64_t kU64Max = 0xffffffffffffffff;

// One row of the spec's fcvt saturation table, binary32 source.
struct SaturationRow32 {
  const char* what;
  uint32_t input;
  uint64_t w, wu, l, lu;
};

TEST_P(FpToInt, SpecSaturationTableBinary32) {
  const SaturationRow32 rows[] = {
      {"-inf", kF32NegInf, kI32Min, 0, kI64Min, 0},
      {"+inf", kF32PosInf, kI32Max, kU32Max, kI64Max, kU64Max},
      {"qNaN", kF32QNaN, kI32Max, kU32Max, kI64Max, kU64Max},
      {"negative qNaN", kF32NegQNaN, kI32Max, kU32Max, kI64Max, kU64Max},
      {"sNaN", kF32SNaN, kI32Max, kU32Max, kI64Max, kU64Max},
      {"-2^64 (out of range negative)", 0xdf800000, kI32Min, 0, kI64Min, 0},
      {"2^64 (out of range positive)", 0x5f800000, kI32Max, kU32Max, kI64Max, kU64Max},
      {"max finite", kF32MaxFinite, kI32Max, kU32Max, kI64Max, kU64Max},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.what);
    for (RoundingMode rm : kAllModes) {
      EXPECT_FP(f32ToI32(row.input, rm, flags), row.w, NV);
      EXPECT_FP(f32ToU32(row.input, rm, flags), row.wu, NV);
      EXPECT_FP(f32ToI64(row.input, rm, flags), row.l, NV);
      EXPECT_FP(f32ToU64(row.input, rm, flags), row.lu, NV);
    }
  }
}

TEST_P(FpToInt, SpecSaturationTableBinary64) {
  const uint64_t inputs[] = {kF64NegInf, kF64PosInf, kF64QNaN, kF64SNaN, 0xfff8000000000000};
  const uint64_t w[] = {kI32Min, kI32Max, kI32Max, kI32Max, kI32Max};
  const uint64_t wu[] = {0, kU32Max, kU32Max, kU32Max, kU32Max};
  const uint64_t l[] = {kI64Min, kI64Max, kI64Max, kI64Max, kI64Max};
  const uint64_t lu[] = {0, kU64Max, kU64Max, kU64Max, kU64Max};
  for (size_t i = 0; i < std::size(inputs); ++i) {
    SCOPED_TRACE(i);
    EXPECT_FP(f64ToI32(inputs[i], RNE, flags), w[i], NV);
    EXPECT_FP(f64ToU32(inputs[i], RTZ, flags), wu[i], NV);
    EXPECT_FP(f64ToI64(inputs[i], RDN, flags), l[i], NV);
    EXPECT_FP(f64ToU64(inputs[i], RMM, flags), lu[i], NV);
  }
}

TEST_P(FpToInt, RangeBoundaries) {
  // -2^31 is representable for W; 2^31 is not.
  EXPECT_FP(f32ToI32(0xcf000000, RNE, flags), kI32Min, 0);
  EXPECT_FP(f32ToI32(0x4f000000, RNE, flags), kI32Max, NV);
  EXPECT_FP(f32ToI32(0xcf000001, RNE, flags), kI32Min, NV);  // -(2^31 + 256)
  EXPECT_FP(f32ToI64(0x4f000000, RNE, flags), 0x0000000080000000, 0);
  // 3e9 fits WU (result sign-extended from bit 31) but not W.
  EXPECT_FP(f32ToU32(0x4f32d05e, RNE, flags), 0xffffffffb2d05e00, 0);
  EXPECT_FP(f32ToI32(0x4f32d05e, RNE, flags), kI32Max, NV);
  // 64-bit edges in binary64.
  EXPECT_FP(f64ToI64(0xc3e0000000000000, RNE, flags), kI64Min, 0);             // -2^63
  EXPECT_FP(f64ToI64(0x43e0000000000000, RNE, flags), kI64Max, NV);            //  2^63
  EXPECT_FP(f64ToU64(0x43e0000000000000, RNE, flags), 0x8000000000000000, 0);  //  2^63
  EXPECT_FP(f64ToU64(0x43efffffffffffff, RNE, flags), 0xfffffffffffff800, 0);  //  2^64 - 2^11
  EXPECT_FP(f64ToU64(0x43f0000000000000, RNE, flags), kU64Max, NV);            //  2^64
  EXPECT_FP(f64ToU32(bitsOf(4294967295.0), RNE, flags), kU32Max, 0);
  EXPECT_FP(f64ToU32(bitsOf(4294967296.0), RNE, flags), kU32Max, NV);
  EXPECT_FP(f64ToI32(bitsOf(-2147483648.0), RNE, flags), kI32Min, 0);
  EXPECT_FP(f64ToI32(bitsOf(-2147483649.0), RNE, flags), kI32Min, NV);
}

TEST_P(FpToInt, RoundingIntoOutOfRangeIsInvalidNotInexact) {
  // 2^31 - 0.5: a tie between 2^31-1 (odd) and 2^31 (even, out of range).
  const uint64_t v = bitsOf(2147483647.5);
  EXPECT_FP(f64ToI32(v, RNE, flags), kI32Max, NV);
  EXPECT_FP(f64ToI32(v, RMM, flags), kI32Max, NV);
  EXPECT_FP(f64ToI32(v, RUP, flags), kI32Max, NV);
  EXPECT_FP(f64ToI32(v, RTZ, flags), kI32Max, NX);
  EXPECT_FP(f64ToI32(v, RDN, flags), kI32Max, NX);
  // -2^31 - 0.5 on the negative side.
  const uint64_t n = bitsOf(-2147483648.5);
  EXPECT_FP(f64ToI32(n, RNE, flags), kI32Min, NX);  // tie to even -2^31
  EXPECT_FP(f64ToI32(n, RMM, flags), kI32Min, NV);
  EXPECT_FP(f64ToI32(n, RDN, flags), kI32Min, NV);
  EXPECT_FP(f64ToI32(n, RUP, flags), kI32Min, NX);
}

TEST_P(FpToInt, TiesPerMode) {
  const uint32_t twoAndHalf = 0x40200000, minusTwoAndHalf = 0xc0200000;
  EXPECT_FP(f32ToI32(twoAndHalf, RNE, flags), 2, NX);
  EXPECT_FP(f32ToI32(twoAndHalf, RTZ, flags), 2, NX);
  EXPECT_FP(f32ToI32(twoAndHalf, RDN, flags), 2, NX);
  EXPECT_FP(f32ToI32(twoAndHalf, RUP, flags), 3, NX);
  EXPECT_FP(f32ToI32(twoAndHalf, RMM, flags), 3, NX);
  EXPECT_FP(f32ToI32(minusTwoAndHalf, RNE, flags), 0xfffffffffffffffe, NX);  // -2
  EXPECT_FP(f32ToI32(minusTwoAndHalf, RTZ, flags), 0xfffffffffffffffe, NX);
  EXPECT_FP(f32ToI32(minusTwoAndHalf, RDN, flags), 0xfffffffffffffffd, NX);  // -3
  EXPECT_FP(f32ToI32(minusTwoAndHalf, RUP, flags), 0xfffffffffffffffe, NX);
  EXPECT_FP(f32ToI32(minusTwoAndHalf, RMM, flags), 0xfffffffffffffffd, NX);
  EXPECT_FP(f64ToI64(bitsOf(3.5), RNE, flags), 4, NX);
  EXPECT_FP(f64ToI64(bitsOf(0.5), RNE, flags), 0, NX);
  EXPECT_FP(f64ToI64(bitsOf(0.5), RMM, flags), 1, NX);
  EXPECT_FP(f64ToI64(bitsOf(-0.5), RMM, flags), kU64Max, NX);  // -1
  EXPECT_FP(f64ToU64(bitsOf(1.75), RTZ, flags), 1, NX);
  EXPECT_FP(f64ToU64(bitsOf(1.25), RUP, flags), 2, NX);
}

TEST_P(FpToInt, SmallNegativeToUnsigned) {
  // Rounds to 0: only inexact. Rounds to -1: invalid, result 0.
  EXPECT_FP(f32ToU32(0xbf000000, RNE, flags), 0, NX);  // -0.5 ties to 0
  EXPECT_FP(f32ToU32(0xbf000000, RTZ, flags), 0, NX);
  EXPECT_FP(f32ToU32(0xbf000000, RUP, flags), 0, NX);
  EXPECT_FP(f32ToU32(0xbf000000, RDN, flags), 0, NV);
  EXPECT_FP(f32ToU32(0xbf000000, RMM, flags), 0, NV);
  EXPECT_FP(f64ToU64(kF64NegOne, RNE, flags), 0, NV);
  EXPECT_FP(f64ToU64(kF64NegZero, RNE, flags), 0, 0);
  EXPECT_FP(f32ToU64(0xbf400000, RNE, flags), 0, NV);  // -0.75 rounds to -1
}

TEST_P(FpToInt, ZerosAndSubnormals) {
  EXPECT_FP(f32ToI32(kF32NegZero, RNE, flags), 0, 0);
  EXPECT_FP(f64ToI64(kF64PosZero, RDN, flags), 0, 0);
  EXPECT_FP(f64ToI64(kF64MinSubnormal, RNE, flags), 0, NX);
  EXPECT_FP(f64ToI64(kF64MinSubnormal, RUP, flags), 1, NX);
  EXPECT_FP(f64ToI32(0x8000000000000001, RDN, flags), kU64Max, NX);  // -1
  EXPECT_FP(f32ToU32(kF32MinSubnormal, RUP, flags), 1, NX);
}

TEST_P(FpFromInt, TiesPerMode) {
  // 2^24 + 1 lies halfway between 2^24 and 2^24 + 2 in binary32.
  const int32_t v = 16777217;
  EXPECT_FP(i32ToF32(v, RNE, flags), 0x4b800000, NX);
  EXPECT_FP(i32ToF32(v, RTZ, flags), 0x4b800000, NX);
  EXPECT_FP(i32ToF32(v, RDN, flags), 0x4b800000, NX);
  EXPECT_FP(i32ToF32(v, RUP, flags), 0x4b800001, NX);
  EXPECT_FP(i32ToF32(v, RMM, flags), 0x4b800001, NX);
  EXPECT_FP(i32ToF32(-v, RNE, flags), 0xcb800000, NX);
  EXPECT_FP(i32ToF32(-v, RDN, flags), 0xcb800001, NX);
  EXPECT_FP(i32ToF32(-v, RUP, flags), 0xcb800000, NX);
  EXPECT_FP(i32ToF32(-v, RMM, flags), 0xcb800001, NX);
  // 2^24 + 3: tie between 2^24 + 2 (odd significand) and 2^24 + 4 (even).
  EXPECT_FP(i32ToF32(16777219, RNE, flags), 0x4b800002, NX);
  EXPECT_FP(i32ToF32(16777219, RTZ, flags), 0x4b800001, NX);
  // 2^53 + 1 in binary64.
  const int64_t w = (int64_t(1) << 53) + 1;
  EXPECT_FP(i64ToF64(w, RNE, flags), 0x4340000000000000, NX);
  EXPECT_FP(i64ToF64(w, RMM, flags), 0x4340000000000001, NX);
  EXPECT_FP(i64ToF64(-w, RDN, flags), 0xc340000000000001, NX);
  EXPECT_FP(u64ToF64(uint64_t(w), RUP, flags), 0x4340000000000001, NX);
}

TEST_P(FpFromInt, ExactAndExtremeValues) {
  EXPECT_FP(i32ToF32(0, RDN, flags), kF32PosZero, 0);  // never -0
  EXPECT_FP(i64ToF64(0, RDN, flags), kF64PosZero, 0);
  EXPECT_FP(i32ToF32(-1, RNE, flags), kF32NegOne, 0);
  EXPECT_FP(i32ToF64(INT32_MIN, RNE, flags), 0xc1e0000000000000, 0);
  EXPECT_FP(u32ToF64(UINT32_MAX, RNE, flags), bitsOf(4294967295.0), 0);  // always exact
  EXPECT_FP(i64ToF64(INT64_MIN, RNE, flags), 0xc3e0000000000000, 0);
  EXPECT_FP(i64ToF32(INT64_MIN, RNE, flags), 0xdf000000, 0);
  EXPECT_FP(u32ToF32(UINT32_MAX, RNE, flags), 0x4f800000, NX);  // 2^32
  EXPECT_FP(u32ToF32(UINT32_MAX, RTZ, flags), 0x4f7fffff, NX);
  EXPECT_FP(u64ToF64(UINT64_MAX, RNE, flags), 0x43f0000000000000, NX);  // 2^64
  EXPECT_FP(u64ToF64(UINT64_MAX, RTZ, flags), 0x43efffffffffffff, NX);
  EXPECT_FP(u64ToF32(UINT64_MAX, RNE, flags), 0x5f800000, NX);
  EXPECT_FP(i64ToF32(INT64_MAX, RDN, flags), 0x5effffff, NX);
  EXPECT_FP(i64ToF64(INT64_MAX, RNE, flags), 0x43e0000000000000, NX);
}

TEST_P(FpFloatToFloat, WideningIsExact) {
  EXPECT_FP(f32ToF64(kF32One, flags), kF64One, 0);
  EXPECT_FP(f32ToF64(kF32NegZero, flags), kF64NegZero, 0);
  EXPECT_FP(f32ToF64(kF32NegInf, flags), kF64NegInf, 0);
  EXPECT_FP(f32ToF64(kF32MinSubnormal, flags), 0x36a0000000000000, 0);  // 2^-149
  EXPECT_FP(f32ToF64(kF32MaxFinite, flags), 0x47efffffe0000000, 0);
  EXPECT_FP(f32ToF64(kF32QNaNPayload, flags), kCanonicalNaN64, 0);
  EXPECT_FP(f32ToF64(kF32NegQNaN, flags), kCanonicalNaN64, 0);
  EXPECT_FP(f32ToF64(kF32SNaN, flags), kCanonicalNaN64, NV);
}

TEST_P(FpFloatToFloat, NarrowingRounds) {
  const uint64_t oneThird = 0x3fd5555555555555;
  EXPECT_FP(f64ToF32(oneThird, RNE, flags), 0x3eaaaaab, NX);
  EXPECT_FP(f64ToF32(oneThird, RTZ, flags), 0x3eaaaaaa, NX);
  EXPECT_FP(f64ToF32(kF64One, RNE, flags), kF32One, 0);
  // 1 + 2^-24 is a binary32 tie.
  EXPECT_FP(f64ToF32(0x3ff0000010000000, RNE, flags), 0x3f800000, NX);
  EXPECT_FP(f64ToF32(0x3ff0000010000000, RMM, flags), 0x3f800001, NX);
  EXPECT_FP(f64ToF32(0xbff0000010000000, RDN, flags), 0xbf800001, NX);
  EXPECT_FP(f64ToF32(0xbff0000010000000, RUP, flags), 0xbf800000, NX);
  // Out of range.
  EXPECT_FP(f64ToF32(bitsOf(1e300), RNE, flags), kF32PosInf, OF | NX);
  EXPECT_FP(f64ToF32(bitsOf(1e300), RTZ, flags), kF32MaxFinite, OF | NX);
  EXPECT_FP(f64ToF32(bitsOf(-1e300), RUP, flags), 0xff7fffff, OF | NX);
  EXPECT_FP(f64ToF32(bitsOf(1e-300), RNE, flags), kF32PosZero, UF | NX);
  EXPECT_FP(f64ToF32(bitsOf(1e-300), RUP, flags), kF32MinSubnormal, UF | NX);
  EXPECT_FP(f64ToF32(bitsOf(-1e-300), RDN, flags), 0x80000001, UF | NX);
  EXPECT_FP(f64ToF32(kF64MinSubnormal, RNE, flags), kF32PosZero, UF | NX);
  // Specials.
  EXPECT_FP(f64ToF32(kF64NegInf, RNE, flags), kF32NegInf, 0);
  EXPECT_FP(f64ToF32(kF64NegZero, RNE, flags), kF32NegZero, 0);
  EXPECT_FP(f64ToF32(kF64QNaNPayload, RNE, flags), kCanonicalNaN32, 0);
  EXPECT_FP(f64ToF32(kF64SNaN, RNE, flags), kCanonicalNaN32, NV);
  // A binary32 subnormal delivered exactly.
  EXPECT_FP(f64ToF32(0x36a0000000000000, RNE, flags), kF32MinSubnormal, 0);
}

}  // namespace
}  // namespace strata::cpu::fp::test
