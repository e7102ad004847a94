# Regression: mcountinhibit.CY/IR were writable but ignored, so mcycle and
# minstret kept counting while inhibited (found by priv/counters.S). An
# inhibited counter must hold its value, also one written meanwhile, and count
# on from it once the bit is cleared.
#include "test_macros.h"
#define CSR_MCOUNTINHIBIT 0x320

#define SPIN          \
  li t3, 50;          \
  98: addi t3, t3, -1; \
  bnez t3, 98b

TEST_BEGIN
  li t0, 5                                   # CY | IR
  csrw CSR_MCOUNTINHIBIT, t0
  TEST_CASE(1, a0, 0, csrr a1, mcycle; SPIN; csrr a0, mcycle; sub a0, a0, a1)
  TEST_CASE(2, a0, 0, csrr a1, minstret; SPIN; csrr a0, minstret; sub a0, a0, a1)
  TEST_CASE(3, a0, 0x777, li a1, 0x777; csrw minstret, a1; SPIN; csrr a0, minstret)
  csrw CSR_MCOUNTINHIBIT, zero
  # Counting again, upwards from the held value.
  TEST_CASE(4, a0, 1, SPIN; csrr a1, minstret; li a2, 0x777; sltu a0, a2, a1)
  TEST_PASS
