# PMP CSRs: pmpcfg0 and pmpaddr0..2 are WARL registers that hold what was
# written when it is legal. pmpaddr holds bits 55:2 of a 56-bit address, so
# on RV64 bits 53:0 hold the address; bits 63:54 read zero (QEMU 7.2 keeps
# them: REFERENCE_QEMU, its build for the differential comparison).
# On RV64 the odd pmpcfg registers (pmpcfg1, ...) do not exist.
#include "test_macros.h"
#ifdef REFERENCE_QEMU
#define PMPADDR_ALL (-1)
#else
#define PMPADDR_ALL 0x003fffffffffffff
#endif
TEST_BEGIN
  # crt.S opened all memory with pmpaddr0 = -1, pmpcfg0 = NAPOT|RWX.
  TEST_CASE(1, a0, PMPADDR_ALL, csrr a0, pmpaddr0)
  TEST_CASE(2, a0, 0x1f, csrr a0, pmpcfg0; andi a0, a0, 0xff)
  # TOR entry 1 up to 0x12345678 << 2 with R only: cfg byte 1 = TOR (0x08) | R (0x01).
  TEST_CASE(3, a0, 0x12345678, li a1, 0x12345678; csrw pmpaddr1, a1; csrr a0, pmpaddr1)
  TEST_CASE(4, a0, 0x091f, li a1, 0x091f; csrw pmpcfg0, a1; csrr a0, pmpcfg0)
  TEST_CASE(5, a0, 0x0000000000abcdef, li a1, 0x0000000000abcdef; csrw pmpaddr2, a1; csrr a0, pmpaddr2)
  # Entry 1 off again (A = 0), address kept.
  TEST_CASE(6, a0, 0x001f, li a1, 0x001f; csrw pmpcfg0, a1; csrr a0, pmpcfg0)
  TEST_CASE(7, a0, 0x12345678, csrr a0, pmpaddr1)
  # pmpcfg1 is illegal on RV64.
  li TESTNUM, 8
  EXPECT_MTRAP_NEXT(CAUSE_ILLEGAL_INSTRUCTION)
  csrr a0, pmpcfg1
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  # S-mode still reaches memory through entry 0 after the rewrites.
  li TESTNUM, 9
  EXPECT_MTRAP(CAUSE_SUPERVISOR_ECALL, 2f)
  ENTER_MODE(1, 1f)
1: la a1, tohost
  ld a0, 0(a1)
  ecall
2: CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  csrw pmpaddr1, zero
  csrw pmpaddr2, zero
  TEST_PASS
