# RV64I loads (sign/zero extension at every width), stores (only the addressed
# bytes change), jumps (link values, JALR clears bit 0), all six branches,
# FENCE, and x0 behaviour.
#include "test_macros.h"
  .data
  .align 4
source:
  .dword 0x8877665544332211, 0xf0debc9a78563412
buffer:
  .dword 0, 0, 0, 0
  .text
TEST_BEGIN
  # Little-endian loads of source = 11 22 33 44 55 66 77 88 12 34 56 78 9a bc de f0.
  TEST_LOAD(1, lb,  0x0000000000000011, 0, source)
  TEST_LOAD(2, lb,  0xffffffffffffff88, 7, source)
  TEST_LOAD(3, lbu, 0x0000000000000088, 7, source)
  TEST_LOAD(4, lh,  0x0000000000002211, 0, source)
  TEST_LOAD(5, lh,  0xffffffffffff8877, 6, source)
  TEST_LOAD(6, lhu, 0x0000000000008877, 6, source)
  TEST_LOAD(7, lw,  0x0000000044332211, 0, source)
  TEST_LOAD(8, lw,  0xffffffff88776655, 4, source)
  TEST_LOAD(9, lwu, 0x0000000088776655, 4, source)
  TEST_LOAD(10, ld, 0x8877665544332211, 0, source)
  TEST_LOAD(11, ld, 0xf0debc9a78563412, 8, source)
  TEST_LOAD(12, lw, 0xfffffffff0debc9a, 12, source)
  # Negative offsets: base past the data.
  TEST_CASE(13, a0, 0xfffffffffffffff0, la a1, source + 16; lb a0, -1(a1))
  TEST_CASE(14, a0, 0x0000000078563412, la a1, source + 16; lwu a0, -8(a1))

  # Stores, read back at the same width.
  TEST_STORE(20, lb, sb, 0xffffffffffffffaa, 0xaa, 0, buffer)
  TEST_STORE(21, lbu, sb, 0x00000000000000aa, 0x12345678000000aa, 1, buffer)
  TEST_STORE(22, lh, sh, 0xffffffffffffbeef, 0xbeef, 2, buffer)
  TEST_STORE(23, lw, sw, 0xffffffffdeadbeef, 0xffffffffdeadbeef, 4, buffer)
  TEST_STORE(24, lwu, sw, 0x00000000deadbeef, 0x11111111deadbeef, 8, buffer)
  TEST_STORE(25, ld, sd, 0x0123456789abcdef, 0x0123456789abcdef, 16, buffer)
  # Only the addressed bytes change: fill a dword with ones, store a byte and a half.
  TEST_CASE(26, a0, 0xffff1234ff00ffff, la a1, buffer + 24; li a2, -1; sd a2, 0(a1); sb zero, 2(a1); li a2, 0x1234; sh a2, 4(a1); ld a0, 0(a1))
  # Earlier stores as one dword: bytes aa aa ef be ef be ad de.
  TEST_CASE(27, a0, 0xdeadbeefbeefaaaa, la a1, buffer; ld a0, 0(a1))

  # JAL links pc+4 and jumps.
  li TESTNUM, 30
  jal ra, 1f
2: j fail
1: la a1, 2b
  bne ra, a1, fail
  # JALR: target = (rs1 + imm) & ~1, links pc+4; rd == rs1 uses the old rs1.
  li TESTNUM, 31
  la t1, 3f + 1                 # odd address: bit 0 must be cleared
  jalr ra, 0(t1)
4: j fail
3: la a1, 4b
  bne ra, a1, fail
  li TESTNUM, 32
  la t1, 5f - 8
  jalr t1, 8(t1)
6: j fail
5: la a1, 6b
  bne t1, a1, fail
  # JAL with rd = x0 (plain jump) and backwards.
  li TESTNUM, 33
  j 8f
7: j 9f
8: j 7b
9:
  # Branches: taken and not taken, signed and unsigned.
  TEST_BR_TAKEN(40, beq, 5, 5)
  TEST_BR_NOT_TAKEN(41, beq, 5, 6)
  TEST_BR_TAKEN(42, bne, 0, -1)
  TEST_BR_NOT_TAKEN(43, bne, -1, -1)
  TEST_BR_TAKEN(44, blt, -1, 0)
  TEST_BR_NOT_TAKEN(45, blt, 0, -1)
  TEST_BR_NOT_TAKEN(46, blt, 7, 7)
  TEST_BR_TAKEN(47, bge, 7, 7)
  TEST_BR_TAKEN(48, bge, 0, 0x8000000000000000)
  TEST_BR_NOT_TAKEN(49, bge, 0x8000000000000000, 0)
  TEST_BR_TAKEN(50, bltu, 0, -1)
  TEST_BR_NOT_TAKEN(51, bltu, -1, 0)
  TEST_BR_TAKEN(52, bgeu, -1, 0)
  TEST_BR_TAKEN(53, bgeu, 3, 3)
  TEST_BR_NOT_TAKEN(54, bgeu, 0x7fffffffffffffff, 0x8000000000000000)
  # Backward branch loop: sum 1..10 = 55.
  TEST_CASE(55, a0, 55, li a0, 0; li a1, 10; 1: add a0, a0, a1; addi a1, a1, -1; bnez a1, 1b)

  # x0 stays zero whatever is written to it.
  TEST_CASE(60, x0, 0, li x0, 5; addi x0, x0, 7; lui x0, 1)
  TEST_CASE(61, a0, 0, addi a0, x0, 0)
  # FENCE variants execute as ordering no-ops for a single hart.
  TEST_CASE(62, a0, 9, li a0, 9; fence; fence rw, rw; fence r, w; fence iorw, iorw; fence.tso)
  TEST_PASS
