# Synchronous traps into M-mode: ecall from M, S and U (causes 11, 9, 8),
# ebreak (3), illegal instructions with mtval = the instruction bits
# (including FP ops with a reserved rounding mode and FP ops with mstatus.FS
# off), privileged instructions and CSRs used from a lower mode, mret's
# mstatus update, and FS dirty tracking.
#include "test_macros.h"
TEST_BEGIN
  # ---- ecall from M: mepc = the ecall, MPP = M
  li TESTNUM, 1
  EXPECT_MTRAP_NEXT(CAUSE_MACHINE_ECALL)
1: ecall
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  la a2, 1b
  CHECK_TRAP_FIELD_REG(mtrap, TRAP_SEEN_EPC, a2)
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_PREV_MODE, 3)
  # ---- ecall from S and U: resume at a label in M
  li TESTNUM, 2
  EXPECT_MTRAP(CAUSE_SUPERVISOR_ECALL, 3f)
  ENTER_MODE(1, 2f)
2: ecall
  j fail
3: CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_PREV_MODE, 1)
  la a2, 2b
  CHECK_TRAP_FIELD_REG(mtrap, TRAP_SEEN_EPC, a2)
  li TESTNUM, 3
  EXPECT_MTRAP(CAUSE_USER_ECALL, 5f)
  ENTER_MODE(0, 4f)
4: ecall
  j fail
5: CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_PREV_MODE, 0)
  la a2, 4b
  CHECK_TRAP_FIELD_REG(mtrap, TRAP_SEEN_EPC, a2)
  # ---- ebreak (32-bit form)
  li TESTNUM, 4
  EXPECT_MTRAP_NEXT(CAUSE_BREAKPOINT)
  .option push
  .option norvc
6: ebreak
  .option pop
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  la a2, 6b
  CHECK_TRAP_FIELD_REG(mtrap, TRAP_SEEN_EPC, a2)

  # ---- illegal instructions: mtval holds the instruction bits
#define TEST_ILLEGAL(n, bits)                     \
  li TESTNUM, n;                                  \
  EXPECT_MTRAP_NEXT(CAUSE_ILLEGAL_INSTRUCTION);   \
  .word bits;                                     \
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1);         \
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_TVAL, bits)
  TEST_ILLEGAL(10, 0xffffffff)
  TEST_ILLEGAL(11, 0x00a55553)          # fadd.s fa0, fa0, fa0 with rm = 5 (reserved)
  TEST_ILLEGAL(12, 0x00a56553)          # ... rm = 6 (reserved)
  TEST_ILLEGAL(13, 0x20a50533)          # add a0, a0, a0 with funct7 = 0x10 (reserved)
  TEST_ILLEGAL(14, 0x3020007f)          # an opcode of 64-bit instructions (bits 6:0 = 0x7f)
  TEST_ILLEGAL(15, 0x4215551b)          # sraiw a0, a0, 33: shamt[5] set is reserved for W shifts
  # All-zero 16 bits is the defined illegal instruction (mtval 0).
  li TESTNUM, 16
  EXPECT_MTRAP_NEXT(CAUSE_ILLEGAL_INSTRUCTION)
  .half 0x0000
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_TVAL, 0)
  # A dynamic rounding mode with frm holding a reserved value (5..7) is illegal.
  li TESTNUM, 17
  csrwi frm, 7
  EXPECT_MTRAP_NEXT(CAUSE_ILLEGAL_INSTRUCTION)
7: fadd.d fa0, fa1, fa2, dyn
  csrwi frm, 0
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  la a2, 7b
  lwu a2, 0(a2)
  CHECK_TRAP_FIELD_REG(mtrap, TRAP_SEEN_TVAL, a2)

  # ---- mstatus.FS = Off makes every FP instruction and FP CSR illegal
  li TESTNUM, 20
  li t0, MSTATUS_FS
  csrc mstatus, t0
  EXPECT_MTRAP_NEXT(CAUSE_ILLEGAL_INSTRUCTION)
  fadd.d fa0, fa1, fa2
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  li TESTNUM, 21
  EXPECT_MTRAP_NEXT(CAUSE_ILLEGAL_INSTRUCTION)
  csrr a0, fcsr
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  li TESTNUM, 22
  EXPECT_MTRAP_NEXT(CAUSE_ILLEGAL_INSTRUCTION)
  fmv.x.d a0, fa0
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  li TESTNUM, 23
  EXPECT_MTRAP_NEXT(CAUSE_ILLEGAL_INSTRUCTION)
  .option push
  .option rvc
  c.fld fa0, 0(a1)
  .option pop
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  # FS = Clean (2): an FP write makes it Dirty (3) and sets SD (bit 63).
  li TESTNUM, 24
  li t0, (2 << 13)
  csrs mstatus, t0
  fmv.d.x fa0, zero
  csrr a0, mstatus
  srli a1, a0, 13
  andi a1, a1, 3
  CHECK_REG(a1, 3)
  srli a1, a0, 63
  CHECK_REG(a1, 1)

  # ---- mret: MIE <- MPIE, MPIE <- 1, MPP <- U (least privileged), pc <- mepc
  li TESTNUM, 30
  li t0, MSTATUS_MPP | MSTATUS_MIE
  csrc mstatus, t0
  li t0, MSTATUS_MPP_M | MSTATUS_MPIE
  csrs mstatus, t0
  csrw mie, zero
  la t0, 8f
  csrw mepc, t0
  mret
  j fail
8: csrr a0, mstatus
  li t0, MSTATUS_MPP | MSTATUS_MPIE | MSTATUS_MIE
  and a0, a0, t0
  CHECK_REG(a0, MSTATUS_MPIE | MSTATUS_MIE)        # MPP = 0
  csrci mstatus, MSTATUS_MIE
  # mret with MPP = M and MPIE = 0 clears MIE.
  li TESTNUM, 31
  li t0, MSTATUS_MPP_M
  csrs mstatus, t0
  li t0, MSTATUS_MPIE
  csrc mstatus, t0
  csrsi mstatus, MSTATUS_MIE
  la t0, 9f
  csrw mepc, t0
  mret
9: csrr a0, mstatus
  andi a0, a0, MSTATUS_MIE
  CHECK_REG(a0, 0)

  # ---- privileged instructions and CSRs from lower modes
  MODE_ILLEGAL(40, 1, csrr a0, mstatus)      # M CSRs from S
  MODE_ILLEGAL(41, 1, csrw mscratch, a0)
  MODE_ILLEGAL(42, 0, csrr a0, sstatus)      # S CSRs from U
  MODE_ILLEGAL(43, 0, csrr a0, mhartid)
  MODE_ILLEGAL(44, 1, mret)                  # mret from S
  MODE_ILLEGAL(45, 0, sret)                  # sret from U
  MODE_ILLEGAL(46, 0, sfence.vma)            # sfence.vma from U
  MODE_ILLEGAL(47, 0, csrw satp, a0)          # satp from U
  # Counters: with mcounteren = 0, S and U cannot read cycle/instret.
  csrw mcounteren, zero
  csrw scounteren, zero
  MODE_ILLEGAL(50, 1, rdcycle a0)
  MODE_ILLEGAL(51, 0, rdinstret a0)
  # mcounteren.CY/IR let S read; U also needs scounteren.
  li t0, 5
  csrw mcounteren, t0
  li TESTNUM, 52
  EXPECT_MTRAP(CAUSE_SUPERVISOR_ECALL, 11f)
  ENTER_MODE(1, 10f)
10: rdcycle a0
  rdinstret a0
  ecall
11: CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  MODE_ILLEGAL(53, 0, rdcycle a0)
  li t0, 5
  csrw scounteren, t0
  li TESTNUM, 54
  EXPECT_MTRAP(CAUSE_USER_ECALL, 13f)
  ENTER_MODE(0, 12f)
12: rdcycle a0
  rdinstret a0
  ecall
13: CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  TEST_PASS
