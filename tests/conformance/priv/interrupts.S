# Interrupts: the CLINT timer (mtimecmp -> mip.MTIP -> trap with mcause
# 0x8000000000000007) and software interrupt (msip -> MSIP, mcause ..03),
# mip.SSIP raised by software, WFI waking on a pending interrupt while
# mstatus.MIE = 0, M-level interrupts preempting U-mode whatever MIE says,
# priority (MSI before MTI) and vectored mtvec (base + 4 * cause).
#include "test_macros.h"

TEST_BEGIN
  li s4, CLINT_MTIMECMP
  li s5, CLINT_MSIP
  li s3, -1
  sd s3, 0(s4)                      # no timer yet
  # ---- mip.MTIP follows mtime >= mtimecmp. The CLINT is a device: allow the
  #      new level a bounded time to reach mip (QEMU shows it at once).
  TEST_CASE(1, a0, MIP_MTIP, sd zero, 0(s4); POLL_MIP(MIP_MTIP, MIP_MTIP))
  TEST_CASE(2, a0, 0, sd s3, 0(s4); POLL_MIP(MIP_MTIP, 0))
  # ---- timer interrupt, about 10 us from now
  li TESTNUM, 3
  EXPECT_MTRAP_NEXT(CAUSE_INTERRUPT_BIT | 7)
  li t0, CLINT_MTIME
  ld t1, 0(t0)
  addi t1, t1, 100
  sd t1, 0(s4)
  li t0, MIP_MTIP
  csrw mie, t0
  csrsi mstatus, MSTATUS_MIE
  WAIT_FOR_TRAP(mtrap)
  csrci mstatus, MSTATUS_MIE
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_CAUSE, CAUSE_INTERRUPT_BIT | 7)
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_PREV_MODE, 3)
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_STATUS, MSTATUS_MPP_M | MSTATUS_MPIE | MSTATUS_FS | (0xaull << 32) | (1ull << 63))  # MIE moved to MPIE
  sd s3, 0(s4)
  # ---- software interrupt through the CLINT msip register
  TEST_CASE(4, a0, MIP_MSIP, li t0, 1; sw t0, 0(s5); POLL_MIP(MIP_MSIP, MIP_MSIP))
  li TESTNUM, 5
  EXPECT_MTRAP_NEXT(CAUSE_INTERRUPT_BIT | 3)
  li t0, MIP_MSIP
  csrw mie, t0
  csrsi mstatus, MSTATUS_MIE
  WAIT_FOR_TRAP(mtrap)
  csrci mstatus, MSTATUS_MIE
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_CAUSE, CAUSE_INTERRUPT_BIT | 3)
  TEST_CASE(6, a0, 0, sw zero, 0(s5); POLL_MIP(MIP_MSIP, 0))
  # ---- supervisor software interrupt, not delegated: taken in M
  li TESTNUM, 7
  EXPECT_MTRAP_NEXT(CAUSE_INTERRUPT_BIT | 1)
  li t0, MIP_SSIP
  csrw mie, t0
  csrs mip, t0
  csrsi mstatus, MSTATUS_MIE
  nop
  csrci mstatus, MSTATUS_MIE
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  li t0, MIP_SSIP
  csrc mip, t0
  # ---- WFI returns once an enabled interrupt is pending, even with MIE = 0
  li TESTNUM, 8
  csrw mie, zero
  li t0, CLINT_MTIME
  ld t1, 0(t0)
  addi t1, t1, 1000
  sd t1, 0(s4)
  li t0, MIP_MTIP
  csrw mie, t0
  mv a2, zero
  la t5, mtrap
  sd zero, TRAP_COUNT(t5)
1: wfi                              # may also return early: loop until MTIP
  csrr a0, mip
  andi a0, a0, MIP_MTIP
  beqz a0, 1b
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 0)   # no trap was taken
  # ---- M-level interrupts preempt U-mode even with MIE = 0
  li TESTNUM, 9
  EXPECT_MTRAP(CAUSE_INTERRUPT_BIT | 7, 3f)
  ENTER_MODE(0, 2f)
2: j 2b
3: csrci mstatus, MSTATUS_MIE       # mret restored MIE from MPIE = 1
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_PREV_MODE, 0)
  la a2, 2b
  CHECK_TRAP_FIELD_REG(mtrap, TRAP_SEEN_EPC, a2)
  sd s3, 0(s4)
  # ---- priority and vectored mode: MSI and MTI pending together
  li TESTNUM, 10
  la t0, vector_table
  ori t0, t0, 1
  csrw mtvec, t0
  csrr a0, mtvec
  CHECK_REG_REG(a0, t0)
  li s6, 0
  li t0, 1
  sw t0, 0(s5)
  sd zero, 0(s4)
  li t0, MIP_MSIP | MIP_MTIP
  csrw mie, t0
4: csrr a0, mip                     # both pending before enabling
  and a0, a0, t0
  bne a0, t0, 4b
  csrsi mstatus, MSTATUS_MIE        # MSI first, then MTI
  nop
  nop
  csrci mstatus, MSTATUS_MIE
  CHECK_REG(s6, 0x3377)
  la t0, trap_entry
  csrw mtvec, t0
  csrw mie, zero
  TEST_PASS

  .align 6
vector_table:                       # entry i at base + 4*i; each a 4-byte jump
  .option push
  .option norvc
  j vector_bad
  j vector_bad
  j vector_bad
  j vector_msi
  j vector_bad
  j vector_bad
  j vector_bad
  j vector_mti
  j vector_bad
  j vector_bad
  j vector_bad
  j vector_bad
  .option pop
vector_msi:                         # s6 = s6 << 8 | entry << 4 | mcause & 15; clear msip
  csrr s7, mcause
  bgez s7, vector_bad
  andi s7, s7, 15
  slli s6, s6, 8
  ori s6, s6, 0x30
  or s6, s6, s7
  sw zero, 0(s5)
  mret
vector_mti:
  csrr s7, mcause
  bgez s7, vector_bad
  andi s7, s7, 15
  slli s6, s6, 8
  ori s6, s6, 0x70
  or s6, s6, s7
  sd s3, 0(s4)
  mret
vector_bad:
  csrr a0, mcause
  li a1, -1
  j fail_values
