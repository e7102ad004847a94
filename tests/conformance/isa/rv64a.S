# RV64A: every AMO in .w and .d width, each with no ordering bit, .aq, .rl and
# .aqrl; LR/SC success and failure. An AMO returns the old memory value in rd
# (.w: sign-extended from bit 31) and writes op(old, rs2) back; .w touches
# only the addressed word, so the word above holds a 0xdeadbeef sentinel.
#include "test_macros.h"
  .data
  .align 12
amo_cell:
  .dword 0
  .align 12
other_cell:                      # a different page: never in amo_cell's reservation set
  .dword 0
  .text

# Runs `inst a0, a2, (a1)` on amo_cell = initial; checks rd and the new dword.
#define TEST_AMO(n, inst, initial, operand, expected_rd, expected_mem) \
  TEST_CASE(n, a0, expected_rd, la a1, amo_cell; li a3, initial; sd a3, 0(a1); li a2, operand; inst a0, a2, (a1)); \
  ld a0, 0(a1); CHECK_REG(a0, expected_mem)
/* The same test with each ordering variant, numbers n .. n+3. */
#define TEST_AMO4(n, op, initial, operand, expected_rd, expected_mem) \
  TEST_AMO(n, op, initial, operand, expected_rd, expected_mem);        \
  TEST_AMO(n+1, op.aq, initial, operand, expected_rd, expected_mem);   \
  TEST_AMO(n+2, op.rl, initial, operand, expected_rd, expected_mem);   \
  TEST_AMO(n+3, op.aqrl, initial, operand, expected_rd, expected_mem)

TEST_BEGIN
  # ---- .w: memory dword = 0xdeadbeef_<word>
  TEST_AMO4(1,  amoswap.w, 0xdeadbeef80000000, 0x12345678, 0xffffffff80000000, 0xdeadbeef12345678)
  TEST_AMO4(5,  amoadd.w,  0xdeadbeef7fffffff, 1,          0x000000007fffffff, 0xdeadbeef80000000)
  TEST_AMO4(9,  amoxor.w,  0xdeadbeef0f0f0f0f, 0xffff0000, 0x000000000f0f0f0f, 0xdeadbeeff0f00f0f)
  TEST_AMO4(13, amoand.w,  0xdeadbeeff0f0f0f0, 0xff00ff00, 0xfffffffff0f0f0f0, 0xdeadbeeff000f000)
  TEST_AMO4(17, amoor.w,   0xdeadbeef0000f0f0, 0x0f000000, 0x000000000000f0f0, 0xdeadbeef0f00f0f0)
  TEST_AMO4(21, amomin.w,  0xdeadbeef80000000, 1,          0xffffffff80000000, 0xdeadbeef80000000)  # -2^31 < 1
  TEST_AMO4(25, amomax.w,  0xdeadbeef80000000, 1,          0xffffffff80000000, 0xdeadbeef00000001)
  TEST_AMO4(29, amominu.w, 0xdeadbeef80000000, 1,          0xffffffff80000000, 0xdeadbeef00000001)  # 2^31 > 1 unsigned
  TEST_AMO4(33, amomaxu.w, 0xdeadbeef80000000, 1,          0xffffffff80000000, 0xdeadbeef80000000)
  # Carry out of bit 31 does not reach the next word; rs2's upper half is ignored.
  TEST_AMO(40, amoadd.w,  0xdeadbeefffffffff, 2, 0xffffffffffffffff, 0xdeadbeef00000001)
  TEST_AMO(41, amominu.w, 0xdeadbeef00000002, 0xffffffff00000001, 2, 0xdeadbeef00000001)
  TEST_AMO(42, amomin.w,  0xdeadbeef00000005, 0xffffffff, 5, 0xdeadbeefffffffff)            # -1 < 5
  TEST_AMO(43, amomax.w,  0xdeadbeef00000005, 0x00000000ffffffff, 5, 0xdeadbeef00000005)     # -1 < 5
  TEST_AMO(44, amomaxu.w, 0xdeadbeef00000005, 0x00000000ffffffff, 5, 0xdeadbeefffffffff)

  # ---- .d
  TEST_AMO4(50, amoswap.d, 0x1122334455667788, -1,                 0x1122334455667788, 0xffffffffffffffff)
  TEST_AMO4(54, amoadd.d,  0xffffffffffffffff, 2,                  0xffffffffffffffff, 1)
  TEST_AMO4(58, amoxor.d,  0xff00ff00ff00ff00, 0x0ff00ff00ff00ff0, 0xff00ff00ff00ff00, 0xf0f0f0f0f0f0f0f0)
  TEST_AMO4(62, amoand.d,  0xff00ff00ff00ff00, 0x0ff00ff00ff00ff0, 0xff00ff00ff00ff00, 0x0f000f000f000f00)
  TEST_AMO4(66, amoor.d,   0xff00ff00ff00ff00, 0x0ff00ff00ff00ff0, 0xff00ff00ff00ff00, 0xfff0fff0fff0fff0)
  TEST_AMO4(70, amomin.d,  0x8000000000000000, 1, 0x8000000000000000, 0x8000000000000000)
  TEST_AMO4(74, amomax.d,  0x8000000000000000, 1, 0x8000000000000000, 1)
  TEST_AMO4(78, amominu.d, 0x8000000000000000, 1, 0x8000000000000000, 1)
  TEST_AMO4(82, amomaxu.d, 0x8000000000000000, 1, 0x8000000000000000, 0x8000000000000000)
  TEST_AMO(86, amomin.d, 0xffffffffffffffff, 0xfffffffffffffffe, 0xffffffffffffffff, 0xfffffffffffffffe)
  # rd == rs2: rd gets the old value, memory the old rs2.
  TEST_CASE(87, a2, 7, la a1, amo_cell; li a3, 7; sd a3, 0(a1); li a2, 9; amoswap.d a2, a2, (a1))
  ld a0, 0(a1); CHECK_REG(a0, 9)
  # rd == x0: a pure atomic update.
  TEST_CASE(88, a0, 12, la a1, amo_cell; li a3, 7; sd a3, 0(a1); li a2, 5; amoadd.d x0, a2, (a1); ld a0, 0(a1))

  # ---- LR/SC
  # Success: sc writes and returns 0; lr.w sign-extends.
  TEST_CASE(100, a0, 0xffffffff80000001, la a1, amo_cell; li a3, 0x80000001; sd a3, 0(a1); lr.w a0, (a1))
  TEST_CASE(101, a4, 0, li a2, 0x2a; sc.w a4, a2, (a1))
  TEST_CASE(102, a0, 0x000000000000002a, ld a0, 0(a1))
  TEST_CASE(103, a0, 0x0123456789abcdef, li a3, 0x0123456789abcdef; sd a3, 0(a1); lr.d a0, (a1))
  TEST_CASE(104, a4, 0, li a2, -5; sc.d a4, a2, (a1))
  TEST_CASE(105, a0, -5, ld a0, 0(a1))
  # A second sc without a new lr fails (rd != 0) and leaves memory alone.
  li TESTNUM, 106
  li a2, 77
  sc.d a4, a2, (a1)
  beqz a4, fail
  TEST_CASE(107, a0, -5, ld a0, 0(a1))
  # sc to an address outside the reservation set fails.
  li TESTNUM, 108
  la a5, other_cell
  sd zero, 0(a5)
  lr.d a0, (a1)
  li a2, 99
  sc.d a4, a2, (a5)
  beqz a4, fail
  TEST_CASE(109, a0, 0, ld a0, 0(a5))
  # Ordering variants: lr.aq / sc.rl / .aqrl, and a counting loop (1 + 2 + ... + 10 = 55).
  TEST_CASE(110, a4, 0, sd zero, 0(a1); lr.w.aq a0, (a1); addi a0, a0, 3; sc.w.rl a4, a0, (a1))
  TEST_CASE(111, a4, 0, lr.d.aqrl a0, (a1); addi a0, a0, 4; sc.d.aqrl a4, a0, (a1))
  TEST_CASE(112, a0, 7, ld a0, 0(a1))
  TEST_CASE(113, a0, 55, sd zero, 0(a1); li a6, 10; 1: lr.d a0, (a1); add a0, a0, a6; sc.d a4, a0, (a1); bnez a4, 1b; addi a6, a6, -1; bnez a6, 1b; ld a0, 0(a1))
  TEST_PASS
