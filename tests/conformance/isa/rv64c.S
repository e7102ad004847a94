# RV64C: every compressed instruction of RV64GC, written with its explicit c.*
# mnemonic (the assembler refuses anything that does not encode in 16 bits),
# checking results, sign extension, immediate ranges, link values (pc + 2)
# and 32-bit instructions at 2-byte aligned addresses.
#include "test_macros.h"
  .data
  .align 4
cbuf:
  .dword 0x8000000180000002, 0xfedcba9876543210, 0x400921fb54442d18, 0
  .fill 64, 8, 0
  .text
TEST_BEGIN
  .option push
  .option rvc
  # ---- constants and immediates
  TEST_CASE(1, a0, -32, c.li a0, -32)
  TEST_CASE(2, a0, 31, c.li a0, 31)
  TEST_CASE(3, a0, 68, li a0, 100; c.addi a0, -32)
  TEST_CASE(4, a0, 131, li a0, 100; c.addi a0, 31)
  TEST_CASE(5, a0, 0xffffffff80000000, li a0, 0x7fffffff; c.addiw a0, 1)       # 32-bit wrap, sign-extended
  TEST_CASE(6, a0, 0xffffffff80000000, li a0, 0x180000000; c.addiw a0, 0)      # sext.w
  TEST_CASE(7, a0, 0x000000000001f000, c.lui a0, 0x1f)
  TEST_CASE(8, a0, 0xfffffffffffe0000, c.lui a0, 0xfffe0)                      # nzimm -32 << 12
  TEST_CASE(9, a0, 0x0000000000001000, c.lui a0, 1)
  # ---- sp-relative arithmetic
  TEST_CASE(10, a0, 496, mv s1, sp; li sp, 0; c.addi16sp sp, 496; mv a0, sp; mv sp, s1)
  TEST_CASE(11, a0, -512, mv s1, sp; li sp, 0; c.addi16sp sp, -512; mv a0, sp; mv sp, s1)
  TEST_CASE(12, a0, 1020, mv s1, sp; li sp, 0; c.addi4spn a0, sp, 1020; mv sp, s1)
  TEST_CASE(13, a0, 0x1004, mv s1, sp; li sp, 0x1000; c.addi4spn a0, sp, 4; mv sp, s1)
  # ---- shifts and andi (shift amounts up to 63)
  TEST_CASE(20, a0, 0x8000000000000000, li a0, 1; c.slli a0, 63)
  TEST_CASE(21, a0, 0x0000000000000001, li a0, 0x8000000000000000; c.srli a0, 63)
  TEST_CASE(22, a0, 0xffffffffffffffff, li a0, 0x8000000000000000; c.srai a0, 63)
  TEST_CASE(23, a0, 0x00000000ffffffff, li a0, -1; c.srli a0, 32)
  TEST_CASE(24, a0, 0xfffffffffffffff0, li a0, -1; c.andi a0, -16)
  TEST_CASE(25, a0, 0x000000000000001f, li a0, -1; c.andi a0, 31)
  TEST_CASE(26, a0, 0x0000000000000014, li a0, 5; c.slli a0, 2)
  # ---- register-register
  TEST_CASE(30, a0, 0x123456789, li a1, 0x123456789; li a0, 0; c.mv a0, a1)
  TEST_CASE(31, a0, 0x10, li a0, 7; li a1, 9; c.add a0, a1)
  TEST_CASE(32, a0, -2, li a0, 7; li a1, 9; c.sub a0, a1)
  TEST_CASE(33, a0, 0x0ff0, li a0, 0x0f0f; li a1, 0x00ff; c.xor a0, a1)
  TEST_CASE(34, a0, 0x0fff, li a0, 0x0f0f; li a1, 0x00ff; c.or a0, a1)
  TEST_CASE(35, a0, 0x000f, li a0, 0x0f0f; li a1, 0x00ff; c.and a0, a1)
  TEST_CASE(36, a0, 0xffffffff80000000, li a0, 0x7fffffff; li a1, 1; c.addw a0, a1)
  TEST_CASE(37, a0, 0x000000007fffffff, li a0, 0x80000000; li a1, 1; c.subw a0, a1)
  TEST_CASE(38, s0, 0x3, li s0, 1; li a5, 2; c.add s0, a5)
  # ---- loads and stores, register base (x8..x15)
  TEST_CASE(40, a0, 0xffffffff80000002, la a1, cbuf; c.lw a0, 0(a1))           # sign-extended
  TEST_CASE(41, a0, 0xffffffff80000001, la a1, cbuf; c.lw a0, 4(a1))
  TEST_CASE(42, a0, 0xfedcba9876543210, la a1, cbuf; c.ld a0, 8(a1))
  TEST_CASE(43, a0, 0x400921fb54442d18, la a1, cbuf; c.fld fa0, 16(a1); fmv.x.d a0, fa0)
  TEST_CASE(44, a0, 0x1234567812345678, la a1, cbuf; li a2, 0x12345678; c.sw a2, 24(a1); c.sw a2, 28(a1); c.ld a0, 24(a1))
  TEST_CASE(45, a0, 0x0123456789abcdef, la a1, cbuf; li a2, 0x0123456789abcdef; c.sd a2, 248(a1); ld a0, 248(a1))  # max c.sd offset
  TEST_CASE(46, a0, 0x400921fb54442d18, la a1, cbuf; c.fsd fa0, 240(a1); c.ld a0, 240(a1))
  TEST_CASE(47, a0, 0x12345678, la a1, cbuf; li a2, 0x12345678; c.sw a2, 124(a1); c.lw a0, 124(a1))  # max c.lw offset
  # ---- loads and stores, sp base
  mv s1, sp
  la sp, cbuf
  TEST_CASE(50, a0, 0xffffffff80000001, c.lwsp a0, 4(sp))
  TEST_CASE(51, a0, 0xfedcba9876543210, c.ldsp a0, 8(sp))
  TEST_CASE(52, a0, 0x400921fb54442d18, c.fldsp fa1, 16(sp); fmv.x.d a0, fa1)
  TEST_CASE(53, a0, 0x00000000cafef00d, li a2, 0xcafef00d; c.swsp a2, 252(sp); lwu a0, 252(sp))   # max offsets
  TEST_CASE(54, a0, 0x1122334455667788, li a2, 0x1122334455667788; c.sdsp a2, 504(sp); c.ldsp a0, 504(sp))
  TEST_CASE(55, a0, 0x400921fb54442d18, c.fsdsp fa1, 496(sp); c.ldsp a0, 496(sp))
  mv sp, s1
  # ---- control transfer
  li TESTNUM, 60
  c.j 1f
  j fail
1:
  li TESTNUM, 61
  li a0, 0
  c.beqz a0, 2f
  j fail
2:
  li TESTNUM, 62
  li a0, 1
  c.beqz a0, fail
  li TESTNUM, 63
  c.bnez a0, 3f
  j fail
3:
  li TESTNUM, 64
  li a0, 0
  c.bnez a0, fail
  li TESTNUM, 65
  la a1, 4f
  c.jr a1
  j fail
4:
  li TESTNUM, 66                  # c.jalr links pc + 2
  la a1, 6f
5: c.jalr a1
  j fail
6: la a2, 5b + 2
  bne ra, a2, fail
  # A 32-bit instruction at an address that is 2 mod 4.
  li TESTNUM, 67
  .align 2
  c.nop
  addi a0, zero, 0x123            # not compressible: 12-bit immediate
  li a2, 0x123
  bne a0, a2, fail
  # c.nop changes nothing (c.addi x0, 0)
  TEST_CASE(68, a0, 5, li a0, 5; c.nop; c.nop)
  # c.ebreak: breakpoint exception, mepc at the 2-byte instruction.
  li TESTNUM, 70
  EXPECT_MTRAP_NEXT(CAUSE_BREAKPOINT)
7: c.ebreak
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  la a2, 7b
  CHECK_TRAP_FIELD_REG(mtrap, TRAP_SEEN_EPC, a2)
  .option pop
  TEST_PASS
