# S-mode: medeleg/mideleg delegation to the S-mode trap vector (scause,
# sepc, stval, SPP), sret's sstatus update, and the mstatus trap-virtualisation
# bits: TSR (sret in S traps), TW (wfi in S traps), TVM (satp and sfence.vma
# in S trap), each reported to M-mode as an illegal instruction.
#include "test_macros.h"
TEST_BEGIN
  la t0, strap_entry
  csrw stvec, t0
  # ---- delegated ecall from U goes to S; the undelegated ecall from S goes to M
  li t0, (1 << CAUSE_USER_ECALL) | (1 << CAUSE_ILLEGAL_INSTRUCTION) | (1 << CAUSE_BREAKPOINT)
  csrw medeleg, t0
  TEST_CASE(1, a0, (1 << CAUSE_USER_ECALL) | (1 << CAUSE_ILLEGAL_INSTRUCTION) | (1 << CAUSE_BREAKPOINT), csrr a0, medeleg)
  li TESTNUM, 2
  ENTER_MODE(1, 1f)
1: # S-mode: drop to U with sret (SPP = 0, sepc = 2f)
  EXPECT_STRAP(CAUSE_USER_ECALL, 3f)
  li t0, MSTATUS_SPP
  csrc sstatus, t0
  la t0, 2f
  csrw sepc, t0
  sret
2: ecall                            # U-mode
  j fail
3: # back in S-mode through the S handler
  CHECK_TRAP_FIELD(strap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(strap, TRAP_SEEN_CAUSE, CAUSE_USER_ECALL)
  CHECK_TRAP_FIELD(strap, TRAP_SEEN_PREV_MODE, 0)
  la a2, 2b
  CHECK_TRAP_FIELD_REG(strap, TRAP_SEEN_EPC, a2)
  # Illegal instruction in U, delegated: stval = instruction bits.
  li TESTNUM, 3
  EXPECT_STRAP(CAUSE_ILLEGAL_INSTRUCTION, 5f)
  li t0, MSTATUS_SPP
  csrc sstatus, t0
  la t0, 4f
  csrw sepc, t0
  sret
4: .word 0xffffffff
  j fail
5: CHECK_TRAP_FIELD(strap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(strap, TRAP_SEEN_TVAL, 0xffffffff)
  # ebreak in S, delegated: handled in S, SPP = 1.
  li TESTNUM, 4
  EXPECT_STRAP_NEXT(CAUSE_BREAKPOINT)
  ebreak
  CHECK_TRAP_FIELD(strap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(strap, TRAP_SEEN_PREV_MODE, 1)
  # ecall from S is not delegated: M sees cause 9.
  li TESTNUM, 5
  EXPECT_MTRAP(CAUSE_SUPERVISOR_ECALL, 6f)
  ecall
  j fail
6: CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_PREV_MODE, 1)
  # Delegation never applies to traps taken in M-mode: ebreak in M stays in M.
  li TESTNUM, 6
  EXPECT_MTRAP_NEXT(CAUSE_BREAKPOINT)
  ebreak
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(strap, TRAP_COUNT, 1)   # still the one trap of test 4

  # ---- sret: SIE <- SPIE, SPIE <- 1, SPP <- U
  li TESTNUM, 10
  ENTER_MODE(1, 7f)
7: li t0, MSTATUS_SPP | MSTATUS_SPIE
  csrs sstatus, t0
  csrci sstatus, MSTATUS_SIE
  la t0, 8f
  csrw sepc, t0
  sret                               # to S (SPP was 1)
8: csrr a0, sstatus
  li t0, MSTATUS_SPP | MSTATUS_SPIE | MSTATUS_SIE
  and a0, a0, t0
  CHECK_REG(a0, MSTATUS_SPIE | MSTATUS_SIE)
  csrci sstatus, MSTATUS_SIE
  # Back to M for the trap-virtualisation tests.
  EXPECT_MTRAP(CAUSE_SUPERVISOR_ECALL, 9f)
  ecall
9:
  # ---- mideleg: SSIP delegated, raised by S itself through sip
  li TESTNUM, 11
  li t0, MIP_SSIP | MIP_STIP | MIP_SEIP
  csrw mideleg, t0
  csrr a0, mideleg
  and a0, a0, t0                     # (QEMU's hypervisor extension adds read-only-one VS bits)
  CHECK_REG(a0, MIP_SSIP | MIP_STIP | MIP_SEIP)
  li TESTNUM, 12
  ENTER_MODE(1, 10f)
10: li t0, MIP_SSIP
  csrs sie, t0
  la t5, strap
  sd zero, TRAP_COUNT(t5)
  sd zero, TRAP_RESUME(t5)
  li t6, CAUSE_INTERRUPT_BIT | 1
  sd t6, TRAP_CAUSE(t5)
  csrs sip, t0                       # pending, but SIE = 0 in sstatus: nothing yet
  CHECK_TRAP_FIELD(strap, TRAP_COUNT, 0)
  csrsi sstatus, MSTATUS_SIE         # now taken
  nop
  CHECK_TRAP_FIELD(strap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(strap, TRAP_SEEN_CAUSE, CAUSE_INTERRUPT_BIT | 1)
  csrci sstatus, MSTATUS_SIE
  li t0, MIP_SSIP
  csrc sip, t0
  csrr a0, sip
  andi a0, a0, MIP_SSIP
  CHECK_REG(a0, 0)
  # sie/sip only show delegated bits; mie shows what S wrote through sie.
  EXPECT_MTRAP(CAUSE_SUPERVISOR_ECALL, 11f)
  ecall
11: li TESTNUM, 13
  csrw mie, zero
  li t0, MIP_SSIP | MIP_STIP
  csrw sie, t0
  csrr a0, mie
  CHECK_REG(a0, MIP_SSIP | MIP_STIP)
  li TESTNUM, 14
  li t0, MIP_SEIP
  csrw mideleg, t0                   # SSIP/STIP no longer delegated
  csrr a0, sie
  CHECK_REG(a0, 0)
  csrw mie, zero
  csrw mideleg, zero
  # STIP set by M (mip.STIP is writable from M), delegated to S.
  li TESTNUM, 15
  li t0, MIP_STIP
  csrw mideleg, t0
  csrw mie, t0
  ENTER_MODE(1, 12f)
12: EXPECT_STRAP_NEXT(CAUSE_INTERRUPT_BIT | 5)
  csrsi sstatus, MSTATUS_SIE
  EXPECT_MTRAP(CAUSE_SUPERVISOR_ECALL, 13f)
  ecall                              # M raises STIP and returns
13: # (we are in M now: raise STIP, go back to S with SIE set)
  li t0, MIP_STIP
  csrs mip, t0
  li t0, MSTATUS_SIE
  csrs mstatus, t0
  ENTER_MODE(1, 14f)
14: nop
  CHECK_TRAP_FIELD(strap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(strap, TRAP_SEEN_CAUSE, CAUSE_INTERRUPT_BIT | 5)
  EXPECT_MTRAP(CAUSE_SUPERVISOR_ECALL, 15f)
  ecall
15: li t0, MIP_STIP
  csrc mip, t0
  csrw mie, zero
  csrw mideleg, zero
  csrci mstatus, MSTATUS_SIE

  # ---- TSR: sret in S-mode is illegal
  csrw medeleg, zero
  li t0, MSTATUS_TSR
  csrs mstatus, t0
  MODE_ILLEGAL(20, 1, sret)
  li t0, MSTATUS_TSR
  csrc mstatus, t0
  # ---- TW: wfi in S-mode is illegal
  li t0, MSTATUS_TW
  csrs mstatus, t0
  MODE_ILLEGAL(21, 1, wfi)
  li t0, MSTATUS_TW
  csrc mstatus, t0
  # ---- TVM: satp accesses and sfence.vma in S-mode are illegal
  li t0, MSTATUS_TVM
  csrs mstatus, t0
  MODE_ILLEGAL(22, 1, csrr a0, satp)
  MODE_ILLEGAL(23, 1, csrw satp, zero)
  MODE_ILLEGAL(24, 1, sfence.vma)
  MODE_ILLEGAL(25, 1, sfence.vma a0, a1)
  li t0, MSTATUS_TVM
  csrc mstatus, t0
  # Without TVM, S may read satp and run sfence.vma.
  li TESTNUM, 26
  EXPECT_MTRAP(CAUSE_SUPERVISOR_ECALL, 17f)
  ENTER_MODE(1, 16f)
16: csrr a0, satp
  sfence.vma
  ecall
17: CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  TEST_PASS
