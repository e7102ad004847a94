// Shared helpers for the cpu/fp unit tests: short names for rounding modes and
// flags, and a check macro that compares both the result bits and the fflags.
#pragma once

#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <string>

#include "cpu/fp/fp_ops.h"

namespace strata::cpu::fp::test {

inline constexpr RoundingMode RNE = RoundingMode::RNE;
inline constexpr RoundingMode RTZ = RoundingMode::RTZ;
inline constexpr RoundingMode RDN = RoundingMode::RDN;
inline constexpr RoundingMode RUP = RoundingMode::RUP;
inline constexpr RoundingMode RMM = RoundingMode::RMM;
inline constexpr RoundingMode kAllModes[] = {RNE, RTZ, RDN, RUP, RMM};

inline constexpr uint32_t NX = fflags::NX;
inline constexpr uint32_t UF = fflags::UF;
inline constexpr uint32_t OF = fflags::OF;
inline constexpr uint32_t DZ = fflags::DZ;
inline constexpr uint32_t NV = fflags::NV;

// Bit patterns of exactly representable host constants, for readability.
inline uint32_t bitsOf(float v) { return std::bit_cast<uint32_t>(v); }
inline uint64_t bitsOf(double v) { return std::bit_cast<uint64_t>(v); }

// Frequently used binary32 patterns.
inline constexpr uint32_t kF32PosZero = 0x00000000, kF32NegZero = 0x80000000;
inline constexpr uint32_t kF32One = 0x3f800000, kF32NegOne = 0xbf800000, kF32Two = 0x40000000;
inline constexpr uint32_t kF32Half = 0x3f000000;
inline constexpr uint32_t kF32PosInf = 0x7f800000, kF32NegInf = 0xff800000;
inline constexpr uint32_t kF32QNaN = 0x7fc00000, kF32QNaNPayload = 0x7fc12345, kF32NegQNaN = 0xffc00000;
inline constexpr uint32_t kF32SNaN = 0x7f800001, kF32NegSNaN = 0xff800001;
inline constexpr uint32_t kF32MinSubnormal = 0x00000001, kF32MaxSubnormal = 0x007fffff;
inline constexpr uint32_t kF32MinNormal = 0x00800000, kF32MaxFinite = 0x7f7fffff;

// Frequently used binary64 patterns.
inline constexpr uint64_t kF64PosZero = 0, kF64NegZero = 0x8000000000000000;
inline constexpr uint64_t kF64One = 0x3ff0000000000000, kF64NegOne = 0xbff0000000000000;
inline constexpr uint64_t kF64Two = 0x4000000000000000, kF64Half = 0x3fe0000000000000;
inline constexpr uint64_t kF64PosInf = 0x7ff0000000000000, kF64NegInf = 0xfff0000000000000;
inline constexpr uint64_t kF64QNaN = 0x7ff8000000000000, kF64QNaNPayload = 0x7ff800000000abcd;
inline constexpr uint64_t kF64SNaN = 0x7ff0000000000001;
inline constexpr uint64_t kF64MinSubnormal = 1, kF64MaxSubnormal = 0x000fffffffffffff;
inline constexpr uint64_t kF64MinNormal = 0x0010000000000000, kF64MaxFinite = 0x7fefffffffffffff;

// Runs each test twice: with the host-FPU shortcuts and with pure software,
// which must agree bit for bit.
class BothPaths : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { setHostAcceleration(GetParam()); }
  void TearDown() override { setHostAcceleration(true); }
};

}  // namespace strata::cpu::fp::test

// Declares SUITE as a BothPaths suite; use TEST_P(SUITE, Name) for its tests.
#define FP_TEST_SUITE(SUITE)                                                           \
  using SUITE = ::strata::cpu::fp::test::BothPaths;                                    \
  INSTANTIATE_TEST_SUITE_P(Paths, SUITE, ::testing::Values(true, false),               \
                           [](const ::testing::TestParamInfo<bool>& info) {            \
                             return std::string(info.param ? "Host" : "Software");     \
                           })

// Evaluates CALL (which must write its flags into a variable named `flags`)
// with fresh flags, and checks the result bits and the exact flag set.
#define EXPECT_FP(CALL, EXPECTED_VALUE, EXPECTED_FLAGS)                                  \
  do {                                                                                   \
    uint32_t flags = 0;                                                                  \
    auto fpResult = (CALL);                                                              \
    EXPECT_EQ(fpResult, static_cast<decltype(fpResult)>(EXPECTED_VALUE))                 \
        << std::hex << #CALL << " -> 0x" << static_cast<uint64_t>(fpResult);             \
    EXPECT_EQ(flags, static_cast<uint32_t>(EXPECTED_FLAGS)) << #CALL;                    \
  } while (0)
