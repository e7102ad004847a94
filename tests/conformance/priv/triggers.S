# Sdtrig address triggers (mcontrol6, action 0 = breakpoint exception):
# tinfo/tselect, execute triggers in M (MIE set) and U, load and store
# triggers with mtval = the address and the store not performed, the >= and
# < match kinds, the mode bits, no firing in M with MIE clear, and a trigger
# armed on code and data that were already run hot (translated by the JIT).
#include "test_macros.h"
#define TSELECT 0x7a0
#define TDATA1 0x7a1
#define TDATA2 0x7a2
#define TINFO 0x7a4
#define MC6 (6 << 60)
#define MC6_M (1 << 6)
#define MC6_S (1 << 4)
#define MC6_U (1 << 3)
#define MC6_EXEC 4
#define MC6_STORE 2
#define MC6_LOAD 1
#define MC6_GE (2 << 7)
#define MC6_LT (3 << 7)
#define DISABLED (15 << 60)

/* Arms trigger 0 with tdata1 = bits, tdata2 = the address in reg. */
#define ARM(bits, reg)   \
  csrw TSELECT, zero;    \
  csrw TDATA2, reg;      \
  li t0, MC6 | (bits);   \
  csrw TDATA1, t0
#define DISARM csrw TSELECT, zero; csrw TDATA1, zero

TEST_BEGIN
  csrsi mstatus, MSTATUS_MIE   # triggers fire in M only with MIE set (mie = 0: no interrupts)
  # ---- tinfo lists type 6; tselect keeps its value on a write of a missing trigger
  li TESTNUM, 1
  csrr a0, TINFO
  andi a0, a0, 1 << 6
  CHECK_REG(a0, 1 << 6)
  li TESTNUM, 2
  li t0, 1
  csrw TSELECT, t0
  li t0, 99
  csrw TSELECT, t0
  csrr a0, TSELECT
  CHECK_REG(a0, 1)
  # ---- tdata1 reads back the written mcontrol6; 0 disables (type 15)
  li TESTNUM, 3
  la a1, exec_target
  ARM(MC6_M | MC6_EXEC, a1)
  csrr a0, TDATA1
  CHECK_REG(a0, MC6 | MC6_M | MC6_EXEC)
  DISARM
  csrr a0, TDATA1
  CHECK_REG(a0, DISABLED)

  # ---- warm up: run the call target and the load many times (JIT translates them)
  li s0, 2000
1: call exec_target
  la a1, data
  ld a0, 0(a1)
  addi s0, s0, -1
  bnez s0, 1b

  # ---- execute trigger in M: breakpoint before the instruction, mepc = mtval = its pc
  li TESTNUM, 4
  la a1, exec_target
  ARM(MC6_M | MC6_EXEC, a1)
  EXPECT_MTRAP(CAUSE_BREAKPOINT, 2f)
  call exec_target
  j fail
2: CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  la a2, exec_target
  CHECK_TRAP_FIELD_REG(mtrap, TRAP_SEEN_EPC, a2)
  CHECK_TRAP_FIELD_REG(mtrap, TRAP_SEEN_TVAL, a2)
  # ---- ... not with MIE clear in M
  li TESTNUM, 5
  csrci mstatus, MSTATUS_MIE
  li a0, 0
  call exec_target
  CHECK_REG(a0, 1)
  csrsi mstatus, MSTATUS_MIE
  # ---- ... not when only the U bit is set
  li TESTNUM, 6
  la a1, exec_target
  ARM(MC6_U | MC6_EXEC, a1)
  li a0, 0
  call exec_target
  CHECK_REG(a0, 1)
  # ---- ... in U with the U bit: previous mode U
  li TESTNUM, 7
  la a1, 3f
  ARM(MC6_U | MC6_EXEC, a1)
  EXPECT_MTRAP(CAUSE_BREAKPOINT, 4f)
  ENTER_MODE(0, 3f)
3: nop
  j fail
4: CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_PREV_MODE, 0)
  la a2, 3b
  CHECK_TRAP_FIELD_REG(mtrap, TRAP_SEEN_EPC, a2)
  DISARM

  # ---- load trigger: the (hot) load traps with mtval = the address; a store does not
  li TESTNUM, 8
  la a1, data
  ARM(MC6_M | MC6_LOAD, a1)
  EXPECT_MTRAP(CAUSE_BREAKPOINT, 6f)
5: ld a0, 0(a1)
  j fail
6: CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  la a2, 5b
  CHECK_TRAP_FIELD_REG(mtrap, TRAP_SEEN_EPC, a2)
  la a2, data
  CHECK_TRAP_FIELD_REG(mtrap, TRAP_SEEN_TVAL, a2)
  li TESTNUM, 9
  la a1, data
  li t1, 0x55
  sd t1, 0(a1)
  DISARM
  ld a0, 0(a1)
  CHECK_REG(a0, 0x55)
  # ---- store trigger: the store traps and memory keeps its old value
  li TESTNUM, 10
  la a1, data
  ARM(MC6_M | MC6_STORE, a1)
  li t1, 0x77
  EXPECT_MTRAP(CAUSE_BREAKPOINT, 7f)
  sd t1, 0(a1)
  j fail
7: CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  DISARM
  la a1, data
  ld a0, 0(a1)
  CHECK_REG(a0, 0x55)
  # ---- >= match on stores: below the bound is fine, at or above traps
  li TESTNUM, 11
  la a1, data + 8
  ARM(MC6_M | MC6_STORE | MC6_GE, a1)
  la a1, data
  sd zero, 0(a1)
  EXPECT_MTRAP(CAUSE_BREAKPOINT, 8f)
  sd zero, 16(a1)
  j fail
8: CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  la a2, data + 16
  CHECK_TRAP_FIELD_REG(mtrap, TRAP_SEEN_TVAL, a2)
  # ---- < match on loads in S: an address below the bound traps
  li TESTNUM, 12
  la a1, data + 8
  ARM(MC6_S | MC6_LOAD | MC6_LT, a1)
  la a1, data
  ld a0, 8(a1)                 # M: the S-only trigger does not fire
  EXPECT_MTRAP(CAUSE_BREAKPOINT, 10f)
  ENTER_MODE(1, 9f)
9: ld a0, 8(a1)                # S, at the bound: no match
  ld a0, 0(a1)                 # S, below: breakpoint
  j fail
10: CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_PREV_MODE, 1)
  la a2, data
  CHECK_TRAP_FIELD_REG(mtrap, TRAP_SEEN_TVAL, a2)
  DISARM
  TEST_PASS

exec_target:
  addi a0, a0, 1
  ret

  .data
  .align 4
data: .dword 0x1234, 0, 0, 0
