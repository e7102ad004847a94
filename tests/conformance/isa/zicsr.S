# Zicsr: csrrw/csrrs/csrrc and their immediate forms (old value in rd, x0
# source or uimm 0 means no write), read-only CSRs (reads fine, any write is an
# illegal instruction with mtval = the instruction bits), counters, misa.
#include "test_macros.h"
TEST_BEGIN
  # mscratch is a plain read/write register (it holds the trap stack: keep it in s4).
  csrr s4, mscratch
  TEST_CASE(1, a0, 0, csrw mscratch, zero; li a1, 0x1234; csrrw a0, mscratch, a1)
  TEST_CASE(2, a0, 0x1234, csrr a0, mscratch)
  TEST_CASE(3, a0, 0x1234, li a1, 0xf0000; csrrs a0, mscratch, a1)              # returns old, sets bits
  TEST_CASE(4, a0, 0xf1234, csrr a0, mscratch)
  TEST_CASE(5, a0, 0xf1234, li a1, 0x0f0ff; csrrc a0, mscratch, a1)             # returns old, clears bits
  TEST_CASE(6, a0, 0xf0000 | 0x0200, csrr a0, mscratch)                         # 0xf1234 & ~0x0f0ff = 0xf0200
  TEST_CASE(7, a0, 0xf0200, csrrwi a0, mscratch, 0x1f)
  TEST_CASE(8, a0, 0x1f, csrrsi a0, mscratch, 0)                               # uimm 0: read only
  TEST_CASE(9, a0, 0x1f, csrrci a0, mscratch, 0x5)
  TEST_CASE(10, a0, 0x1a, csrr a0, mscratch)                                     # 0x1f & ~5
  TEST_CASE(11, a0, 0x1a, csrrsi a0, mscratch, 0x4)
  TEST_CASE(12, a0, 0x1e, csrr a0, mscratch)
  TEST_CASE(13, a0, -1, li a1, -1; csrw mscratch, a1; csrr a0, mscratch)        # all 64 bits
  # rd == rs1: the old value lands in rd after the source was read.
  TEST_CASE(14, a1, -1, li a1, 77; csrrw a1, mscratch, a1)
  TEST_CASE(15, a0, 77, csrr a0, mscratch)
  # Reading through rd = x0 / writing through rs1 = x0 keeps things as they were.
  TEST_CASE(16, a0, 77, csrrs x0, mscratch, zero; csrrc a0, mscratch, zero)
  csrw mscratch, s4

  # Read-only CSRs: reading works...
  TEST_CASE(20, a0, 0, csrr a0, mhartid)
  TEST_CASE(21, a0, 0, csrrsi a0, mhartid, 0)                                    # uimm 0: no write, no trap
  # ...writing traps with the instruction bits in mtval.
  li TESTNUM, 22
  EXPECT_MTRAP_NEXT(CAUSE_ILLEGAL_INSTRUCTION)
  li a1, 1
1: csrrw a0, mhartid, a1
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  la a2, 1b
  CHECK_TRAP_FIELD_REG(mtrap, TRAP_SEEN_EPC, a2)
  lwu a2, 0(a2)
  CHECK_TRAP_FIELD_REG(mtrap, TRAP_SEEN_TVAL, a2)
  li TESTNUM, 23
  EXPECT_MTRAP_NEXT(CAUSE_ILLEGAL_INSTRUCTION)
2: csrrs a0, mvendorid, a1                                                      # rs1 != x0 writes
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  la a2, 2b
  lwu a2, 0(a2)
  CHECK_TRAP_FIELD_REG(mtrap, TRAP_SEEN_TVAL, a2)
  li TESTNUM, 24
  EXPECT_MTRAP_NEXT(CAUSE_ILLEGAL_INSTRUCTION)
  csrrwi zero, marchid, 0                                                         # csrrw always writes
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  li TESTNUM, 25
  EXPECT_MTRAP_NEXT(CAUSE_ILLEGAL_INSTRUCTION)
  csrrci a0, mimpid, 1
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  li TESTNUM, 26                                                                  # user counters are read-only too
  EXPECT_MTRAP_NEXT(CAUSE_ILLEGAL_INSTRUCTION)
  csrw cycle, a1
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  li TESTNUM, 27
  EXPECT_MTRAP_NEXT(CAUSE_ILLEGAL_INSTRUCTION)
  csrw time, a1
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  li TESTNUM, 28
  EXPECT_MTRAP_NEXT(CAUSE_ILLEGAL_INSTRUCTION)
  csrw instret, a1
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)

  # Counters move forward: instret counts the instructions in between.
  li TESTNUM, 30
  rdinstret a0
  nop
  nop
  rdinstret a1
  bleu a1, a0, fail
  li TESTNUM, 31
  rdcycle a0
  li a2, 100
3: addi a2, a2, -1
  bnez a2, 3b
  rdcycle a1
  bleu a1, a0, fail
  # time = CLINT mtime. QEMU's spike board leaves it to M-mode software
  # (rdtime traps as illegal there).
  li TESTNUM, 32
#ifdef REFERENCE_QEMU
  EXPECT_MTRAP_NEXT(CAUSE_ILLEGAL_INSTRUCTION)
  rdtime a0
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
#else
  rdtime a0
  li a3, CLINT_MTIME
  li a2, 10000
4: addi a2, a2, -1
  bnez a2, 4b
  ld a1, 0(a3)
  bleu a1, a0, fail                                # mtime moved on from time's read
  rdtime a0
  bltu a0, a1, fail                                # and time follows it
#endif
  TEST_CASE(33, a0, 0, csrr a0, minstret; csrr a1, instret; sltu a0, a1, a0)    # instret mirrors minstret

  # misa: MXL = 2 (64-bit) and at least I M A F D C S U (bits 8 12 0 5 3 2 18 20).
  TEST_CASE(40, a0, 2, csrr a0, misa; srli a0, a0, 62)
  TEST_CASE(41, a0, 0x14112d, csrr a0, misa; li a1, 0x14112d; and a0, a0, a1)
  # mstatus: SXL = UXL = 2 (64-bit) read-only fields.
  TEST_CASE(42, a0, 0xa, csrr a0, mstatus; srli a0, a0, 32; andi a0, a0, 0xf)
  # sstatus is a window on mstatus: SUM set through one shows in the other.
  TEST_CASE(43, a0, MSTATUS_SUM, li a1, MSTATUS_SUM; csrs sstatus, a1; csrr a0, mstatus; and a0, a0, a1)
  TEST_CASE(44, a0, 0, csrc mstatus, a1; csrr a0, sstatus; and a0, a0, a1)
  # sstatus hides the M-only fields (MPP, MIE).
  TEST_CASE(45, a0, 0, li a1, MSTATUS_MPP | MSTATUS_MIE; csrs mstatus, a1; csrr a0, sstatus; and a0, a0, a1; csrc mstatus, a1)
  TEST_PASS
