# RV64I register-register and register-immediate arithmetic, logic, shifts,
# compares, LUI/AUIPC, and the 32-bit W forms (results sign-extended from bit 31).
#include "test_macros.h"
TEST_BEGIN
  # add/sub wrap modulo 2^64.
  TEST_RR_OP(1, add, 0x0000000000000000, 0x0000000000000000, 0x0000000000000000)
  TEST_RR_OP(2, add, 0x000000000000000a, 0x0000000000000003, 0x0000000000000007)
  TEST_RR_OP(3, add, 0x8000000000000000, 0x7fffffffffffffff, 0x0000000000000001)  # signed overflow wraps
  TEST_RR_OP(4, add, 0x0000000000000000, 0xffffffffffffffff, 0x0000000000000001)
  TEST_RR_SRC1_EQ_DEST(5, add, 24, 13, 11)
  TEST_RR_SRC2_EQ_DEST(6, add, 25, 14, 11)
  TEST_RR_ZERODEST(7, add, 1, 2)
  TEST_RR_OP(8, sub, 0xffffffffffffffff, 0, 1)
  TEST_RR_OP(9, sub, 0x7fffffffffffffff, 0x8000000000000000, 1)
  TEST_RR_OP(10, sub, 0xfffffffffffff801, 0, 0x7ff)
  TEST_IMM_OP(11, addi, 0x00000000000007ff, 0, 0x7ff)
  TEST_IMM_OP(12, addi, 0xfffffffffffff800, 0, -0x800)
  TEST_IMM_OP(13, addi, 0x8000000000000000, 0x7fffffffffffffff, 1)
  TEST_IMM_SRC1_EQ_DEST(14, addi, 24, 13, 11)

  # Logic: 0xff00ff00.. patterns, results computed bitwise.
  TEST_RR_OP(20, and, 0x0f000f000f000f00, 0xff00ff00ff00ff00, 0x0f0f0f0f0f0f0f0f)
  TEST_RR_OP(21, or,  0xff0fff0fff0fff0f, 0xff00ff00ff00ff00, 0x0f0f0f0f0f0f0f0f)
  TEST_RR_OP(22, xor, 0xf00ff00ff00ff00f, 0xff00ff00ff00ff00, 0x0f0f0f0f0f0f0f0f)
  TEST_IMM_OP(23, andi, 0xff00ff00ff00ff00, 0xff00ff00ff00ff00, -256)    # -256 = ...ff00
  TEST_IMM_OP(24, andi, 0x0000000000000000, 0xff00ff00ff00ff00, 0x0f0)
  TEST_IMM_OP(25, ori,  0xff00ff00ff00ff0f, 0xff00ff00ff00ff00, 0x00f)
  TEST_IMM_OP(26, ori,  0xffffffffffffff0f, 0x0000000000000000, -0xf1)   # -0xf1 = ...ff0f
  TEST_IMM_OP(27, xori, 0xff00ff00ff00fff0, 0xff00ff00ff00ff0f, 0x0ff)
  TEST_IMM_OP(28, xori, 0x00ff00ff00ff01f0, 0xff00ff00ff00ff0f, -0x101)  # -0x101 = ...feff: flips every bit but bit 8

  # Compares: signed and unsigned views of the same bits.
  TEST_RR_OP(30, slt, 1, 0xffffffffffffffff, 0)       # -1 < 0
  TEST_RR_OP(31, slt, 0, 0, 0xffffffffffffffff)
  TEST_RR_OP(32, slt, 1, 0x8000000000000000, 0x7fffffffffffffff)
  TEST_RR_OP(33, slt, 0, 5, 5)
  TEST_RR_OP(34, sltu, 0, 0xffffffffffffffff, 0)      # 2^64-1 > 0 unsigned
  TEST_RR_OP(35, sltu, 1, 0, 0xffffffffffffffff)
  TEST_RR_OP(36, sltu, 0, 0x8000000000000000, 0x7fffffffffffffff)
  TEST_IMM_OP(37, slti, 1, 0xfffffffffffffffe, -1)    # -2 < -1
  TEST_IMM_OP(38, slti, 0, 0x7ff, 0x7ff)
  TEST_IMM_OP(39, sltiu, 1, 0x7fffffffffffffff, -1)   # imm sign-extends to 2^64-1 before the unsigned compare
  TEST_IMM_OP(40, sltiu, 0, 1, 0)
  TEST_IMM_OP(41, sltiu, 1, 0, 1)                     # seqz idiom

  # Shifts use the low 6 bits of the amount.
  TEST_RR_OP(50, sll, 0x8000000000000000, 1, 63)
  TEST_RR_OP(51, sll, 0x0000000000000002, 1, 65)      # 65 & 63 = 1
  TEST_RR_OP(52, sll, 0x1234567000000000, 0x0000000012345670, 32)
  TEST_RR_OP(53, srl, 0x0000000000000001, 0x8000000000000000, 63)
  TEST_RR_OP(54, srl, 0x0ffffffffffffff8, 0xffffffffffffff80, 4)
  TEST_RR_OP(55, srl, 0xffffffffffffff80, 0xffffffffffffff80, 64) # 64 & 63 = 0
  TEST_RR_OP(56, sra, 0xffffffffffffffff, 0x8000000000000000, 63)
  TEST_RR_OP(57, sra, 0xfffffffffffffff8, 0xffffffffffffff80, 4)
  TEST_RR_OP(58, sra, 0x0000000000000007, 0x0000000000000070, 4)
  TEST_IMM_OP(59, slli, 0x0000000100000000, 1, 32)
  TEST_IMM_OP(60, slli, 0x8000000000000000, 0xffffffffffffffff, 63)
  TEST_IMM_OP(61, srli, 0x00000000ffffffff, 0xffffffffffffffff, 32)
  TEST_IMM_OP(62, srli, 0x0000000000000001, 0x8000000000000000, 63)
  TEST_IMM_OP(63, srai, 0xffffffff80000000, 0x8000000000000000, 32)
  TEST_IMM_OP(64, srai, 0x0000000000000000, 0x7fffffffffffffff, 63)

  # LUI: imm << 12, sign-extended from bit 31.
  TEST_CASE(70, a0, 0x0000000012345000, lui a0, 0x12345)
  TEST_CASE(71, a0, 0xffffffff80000000, lui a0, 0x80000)
  TEST_CASE(72, a0, 0xfffffffffffff000, lui a0, 0xfffff)
  # AUIPC: pc + (imm << 12); compare with the label's own address.
  TEST_CASE(73, a0, 0x1000, 1: auipc a0, 1; la a1, 1b; sub a0, a0, a1)
  TEST_CASE(74, a0, 0xfffffffffffff000, 2: auipc a0, 0xfffff; la a1, 2b; sub a0, a0, a1)

  # W forms: operate on the low 32 bits, sign-extend the 32-bit result.
  TEST_RR_OP(80, addw, 0xffffffff80000000, 0x000000007fffffff, 1)
  TEST_RR_OP(81, addw, 0x0000000000000000, 0x00000000ffffffff, 1)
  TEST_RR_OP(82, addw, 0x0000000000000003, 0x1234567800000001, 0xabcdef0000000002)  # upper halves ignored
  TEST_RR_OP(83, subw, 0x000000007fffffff, 0xffffffff80000000, 1)
  TEST_RR_OP(84, subw, 0xffffffffffffffff, 0, 1)
  TEST_IMM_OP(85, addiw, 0xffffffff800007fe, 0x000000007fffffff, 0x7ff)   # 0x7fffffff+0x7ff = 0x800007fe
  TEST_IMM_OP(86, addiw, 0x0000000000000000, 0xffffffff00000001, -1)
  TEST_IMM_OP(87, addiw, 0x0000000012345678, 0xaaaaaaaa12345678, 0)       # sext.w idiom
  TEST_RR_OP(88, sllw, 0xffffffff80000000, 1, 31)
  TEST_RR_OP(89, sllw, 0x0000000000000002, 1, 33)                        # amount & 31
  TEST_RR_OP(90, srlw, 0x0000000000000001, 0xffffffff80000000, 31)
  TEST_RR_OP(91, srlw, 0x0000000007ffffff, 0x00000000ffffffff, 5)
  TEST_RR_OP(92, srlw, 0xffffffff80000000, 0x0000000080000000, 32)       # 32 & 31 = 0: result sign-extended
  TEST_RR_OP(93, sraw, 0xffffffffffffffff, 0x0000000080000000, 31)
  TEST_RR_OP(94, sraw, 0x0000000000000fff, 0xffffffff7ffff000, 19)
  TEST_IMM_OP(95, slliw, 0xffffffff80000000, 0x0000000000000001, 31)
  TEST_IMM_OP(96, slliw, 0x0000000012345670, 0xffffffff01234567, 4)
  TEST_IMM_OP(97, srliw, 0x000000000000ffff, 0x12345678ffffffff, 16)
  TEST_IMM_OP(98, srliw, 0xffffffff80000000, 0x0000000080000000, 0)
  TEST_IMM_OP(99, sraiw, 0xffffffffffff8000, 0x0000000080000000, 16)
  TEST_IMM_OP(100, sraiw, 0x0000000000007fff, 0xffffffff7fffffff, 16)
  TEST_PASS
