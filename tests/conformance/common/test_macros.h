/* Assembly test macros of the conformance programs. Each test loads its
   inputs, runs the code under test, and compares a register with a
   hand-computed value; a mismatch jumps to fail_values (crt.S), which prints
   the test number, the value seen and the value expected, and exits with
   tohost = (n << 1) | 1. gp holds the number of the running test; t6 is
   reserved for the expected value. Trap expectations use the layout of
   struct trap_expectation (conformance.h). */
#ifndef CONFORMANCE_TEST_MACROS_H
#define CONFORMANCE_TEST_MACROS_H

#include "encoding.h"

#define TESTNUM gp

/* REFERENCE_QEMU is defined only when a program is built for the QEMU side of
   the differential comparison (tests/conformance/CMakeLists.txt): where QEMU
   7.2 legally differs from strata, the `#ifdef REFERENCE_QEMU` branch holds
   QEMU's behaviour and the other branch pins strata's, so the conformance run
   accepts exactly one outcome. */

#define TEST_BEGIN \
  .text;           \
  .globl main;     \
  main:
#define TEST_PASS j pass

/* Fails the running test unless reg == expected (reg must not be t6). */
#define CHECK_REG(reg, expected) \
  li t6, expected;               \
  beq reg, t6, 9999f;            \
  mv a0, reg;                    \
  mv a1, t6;                     \
  j fail_values;                 \
  9999:

/* Fails the running test unless reg == expected_reg (neither may be t6). */
#define CHECK_REG_REG(reg, expected_reg) \
  mv t6, expected_reg;                   \
  beq reg, t6, 9999f;                    \
  mv a0, reg;                            \
  mv a1, t6;                             \
  j fail_values;                         \
  9999:

#define TEST_CASE(n, reg, expected, code...) \
  li TESTNUM, n;                             \
  code;                                      \
  CHECK_REG(reg, expected)

/* ---------------------------------------------------------------- integer */
#define TEST_RR_OP(n, inst, result, v1, v2) \
  TEST_CASE(n, a0, result, li a1, v1; li a2, v2; inst a0, a1, a2)
/* rd == rs1 and rd == rs2 read the sources before writing. */
#define TEST_RR_SRC1_EQ_DEST(n, inst, result, v1, v2) \
  TEST_CASE(n, a1, result, li a1, v1; li a2, v2; inst a1, a1, a2)
#define TEST_RR_SRC2_EQ_DEST(n, inst, result, v1, v2) \
  TEST_CASE(n, a2, result, li a1, v1; li a2, v2; inst a2, a1, a2)
/* Writes to x0 are discarded. */
#define TEST_RR_ZERODEST(n, inst, v1, v2) \
  TEST_CASE(n, x0, 0, li a1, v1; li a2, v2; inst x0, a1, a2)
#define TEST_IMM_OP(n, inst, result, v1, imm) \
  TEST_CASE(n, a0, result, li a1, v1; inst a0, a1, imm)
#define TEST_IMM_SRC1_EQ_DEST(n, inst, result, v1, imm) \
  TEST_CASE(n, a1, result, li a1, v1; inst a1, a1, imm)

/* Loads from label+offset (base register points at the label). */
#define TEST_LOAD(n, inst, result, offset, label) \
  TEST_CASE(n, a0, result, la a1, label; inst a0, offset(a1))
/* Stores `value` with `store` then reads it back with `load`. */
#define TEST_STORE(n, load, store, result, value, offset, label) \
  TEST_CASE(n, a0, result, la a1, label; li a2, value; store a2, offset(a1); load a0, offset(a1))

#define TEST_BR_TAKEN(n, inst, v1, v2) \
  li TESTNUM, n;                       \
  li a1, v1;                           \
  li a2, v2;                           \
  inst a1, a2, 9998f;                  \
  j fail;                              \
  9998:
#define TEST_BR_NOT_TAKEN(n, inst, v1, v2) \
  li TESTNUM, n;                           \
  li a1, v1;                               \
  li a2, v2;                               \
  inst a1, a2, fail

/* ---------------------------------------------------------------- floating point */
#define LOAD_S(freg, bits) \
  li t0, bits;             \
  fmv.w.x freg, t0
#define LOAD_D(freg, bits) \
  li t0, bits;             \
  fmv.d.x freg, t0
#define CLEAR_FLAGS csrwi fflags, 0
#define CHECK_FLAGS(flags) \
  csrr a1, fflags;         \
  CHECK_REG(a1, flags)
/* A single-precision result must be NaN-boxed: the upper 32 bits all ones. */
#define CHECK_FS(freg, bits) \
  fmv.x.d a0, freg;          \
  CHECK_REG(a0, (0xffffffff00000000 | (bits)))
#define CHECK_FD(freg, bits) \
  fmv.x.d a0, freg;          \
  CHECK_REG(a0, bits)

#define TEST_FP_S1(n, inst, flags, result, a) \
  li TESTNUM, n; LOAD_S(fa0, a); CLEAR_FLAGS; inst fa3, fa0; CHECK_FLAGS(flags); CHECK_FS(fa3, result)
#define TEST_FP_S2(n, inst, flags, result, a, b) \
  li TESTNUM, n; LOAD_S(fa0, a); LOAD_S(fa1, b); CLEAR_FLAGS; inst fa3, fa0, fa1; CHECK_FLAGS(flags); CHECK_FS(fa3, result)
#define TEST_FP_S2_RM(n, inst, rm, flags, result, a, b) \
  li TESTNUM, n; LOAD_S(fa0, a); LOAD_S(fa1, b); CLEAR_FLAGS; inst fa3, fa0, fa1, rm; CHECK_FLAGS(flags); CHECK_FS(fa3, result)
#define TEST_FP_S3(n, inst, flags, result, a, b, c) \
  li TESTNUM, n; LOAD_S(fa0, a); LOAD_S(fa1, b); LOAD_S(fa2, c); CLEAR_FLAGS; inst fa3, fa0, fa1, fa2; CHECK_FLAGS(flags); CHECK_FS(fa3, result)
#define TEST_FP_D1(n, inst, flags, result, a) \
  li TESTNUM, n; LOAD_D(fa0, a); CLEAR_FLAGS; inst fa3, fa0; CHECK_FLAGS(flags); CHECK_FD(fa3, result)
#define TEST_FP_D2(n, inst, flags, result, a, b) \
  li TESTNUM, n; LOAD_D(fa0, a); LOAD_D(fa1, b); CLEAR_FLAGS; inst fa3, fa0, fa1; CHECK_FLAGS(flags); CHECK_FD(fa3, result)
#define TEST_FP_D2_RM(n, inst, rm, flags, result, a, b) \
  li TESTNUM, n; LOAD_D(fa0, a); LOAD_D(fa1, b); CLEAR_FLAGS; inst fa3, fa0, fa1, rm; CHECK_FLAGS(flags); CHECK_FD(fa3, result)
#define TEST_FP_D3(n, inst, flags, result, a, b, c) \
  li TESTNUM, n; LOAD_D(fa0, a); LOAD_D(fa1, b); LOAD_D(fa2, c); CLEAR_FLAGS; inst fa3, fa0, fa1, fa2; CHECK_FLAGS(flags); CHECK_FD(fa3, result)

/* FP source, integer result (compares, fclass, fcvt to integer, fmv.x). */
#define TEST_FP_TO_INT_S(n, inst, flags, result, a) \
  li TESTNUM, n; LOAD_S(fa0, a); CLEAR_FLAGS; inst a0, fa0; CHECK_FLAGS(flags); CHECK_REG(a0, result)
#define TEST_FP_TO_INT_S_RM(n, inst, rm, flags, result, a) \
  li TESTNUM, n; LOAD_S(fa0, a); CLEAR_FLAGS; inst a0, fa0, rm; CHECK_FLAGS(flags); CHECK_REG(a0, result)
#define TEST_FP_CMP_S(n, inst, flags, result, a, b) \
  li TESTNUM, n; LOAD_S(fa0, a); LOAD_S(fa1, b); CLEAR_FLAGS; inst a0, fa0, fa1; CHECK_FLAGS(flags); CHECK_REG(a0, result)
#define TEST_FP_TO_INT_D(n, inst, flags, result, a) \
  li TESTNUM, n; LOAD_D(fa0, a); CLEAR_FLAGS; inst a0, fa0; CHECK_FLAGS(flags); CHECK_REG(a0, result)
#define TEST_FP_TO_INT_D_RM(n, inst, rm, flags, result, a) \
  li TESTNUM, n; LOAD_D(fa0, a); CLEAR_FLAGS; inst a0, fa0, rm; CHECK_FLAGS(flags); CHECK_REG(a0, result)
#define TEST_FP_CMP_D(n, inst, flags, result, a, b) \
  li TESTNUM, n; LOAD_D(fa0, a); LOAD_D(fa1, b); CLEAR_FLAGS; inst a0, fa0, fa1; CHECK_FLAGS(flags); CHECK_REG(a0, result)

/* Integer source, FP result (fcvt from integer, fmv.w.x/fmv.d.x). */
#define TEST_INT_TO_FP_S(n, inst, flags, result, a) \
  li TESTNUM, n; li a1, a; CLEAR_FLAGS; inst fa3, a1; CHECK_FLAGS(flags); CHECK_FS(fa3, result)
#define TEST_INT_TO_FP_S_RM(n, inst, rm, flags, result, a) \
  li TESTNUM, n; li a1, a; CLEAR_FLAGS; inst fa3, a1, rm; CHECK_FLAGS(flags); CHECK_FS(fa3, result)
#define TEST_INT_TO_FP_D(n, inst, flags, result, a) \
  li TESTNUM, n; li a1, a; CLEAR_FLAGS; inst fa3, a1; CHECK_FLAGS(flags); CHECK_FD(fa3, result)
#define TEST_INT_TO_FP_D_RM(n, inst, rm, flags, result, a) \
  li TESTNUM, n; li a1, a; CLEAR_FLAGS; inst fa3, a1, rm; CHECK_FLAGS(flags); CHECK_FD(fa3, result)

/* ---------------------------------------------------------------- traps */
#define TRAP_CAUSE 0
#define TRAP_RESUME 8
#define TRAP_COUNT 16
#define TRAP_SEEN_CAUSE 24
#define TRAP_SEEN_EPC 32
#define TRAP_SEEN_TVAL 40
#define TRAP_SEEN_PREV_MODE 48
#define TRAP_SEEN_STATUS 56

/* Announces one trap with mcause `cause` to the M-mode handler; it resumes at
   `resume` in M-mode (resume = 0: after the trapping instruction, same mode). */
#define EXPECT_MTRAP(cause, resume) \
  la t5, mtrap;                     \
  sd zero, TRAP_COUNT(t5);          \
  la t6, resume;                    \
  sd t6, TRAP_RESUME(t5);           \
  li t6, cause;                     \
  sd t6, TRAP_CAUSE(t5)
#define EXPECT_MTRAP_NEXT(cause) \
  la t5, mtrap;                  \
  sd zero, TRAP_COUNT(t5);       \
  sd zero, TRAP_RESUME(t5);      \
  li t6, cause;                  \
  sd t6, TRAP_CAUSE(t5)
#define EXPECT_STRAP(cause, resume) \
  la t5, strap;                     \
  sd zero, TRAP_COUNT(t5);          \
  la t6, resume;                    \
  sd t6, TRAP_RESUME(t5);           \
  li t6, cause;                     \
  sd t6, TRAP_CAUSE(t5)
#define EXPECT_STRAP_NEXT(cause) \
  la t5, strap;                  \
  sd zero, TRAP_COUNT(t5);       \
  sd zero, TRAP_RESUME(t5);      \
  li t6, cause;                  \
  sd t6, TRAP_CAUSE(t5)

/* Withdraws an announcement that may not have been used. */
#define CANCEL_MTRAP \
  la t5, mtrap;      \
  li t6, -1;         \
  sd t6, TRAP_CAUSE(t5)
#define CANCEL_STRAP \
  la t5, strap;      \
  li t6, -1;         \
  sd t6, TRAP_CAUSE(t5)

/* Checks one recorded field of mtrap/strap (field = TRAP_SEEN_*); uses t4/t5. */
#define CHECK_TRAP_FIELD(which, field, expected) \
  la t5, which;                                  \
  ld t4, field(t5);                              \
  CHECK_REG(t4, expected)
#define CHECK_TRAP_FIELD_REG(which, field, expected_reg) \
  la t5, which;                                          \
  ld t4, field(t5);                                      \
  CHECK_REG_REG(t4, expected_reg)

/* Switches to a lower mode at `label` (mret with MPP = mode: 0 U, 1 S). */
#define ENTER_MODE(mode, label) \
  li t0, MSTATUS_MPP;           \
  csrc mstatus, t0;             \
  li t0, ((mode) << 11);        \
  csrs mstatus, t0;             \
  la t0, label;                 \
  csrw mepc, t0;                \
  mret

/* ---------------------------------------------------------------- paging */
/* table[index] = a valid PTE for label's page: a leaf with `flags`, or a
   pointer to the next-level table with flags = 0. Uses t1/t2. */
#define SET_PTE_TO(table, index, label, flags) \
  la t1, table + (index) * 8;                   \
  la t2, label;                                 \
  srli t2, t2, 12;                              \
  slli t2, t2, 10;                              \
  ori t2, t2, (flags) | PTE_V;                  \
  sd t2, 0(t1)

/* A leaf PTE mapping physical address pa (aligned to the leaf's level) with
   `flags`; table[index] = value. Uses t1/t2. */
#define LEAF(pa, flags) ((((pa) >> 12) << 10) | (flags) | PTE_V)
#define SET_PTE(table, index, value) \
  la t1, table + (index) * 8;        \
  li t2, value;                      \
  sd t2, 0(t1)

/* satp = mode (SATP_MODE_SV39/48/57) | root's PPN, then sfence.vma; t0 keeps
   the satp value. Uses t1. */
#define SET_SATP(mode, root) \
  la t0, root;               \
  srli t0, t0, 12;           \
  li t1, mode;               \
  or t0, t0, t1;             \
  csrw satp, t0;             \
  sfence.vma

/* a0 = the A and D bits of table[index]. Uses t1. */
#define PTE_AD(table, index)     \
  la t1, table + (index) * 8;    \
  ld a0, 0(t1);                  \
  andi a0, a0, PTE_A | PTE_D

/* Runs code in `mode` (0 U, 1 S); it must end in an ecall back to M. */
#define MODE_RUN(n, mode, code...)                 \
  li TESTNUM, n;                                   \
  EXPECT_MTRAP(CAUSE_USER_ECALL + (mode), 100f);   \
  ENTER_MODE(mode, 101f);                          \
101: code;                                         \
  ecall;                                           \
  j fail;                                          \
100: CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)

/* Runs code in `mode` expecting a trap to M with `cause` from that mode; the
   code starts at local label 101, so a check after this can find it. */
#define MODE_TRAP(n, mode, cause, code...)            \
  li TESTNUM, n;                                      \
  EXPECT_MTRAP(cause, 100f);                          \
  ENTER_MODE(mode, 101f);                             \
101: code;                                            \
  j fail;                                             \
100: CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1);          \
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_PREV_MODE, mode)

/* MODE_TRAP with mtval = tval (the address of a page fault, the instruction
   bits of an illegal one). */
#define MODE_FAULT(n, mode, cause, tval, code...) \
  MODE_TRAP(n, mode, cause, code);                \
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_TVAL, tval)

/* An instruction illegal in `mode`: mtval must be its bits, read back from
   where it was assembled. Uses a2. */
#define MODE_ILLEGAL(n, mode, insn...)                  \
  MODE_TRAP(n, mode, CAUSE_ILLEGAL_INSTRUCTION, insn);  \
  la a2, 101b;                                          \
  lwu a2, 0(a2);                                        \
  CHECK_TRAP_FIELD_REG(mtrap, TRAP_SEEN_TVAL, a2)

#define S_RUN(n, code...) MODE_RUN(n, 1, code)
#define S_FAULT(n, cause, address, code...) MODE_FAULT(n, 1, cause, address, code)

/* ---------------------------------------------------------------- interrupts */
#define INTERRUPT_TIMEOUT (1 << 24)

/* Polls mip until (mip & bit) == want or the timeout passes; a0 = mip & bit.
   Device interrupt lines may take a short while to reach mip. Uses t3/t4. */
#define POLL_MIP(bit, want)  \
  li t3, INTERRUPT_TIMEOUT;  \
  97: csrr a0, mip;          \
  li t4, bit;                \
  and a0, a0, t4;            \
  li t4, want;               \
  beq a0, t4, 96f;           \
  addi t3, t3, -1;           \
  bnez t3, 97b;              \
  96:

/* Spins until which.count != 0 (which = mtrap or strap) or the timeout passes. Uses t3-t5. */
#define WAIT_FOR_TRAP(which)     \
  li t3, INTERRUPT_TIMEOUT;      \
  la t5, which;                  \
  98: ld t4, TRAP_COUNT(t5);     \
  bnez t4, 99f;                  \
  addi t3, t3, -1;               \
  bnez t3, 98b;                  \
  99:

#endif
