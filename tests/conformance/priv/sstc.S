# Sstc: menvcfg.STCE turns on the stimecmp CSR. With it, mip.STIP follows
# time >= stimecmp and is no longer writable from M; S-mode may use stimecmp
# only when menvcfg.STCE and mcounteren.TM are both set; the supervisor timer
# interrupt reaches S through mideleg or M when not delegated. Sstc needs the
# time CSR: QEMU's spike board has neither (rdtime traps there), so its build
# for the differential comparison (REFERENCE_QEMU) only checks that both are
# absent; strata must have them.
#include "test_macros.h"
#define CSR_STIMECMP 0x14d
#define CSR_MENVCFG 0x30a
#define MENVCFG_STCE (1ull << 63)

TEST_BEGIN
#ifdef REFERENCE_QEMU
  # ---- no time CSR: stimecmp must not exist either
  li TESTNUM, 1
  EXPECT_MTRAP_NEXT(CAUSE_ILLEGAL_INSTRUCTION)
  rdtime a0
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  li TESTNUM, 2
  EXPECT_MTRAP_NEXT(CAUSE_ILLEGAL_INSTRUCTION)
  csrr a0, CSR_STIMECMP
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  TEST_PASS
#endif
  # ---- the time CSR reads mtime (an unexpected trap fails the program)
  li TESTNUM, 1
  rdtime a0
  li a1, CLINT_MTIME
  ld a1, 0(a1)
  bltu a1, a0, fail
  # ---- menvcfg.STCE is writable (FIOM too); M reaches stimecmp regardless
  li t0, MENVCFG_STCE | 1
  csrw CSR_MENVCFG, t0
  TEST_CASE(10, a0, MENVCFG_STCE | 1, csrr a0, CSR_MENVCFG; li a1, MENVCFG_STCE | 1; and a0, a0, a1)
  TEST_CASE(11, a0, 0x123456789, li a1, 0x123456789; csrw CSR_STIMECMP, a1; csrr a0, CSR_STIMECMP)

  # ---- STIP follows time >= stimecmp; M can no longer set or clear it
  li s3, -1
  TEST_CASE(12, a0, MIP_STIP, csrw CSR_STIMECMP, zero; POLL_MIP(MIP_STIP, MIP_STIP))
  TEST_CASE(13, a0, 0, csrw CSR_STIMECMP, s3; POLL_MIP(MIP_STIP, 0))
  TEST_CASE(14, a0, 0, li t0, MIP_STIP; csrs mip, t0; csrr a0, mip; andi a0, a0, MIP_STIP)
  TEST_CASE(15, a0, MIP_STIP, csrw CSR_STIMECMP, zero; POLL_MIP(MIP_STIP, MIP_STIP); li t0, MIP_STIP; csrc mip, t0; csrr a0, mip; andi a0, a0, MIP_STIP)
  csrw CSR_STIMECMP, s3

  # ---- S-mode needs both menvcfg.STCE and mcounteren.TM
#define S_STIMECMP_ILLEGAL(n)                    \
  li TESTNUM, n;                                 \
  EXPECT_MTRAP(CAUSE_ILLEGAL_INSTRUCTION, 100f); \
  ENTER_MODE(1, 101f);                           \
101: csrr a0, CSR_STIMECMP;                      \
  j fail;                                        \
100: CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1);     \
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_PREV_MODE, 1)
  csrw mcounteren, zero
  S_STIMECMP_ILLEGAL(20)                          # TM = 0
  li t0, 2
  csrw mcounteren, t0
  csrw CSR_MENVCFG, zero
  S_STIMECMP_ILLEGAL(21)                          # STCE = 0
  li t0, MENVCFG_STCE
  csrw CSR_MENVCFG, t0
  li TESTNUM, 22                                  # both: S writes and reads it
  EXPECT_MTRAP(CAUSE_SUPERVISOR_ECALL, 1f)
  ENTER_MODE(1, 2f)
2: li a1, 0x7777
  csrw CSR_STIMECMP, a1
  csrr a0, CSR_STIMECMP
  ecall
1: CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  CHECK_REG(a0, 0x7777)
  csrw CSR_STIMECMP, s3

  # ---- the timer interrupt, delegated: S arms stimecmp and takes it
  li TESTNUM, 30
  la t0, strap_entry
  csrw stvec, t0
  li t0, MIP_STIP
  csrw mideleg, t0
  csrw mie, t0
  EXPECT_MTRAP(CAUSE_SUPERVISOR_ECALL, 3f)
  ENTER_MODE(1, 4f)
4: EXPECT_STRAP_NEXT(CAUSE_INTERRUPT_BIT | 5)
  rdtime t0
  addi t0, t0, 100
  csrw CSR_STIMECMP, t0
  csrsi sstatus, MSTATUS_SIE
  WAIT_FOR_TRAP(strap)
  csrci sstatus, MSTATUS_SIE
  ecall
3: CHECK_TRAP_FIELD(strap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(strap, TRAP_SEEN_CAUSE, CAUSE_INTERRUPT_BIT | 5)
  CHECK_TRAP_FIELD(strap, TRAP_SEEN_PREV_MODE, 1)
  # Rearming stimecmp in the future clears the pending bit.
  TEST_CASE(31, a0, 0, csrw CSR_STIMECMP, s3; POLL_MIP(MIP_STIP, 0))

  # ---- not delegated: M takes it
  li TESTNUM, 40
  csrw mideleg, zero
  li t0, MIP_STIP
  csrw mie, t0
  EXPECT_MTRAP_NEXT(CAUSE_INTERRUPT_BIT | 5)
  rdtime t0
  addi t0, t0, 100
  csrw CSR_STIMECMP, t0
  csrsi mstatus, MSTATUS_MIE
  WAIT_FOR_TRAP(mtrap)
  csrci mstatus, MSTATUS_MIE
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_CAUSE, CAUSE_INTERRUPT_BIT | 5)
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_PREV_MODE, 3)

  # ---- STCE off again: STIP is software's once more
  csrw CSR_STIMECMP, s3
  csrw CSR_MENVCFG, zero
  csrw mie, zero
  TEST_CASE(50, a0, MIP_STIP, li t0, MIP_STIP; csrs mip, t0; csrr a0, mip; andi a0, a0, MIP_STIP)
  TEST_CASE(51, a0, 0, li t0, MIP_STIP; csrc mip, t0; csrr a0, mip; andi a0, a0, MIP_STIP)
  TEST_PASS
