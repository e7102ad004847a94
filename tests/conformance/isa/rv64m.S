# RV64M: multiply (low and the three high halves), divide and remainder
# (signed/unsigned, division by zero, signed overflow) and the W forms.
# Expected values: products written as sums of powers of two, e.g.
# (2^64-1)^2 = 2^128 - 2^65 + 1 -> high 2^64-2, low 1.
#include "test_macros.h"
TEST_BEGIN
  TEST_RR_OP(1, mul, 21, 3, 7)
  TEST_RR_OP(2, mul, 1, 0xffffffffffffffff, 0xffffffffffffffff)
  TEST_RR_OP(3, mul, 0, 0x8000000000000000, 2)
  TEST_RR_OP(4, mul, 0x0000000200000001, 0x0000000100000001, 0x0000000100000001)  # 2^64 + 2^33 + 1, low 64 bits
  TEST_RR_OP(5, mul, 0xfffffffffffffff9, -1, 7)
  TEST_RR_SRC1_EQ_DEST(6, mul, 143, 13, 11)
  TEST_RR_OP(10, mulh, 0, -1, -1)                                     # (-1)(-1) = 1
  TEST_RR_OP(11, mulh, 0x4000000000000000, 0x8000000000000000, 0x8000000000000000)  # 2^126
  TEST_RR_OP(12, mulh, 0xffffffffffffffff, -1, 1)                     # -1: high is all ones
  TEST_RR_OP(13, mulh, 0x3fffffffffffffff, 0x7fffffffffffffff, 0x7fffffffffffffff)  # 2^126 - 2^64 + 1
  TEST_RR_OP(14, mulh, 0xc000000000000000, 0x8000000000000000, 0x7fffffffffffffff)  # -2^126 + 2^63 -> high -2^62
  TEST_RR_OP(20, mulhu, 0xfffffffffffffffe, 0xffffffffffffffff, 0xffffffffffffffff)
  TEST_RR_OP(21, mulhu, 1, 0x8000000000000000, 2)
  TEST_RR_OP(22, mulhu, 0, 0xffffffff, 0xffffffff)                    # < 2^64
  TEST_RR_OP(30, mulhsu, 0xffffffffffffffff, -1, 0xffffffffffffffff)  # -(2^64-1): high -1
  TEST_RR_OP(31, mulhsu, 0x8000000000000000, 0x8000000000000000, 0xffffffffffffffff)  # -2^127 + 2^63
  TEST_RR_OP(32, mulhsu, 1, 2, 0x8000000000000000)                   # rs2 unsigned: 2 * 2^63 = 2^64
  TEST_RR_OP(33, mulhsu, 0xffffffffffffffff, -2, 0x8000000000000000)  # -2^64: high -1

  TEST_RR_OP(40, div, 3, 20, 6)
  TEST_RR_OP(41, div, -3, -20, 6)                                     # truncates toward zero
  TEST_RR_OP(42, div, -3, 20, -6)
  TEST_RR_OP(43, div, 3, -20, -6)
  TEST_RR_OP(44, div, -1, 20, 0)                                      # by zero: all ones
  TEST_RR_OP(45, div, 0x8000000000000000, 0x8000000000000000, -1)     # overflow: dividend
  TEST_RR_OP(50, divu, 3, 20, 6)
  TEST_RR_OP(51, divu, 0x2aaaaaaaaaaaaaa7, -20, 6)                    # (2^64-20)/6
  TEST_RR_OP(52, divu, 0xffffffffffffffff, 20, 0)
  TEST_RR_OP(53, divu, 0, 0x8000000000000000, -1)
  TEST_RR_OP(60, rem, 2, 20, 6)
  TEST_RR_OP(61, rem, -2, -20, 6)                                     # sign of the dividend
  TEST_RR_OP(62, rem, 2, 20, -6)
  TEST_RR_OP(63, rem, -2, -20, -6)
  TEST_RR_OP(64, rem, 20, 20, 0)                                      # by zero: dividend
  TEST_RR_OP(65, rem, 0, 0x8000000000000000, -1)                      # overflow: 0
  TEST_RR_OP(70, remu, 2, 20, 6)
  TEST_RR_OP(71, remu, 2, -20, 6)                                     # (2^64-20) mod 6
  TEST_RR_OP(72, remu, -20, -20, 0)

  TEST_RR_OP(80, mulw, 0xfffffffffffffffe, 0x7fffffff, 2)             # 0xfffffffe sign-extended
  TEST_RR_OP(81, mulw, 0x0000000000000015, 0xffffffff00000003, 0x1234567800000007)  # upper halves ignored
  TEST_RR_OP(82, mulw, 0x0000000000000001, 0xffffffff, 0xffffffff)
  TEST_RR_OP(90, divw, -3, -20, 6)
  TEST_RR_OP(91, divw, 0xffffffff80000000, 0x80000000, -1)            # overflow in 32 bits
  TEST_RR_OP(92, divw, -1, 20, 0)
  TEST_RR_OP(93, divw, 3, 0x1234567800000014, 0xabcdef0000000006)
  TEST_RR_OP(100, divuw, 0x000000002aaaaaa7, -20, 6)                  # 0xffffffec / 6
  TEST_RR_OP(101, divuw, 0xffffffff80000000, 0x80000000, 1)           # result sign-extended from bit 31
  TEST_RR_OP(102, divuw, 0xffffffffffffffff, 20, 0)
  TEST_RR_OP(110, remw, -2, -20, 6)
  TEST_RR_OP(111, remw, 0, 0x80000000, -1)
  TEST_RR_OP(112, remw, 0xffffffff80000000, 0x80000000, 0)            # by zero: sext(low 32 of dividend)
  TEST_RR_OP(120, remuw, 2, -20, 6)
  TEST_RR_OP(121, remuw, 0xffffffff80000000, 0x80000000, 0)
  TEST_RR_OP(122, remuw, 0xffffffffffffffff, 0xffffffff, 0x100000000) # divisor low 32 bits = 0
  TEST_PASS
