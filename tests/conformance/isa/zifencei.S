# Zifencei: self-modifying code. Run a routine, overwrite one of its
# instructions with a new encoding, fence.i, run it again: the new instruction
# must execute. addi a0, zero, imm encodes as (imm << 20) | (10 << 7) | 0x13.
#include "test_macros.h"
#define ADDI_A0(imm) (((imm) << 20) | (10 << 7) | 0x13)
  .text
  .align 3
  .option push
  .option norvc
patched:
  addi a0, zero, 1
  ret
  .option pop

TEST_BEGIN
  mv s2, ra
  TEST_CASE(1, a0, 1, call patched)
  TEST_CASE(2, a0, 2, la a1, patched; li a2, ADDI_A0(2); sw a2, 0(a1); fence.i; call patched)
  # Rewrite it many times in a loop: each fence.i must expose the latest store.
  li TESTNUM, 3
  li s3, 3
1: la a1, patched
  li a2, ADDI_A0(0)
  slli t0, s3, 20
  or a2, a2, t0
  sw a2, 0(a1)
  fence.i
  call patched
  bne a0, s3, fail
  addi s3, s3, 1
  li t0, 40
  bltu s3, t0, 1b
  # Copy code into a data buffer, fence.i, jump there (a new page of code).
  li TESTNUM, 4
  la a1, code_buffer
  li a2, ADDI_A0(42)
  sw a2, 0(a1)
  li a2, 0x00008067            # jalr zero, 0(ra) = ret
  sw a2, 4(a1)
  fence.i
  jalr ra, 0(a1)
  li t0, 42
  bne a0, t0, fail
  # Change it again: the stale translation of that page must be gone too.
  li TESTNUM, 5
  la a1, code_buffer
  li a2, ADDI_A0(43)
  sw a2, 0(a1)
  fence.i
  jalr ra, 0(a1)
  li t0, 43
  bne a0, t0, fail
  # A compressed instruction patched in place: c.li a0, 5 = 0x4515, then c.jr ra = 0x8082.
  li TESTNUM, 6
  la a1, code_buffer
  li a2, 0x80824515
  sw a2, 0(a1)
  fence.i
  jalr ra, 0(a1)
  li t0, 5
  bne a0, t0, fail
  mv ra, s2
  TEST_PASS

  .data
  .align 12
code_buffer:
  .fill 1024, 4, 0
