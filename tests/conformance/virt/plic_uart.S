# The virt board's PLIC driven by the 16550 UART's THR-empty interrupt
# (source 10), as `strata run --bare` maps both: priority, enable and
# threshold registers (WARL widths), the pending bit following the UART's
# interrupt line, MEIP only while priority > threshold, the interrupt taken in M
# (MEIP) and, through the hart's S context and mideleg, in S (SEIP), claim
# (which clears pending and, until completion, keeps the source quiet),
# completion re-pending a source whose line is still up, and an S-level
# external interrupt taken in M when not delegated. Strata only: QEMU's spike
# board has no PLIC or UART, so this group is left out of the differential run.
#include "test_macros.h"

#define PLIC 0xc000000
#define PLIC_PRIORITY(source) (PLIC + 4 * (source))
#define PLIC_PENDING (PLIC + 0x1000)
#define PLIC_ENABLE(context) (PLIC + 0x2000 + 0x80 * (context))
#define PLIC_THRESHOLD(context) (PLIC + 0x200000 + 0x1000 * (context))
#define PLIC_CLAIM(context) (PLIC_THRESHOLD(context) + 4)
#define CTX_M 0                    /* hart 0, M-mode */
#define CTX_S 1                    /* hart 0, S-mode */
#define UART_IRQ 10
#define UART 0x10000000
#define UART_IER (UART + 1)
#define UART_IIR (UART + 2)
#define IER_THRE 0x02
#define IIR_THRE 0x02
#define IIR_NONE 0x01
#define MIE_MEIE MIP_MEIP
#define MIE_SEIE MIP_SEIP
#define INTERRUPT(code) (CAUSE_INTERRUPT_BIT | (code))

# PLIC registers are 32 bits wide (4-byte accesses only), UART ones 8. Use t0/t1.
#define W32(address, value) \
  li t0, address;           \
  li t1, value;             \
  sw t1, 0(t0)
#define R32(reg, address) \
  li t0, address;         \
  lwu reg, 0(t0)
#define W8(address, value) \
  li t0, address;          \
  li t1, value;            \
  sb t1, 0(t0)
#define R8(reg, address) \
  li t0, address;        \
  lbu reg, 0(t0)
#define PENDING_BIT(reg) \
  R32(reg, PLIC_PENDING); \
  srli reg, reg, UART_IRQ; \
  andi reg, reg, 1

TEST_BEGIN
  # ---- registers: priorities are 3 bits, source 0 does not exist, enables skip bit 0
  TEST_CASE(1, a0, 7, W32(PLIC_PRIORITY(UART_IRQ), 0xffffffff); R32(a0, PLIC_PRIORITY(UART_IRQ)))
  TEST_CASE(2, a0, 3, W32(PLIC_PRIORITY(UART_IRQ), 3); R32(a0, PLIC_PRIORITY(UART_IRQ)))
  TEST_CASE(3, a0, 0, W32(PLIC_PRIORITY(0), 5); R32(a0, PLIC_PRIORITY(0)))
  TEST_CASE(4, a0, 0xfffffffe, W32(PLIC_ENABLE(CTX_M), 0xffffffff); R32(a0, PLIC_ENABLE(CTX_M)))
  TEST_CASE(5, a0, 7, W32(PLIC_THRESHOLD(CTX_M), 0xffffffff); R32(a0, PLIC_THRESHOLD(CTX_M)))
  W32(PLIC_ENABLE(CTX_M), 1 << UART_IRQ)
  W32(PLIC_ENABLE(CTX_S), 0)
  W32(PLIC_THRESHOLD(CTX_M), 0)
  TEST_CASE(6, a0, 0, csrr a0, mip; li t0, MIP_MEIP; and a0, a0, t0)     # nothing pending yet
  TEST_CASE(7, a0, 0, PENDING_BIT(a0))

  # ---- the UART's THRE interrupt makes source 10 pending and raises MEIP
  W8(UART_IER, IER_THRE)
  TEST_CASE(10, a0, MIP_MEIP, POLL_MIP(MIP_MEIP, MIP_MEIP))
  TEST_CASE(11, a0, 1, PENDING_BIT(a0))
  # Priority must exceed the threshold: equal masks it, lower unmasks it.
  TEST_CASE(12, a0, 0, W32(PLIC_THRESHOLD(CTX_M), 3); POLL_MIP(MIP_MEIP, 0))
  TEST_CASE(13, a0, 0, R32(a0, PLIC_CLAIM(CTX_M)))            # nothing above the threshold to claim
  TEST_CASE(14, a0, MIP_MEIP, W32(PLIC_THRESHOLD(CTX_M), 2); POLL_MIP(MIP_MEIP, MIP_MEIP))
  # Priority 0 never interrupts; disabling the source in the context drops MEIP too.
  TEST_CASE(15, a0, 0, W32(PLIC_PRIORITY(UART_IRQ), 0); POLL_MIP(MIP_MEIP, 0))
  TEST_CASE(16, a0, MIP_MEIP, W32(PLIC_PRIORITY(UART_IRQ), 3); POLL_MIP(MIP_MEIP, MIP_MEIP))
  TEST_CASE(17, a0, 0, W32(PLIC_ENABLE(CTX_M), 0); POLL_MIP(MIP_MEIP, 0))
  TEST_CASE(18, a0, 1, PENDING_BIT(a0))                        # still pending at the PLIC
  TEST_CASE(19, a0, MIP_MEIP, W32(PLIC_ENABLE(CTX_M), 1 << UART_IRQ); POLL_MIP(MIP_MEIP, MIP_MEIP))
  # mip.MEIP is the PLIC's line: software cannot clear it.
  TEST_CASE(20, a0, MIP_MEIP, li t0, MIP_MEIP; csrc mip, t0; csrr a0, mip; li t0, MIP_MEIP; and a0, a0, t0)

  # ---- taken as a machine external interrupt
  li TESTNUM, 30
  EXPECT_MTRAP(INTERRUPT(11), 0)
  li t0, MIE_MEIE
  csrs mie, t0
  csrsi mstatus, MSTATUS_MIE
  WAIT_FOR_TRAP(mtrap)
  csrci mstatus, MSTATUS_MIE
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_CAUSE, INTERRUPT(11))
  # Claim: source 10; it leaves pending and MEIP drops until completion.
  TEST_CASE(31, a0, UART_IRQ, R32(a0, PLIC_CLAIM(CTX_M)))
  TEST_CASE(32, a0, 0, PENDING_BIT(a0))
  TEST_CASE(33, a0, 0, POLL_MIP(MIP_MEIP, 0))
  TEST_CASE(34, a0, 0, R32(a0, PLIC_CLAIM(CTX_M)))            # nothing else to claim
  # Completing while the UART still asserts its line makes the source pending again.
  TEST_CASE(35, a0, MIP_MEIP, W32(PLIC_CLAIM(CTX_M), UART_IRQ); POLL_MIP(MIP_MEIP, MIP_MEIP))
  TEST_CASE(36, a0, UART_IRQ, R32(a0, PLIC_CLAIM(CTX_M)))
  # The handler's job: reading IIR acknowledges THRE and the UART drops its line;
  # then completion leaves nothing pending.
  TEST_CASE(37, a0, IIR_THRE, R8(a0, UART_IIR); andi a0, a0, 0x0f)
  TEST_CASE(38, a0, IIR_NONE, R8(a0, UART_IIR); andi a0, a0, 0x0f)
  W32(PLIC_CLAIM(CTX_M), UART_IRQ)
  TEST_CASE(39, a0, 0, PENDING_BIT(a0))
  TEST_CASE(40, a0, 0, POLL_MIP(MIP_MEIP, 0))

  # ---- the S context: SEIP, delegated to S through mideleg
  W32(PLIC_ENABLE(CTX_M), 0)
  W32(PLIC_ENABLE(CTX_S), 1 << UART_IRQ)
  W32(PLIC_THRESHOLD(CTX_S), 0)
  W8(UART_IER, 0)
  W8(UART_IER, IER_THRE)                                     # THRE again
  TEST_CASE(50, a0, MIP_SEIP, POLL_MIP(MIP_SEIP, MIP_SEIP))
  TEST_CASE(51, a0, 0, csrr a0, mip; li t0, MIP_MEIP; and a0, a0, t0)   # the M context is not enabled
  la t0, strap_entry
  csrw stvec, t0
  li t0, MIP_SEIP
  csrw mideleg, t0
  li t0, MIE_SEIE
  csrs mie, t0
  # S enables interrupts, waits for the trap, claims, acknowledges the UART, completes.
  li TESTNUM, 52
  EXPECT_MTRAP(CAUSE_SUPERVISOR_ECALL, 2f)
  ENTER_MODE(1, 1f)
1: EXPECT_STRAP(INTERRUPT(9), 0)
  csrsi sstatus, MSTATUS_SIE
  WAIT_FOR_TRAP(strap)
  csrci sstatus, MSTATUS_SIE
  R32(s2, PLIC_CLAIM(CTX_S))
  R8(s3, UART_IIR)
  W32(PLIC_CLAIM(CTX_S), UART_IRQ)
  ecall
2: CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(strap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(strap, TRAP_SEEN_CAUSE, INTERRUPT(9))
  CHECK_TRAP_FIELD(strap, TRAP_SEEN_PREV_MODE, 1)
  li TESTNUM, 53
  CHECK_REG(s2, UART_IRQ)
  TEST_CASE(54, a0, IIR_THRE, andi a0, s3, 0x0f)
  TEST_CASE(55, a0, 0, POLL_MIP(MIP_SEIP, 0))
  TEST_CASE(56, a0, 0, PENDING_BIT(a0))

  # ---- not delegated: the supervisor external interrupt is taken in M
  csrw mideleg, zero
  W8(UART_IER, 0)
  W8(UART_IER, IER_THRE)
  TEST_CASE(60, a0, MIP_SEIP, POLL_MIP(MIP_SEIP, MIP_SEIP))
  li TESTNUM, 61
  EXPECT_MTRAP(INTERRUPT(9), 0)
  li t0, MIE_SEIE
  csrs mie, t0
  csrsi mstatus, MSTATUS_MIE
  WAIT_FOR_TRAP(mtrap)
  csrci mstatus, MSTATUS_MIE
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_CAUSE, INTERRUPT(9))
  TEST_CASE(62, a0, UART_IRQ, R32(a0, PLIC_CLAIM(CTX_S)))     # M may claim for the S context
  W8(UART_IER, 0)                                             # THRE off: the line drops
  W32(PLIC_CLAIM(CTX_S), UART_IRQ)
  TEST_CASE(63, a0, 0, POLL_MIP(MIP_SEIP, 0))
  TEST_CASE(64, a0, 0, PENDING_BIT(a0))

  W32(PLIC_ENABLE(CTX_S), 0)
  csrw mie, zero
  TEST_PASS
