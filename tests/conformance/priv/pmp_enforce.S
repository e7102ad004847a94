# PMP enforcement: an NA4 entry ahead of an all-memory NAPOT entry decides
# for its word (lowest-numbered match wins); an access matching only part of
# an entry fails; TOR takes its lower bound from the previous pmpaddr; MPRV
# loads are checked with MPP's privilege; fetch stops at the edge of an
# executable region; unlocked entries do not bind M-mode, locked ones do and
# cannot be changed. Faults are load 5, store 7, fetch 1 with mtval = the
# address.
#include "test_macros.h"

#define NA4   0x10
#define NAPOT 0x18
#define TOR   0x08
#define LOCK  0x80
#define RWX   0x07

  .data
  .align 12
area:   .dword 0x1122334455667788, 0
  .align 12
area2:  .dword 0x0102030405060708
  .align 12
locked: .dword 0

  .text
  .align 12
  .skip 4096 - 8
edge_code:                      # the last two instructions of an allowed page...
  .option push
  .option norvc
  addi a0, a0, 1
  addi a0, a0, 1
denied_page:                    # ...run on into a page S-mode may not execute
  addi a0, a0, 1
  ret
  .option pop
  .align 12

TEST_BEGIN
  # Entry 0: NA4 on area's first word, read only. Entry 1: everything.
  la t0, area
  srli t0, t0, 2
  csrw pmpaddr0, t0
  li t0, -1
  csrw pmpaddr1, t0
  li t0, ((NAPOT | RWX) << 8) | (NA4 | 1)
  csrw pmpcfg0, t0
  la a1, area

  li TESTNUM, 1                 # S reads the read-only word, cannot write it
  EXPECT_MTRAP(CAUSE_STORE_ACCESS, 2f)
  ENTER_MODE(1, 1f)
1: lw a0, 0(a1)
  sw a0, 0(a1)
  j fail
2: CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD_REG(mtrap, TRAP_SEEN_TVAL, a1)
  CHECK_REG(a0, 0x55667788)

  li TESTNUM, 2                 # the next word belongs to entry 1: writable
  EXPECT_MTRAP(CAUSE_SUPERVISOR_ECALL, 2f)
  ENTER_MODE(1, 1f)
1: li a0, 0x99
  sw a0, 4(a1)
  ecall
2: lwu a0, 4(a1)
  CHECK_REG(a0, 0x99)

  li TESTNUM, 3                 # a doubleword matches entry 0 only in part
  li a0, 7
  EXPECT_MTRAP(CAUSE_LOAD_ACCESS, 2f)
  ENTER_MODE(0, 1f)
1: ld a0, 0(a1)
  j fail
2: CHECK_TRAP_FIELD_REG(mtrap, TRAP_SEEN_TVAL, a1)
  CHECK_REG(a0, 7)

  li TESTNUM, 4                 # M-mode ignores unlocked entries
  li a0, 0x5a
  sw a0, 0(a1)
  lw a0, 0(a1)
  CHECK_REG(a0, 0x5a)

  li TESTNUM, 5                 # MPRV with MPP = S: M's loads and stores checked as S
  li t0, MSTATUS_MPP
  csrc mstatus, t0
  li t0, MSTATUS_MPP_S | MSTATUS_MPRV
  csrs mstatus, t0
  EXPECT_MTRAP_NEXT(CAUSE_STORE_ACCESS)
  sw a0, 0(a1)
  li t0, MSTATUS_MPRV
  csrc mstatus, t0
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD_REG(mtrap, TRAP_SEEN_TVAL, a1)

  # Entry 0 OFF with area2 as TOR's lower bound; entry 1 TOR [area2, area2 +
  # 4 KiB) with no permissions; entry 2 everything.
  la t0, area2
  srli t0, t0, 2
  csrw pmpaddr0, t0
  li t1, 4096 >> 2
  add t1, t0, t1
  csrw pmpaddr1, t1
  li t0, -1
  csrw pmpaddr2, t0
  li t0, ((NAPOT | RWX) << 16) | (TOR << 8)
  csrw pmpcfg0, t0
  la a1, area2

  li TESTNUM, 6                 # U-mode cannot read inside the TOR range...
  EXPECT_MTRAP(CAUSE_LOAD_ACCESS, 2f)
  ENTER_MODE(0, 1f)
1: ld a0, 0(a1)
  j fail
2: CHECK_TRAP_FIELD_REG(mtrap, TRAP_SEEN_TVAL, a1)

  li TESTNUM, 7                 # ...but can just below and at its end
  EXPECT_MTRAP(CAUSE_USER_ECALL, 2f)
  ENTER_MODE(0, 1f)
1: ld a2, -8(a1)
  li t1, 4096
  add t1, a1, t1
  ld a0, 0(t1)
  ecall
2: CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)

  # Entry 0: NAPOT over denied_page, no permissions. (Regions that split a
  # page are left to the unit tests: QEMU 7.2 checks fetches per page.)
  la t0, denied_page
  srli t0, t0, 2
  ori t0, t0, (4096 >> 3) - 1
  csrw pmpaddr0, t0
  li t0, -1
  csrw pmpaddr1, t0
  li t0, ((NAPOT | RWX) << 8) | NAPOT
  csrw pmpcfg0, t0

  li TESTNUM, 8                 # S-mode runs up to the page edge, then faults
  li a0, 0
  EXPECT_MTRAP(CAUSE_FETCH_ACCESS, 2f)
  ENTER_MODE(1, edge_code)
2: CHECK_REG(a0, 2)
  la t0, denied_page
  CHECK_TRAP_FIELD_REG(mtrap, TRAP_SEEN_TVAL, t0)
  CHECK_TRAP_FIELD_REG(mtrap, TRAP_SEEN_EPC, t0)

  li TESTNUM, 9                 # M-mode runs it all
  li a0, 0
  call edge_code
  CHECK_REG(a0, 3)

  # Entry 0 locked NAPOT over the page `locked`, read only: binds M-mode too.
  la t0, locked
  srli t0, t0, 2
  ori t0, t0, (4096 >> 3) - 1
  csrw pmpaddr0, t0
  li t0, ((NAPOT | RWX) << 8) | LOCK | NAPOT | 1
  csrw pmpcfg0, t0
  la a1, locked

  li TESTNUM, 10
  EXPECT_MTRAP_NEXT(CAUSE_STORE_ACCESS)
  sd a1, 0(a1)
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD_REG(mtrap, TRAP_SEEN_TVAL, a1)
  ld a0, 0(a1)
  CHECK_REG(a0, 0)

  li TESTNUM, 11                # the locked entry keeps its address and config
  csrw pmpaddr0, zero
  li t0, ((NAPOT | RWX) << 8) | NAPOT | RWX
  csrw pmpcfg0, t0
  csrr a0, pmpcfg0
  andi a0, a0, 0xff
  CHECK_REG(a0, LOCK | NAPOT | 1)
  csrr a0, pmpaddr0
  slli a0, a0, 2
  li t0, ~0xfff
  and a0, a0, t0
  CHECK_REG_REG(a0, a1)
  TEST_PASS
