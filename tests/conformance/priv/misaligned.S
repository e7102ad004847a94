# Misaligned loads and stores: the ISA lets a hart emulate them (the right
# value, no trap) or trap with cause 4 (load) / 6 (store); strata (and QEMU
# 7.2) emulate every one, integer and FP, also across a page. Misaligned AMOs
# and LR/SC trap with address-misaligned, mtval = the address, nothing
# written: lr with 4, sc and AMOs with 6. QEMU 7.2 (REFERENCE_QEMU, its build
# for the differential comparison) reports AMOs with 4 and lets a misaligned
# sc.d fail without a reservation instead.
#include "test_macros.h"
  .data
  .align 4
mbuf:
  .byte 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff
  .fill 16, 1, 0
  .align 12
pagebuf:
  .fill 8192, 1, 0
  .text

#ifdef REFERENCE_QEMU
#define AMO_MISALIGNED CAUSE_MISALIGNED_LOAD
#else
#define AMO_MISALIGNED CAUSE_MISALIGNED_STORE
#endif

#define MIS_LOAD(n, inst, offset, expected)              \
  li TESTNUM, n;                                         \
  la a1, mbuf;                                           \
  li a0, 0;                                              \
  inst a0, offset(a1);                                   \
  CHECK_REG(a0, expected)

# Stores `value` at mbuf+16+offset (pre-filled with 0xa5), then checks the dwords.
#define MIS_STORE(n, inst, offset, value, expected_lo, expected_hi) \
  li TESTNUM, n;                                         \
  la a1, mbuf + 16;                                      \
  li t0, 0xa5a5a5a5a5a5a5a5;                             \
  sd t0, 0(a1);                                          \
  sd t0, 8(a1);                                          \
  li a2, value;                                          \
  inst a2, offset(a1);                                   \
  ld a0, 0(a1);                                          \
  CHECK_REG(a0, expected_lo);                            \
  ld a0, 8(a1);                                          \
  CHECK_REG(a0, expected_hi)

TEST_BEGIN
  MIS_LOAD(1, lh, 1, 0x0000000000002211)
  MIS_LOAD(2, lh, 7, 0xffffffffffff8877)
  MIS_LOAD(3, lhu, 7, 0x0000000000008877)
  MIS_LOAD(4, lw, 1, 0x0000000044332211)
  MIS_LOAD(5, lw, 5, 0xffffffff88776655)
  MIS_LOAD(6, lwu, 6, 0x0000000099887766)
  MIS_LOAD(7, ld, 1, 0x8877665544332211)
  MIS_LOAD(8, ld, 7, 0xeeddccbbaa998877)
  MIS_LOAD(9, ld, 4, 0xbbaa998877665544)

  MIS_STORE(20, sh, 1, 0x1234, 0xa5a5a5a5a51234a5, 0xa5a5a5a5a5a5a5a5)
  MIS_STORE(21, sh, 7, 0x1234, 0x34a5a5a5a5a5a5a5, 0xa5a5a5a5a5a5a512)
  MIS_STORE(22, sw, 3, 0x12345678, 0xa512345678a5a5a5, 0xa5a5a5a5a5a5a5a5)
  MIS_STORE(23, sw, 6, 0x12345678, 0x5678a5a5a5a5a5a5, 0xa5a5a5a5a5a51234)
  MIS_STORE(24, sd, 1, 0x0102030405060708, 0x02030405060708a5, 0xa5a5a5a5a5a5a501)
  MIS_STORE(25, sd, 4, 0x0102030405060708, 0x05060708a5a5a5a5, 0xa5a5a5a501020304)
  # FP loads and stores too.
  TEST_CASE(30, a0, 0xaa99887766554433, la a1, mbuf; fld fa0, 3(a1); fmv.x.d a0, fa0)
  TEST_CASE(31, a0, 0x55443322, la a1, mbuf; flw fa0, 2(a1); fmv.x.w a0, fa0)
  TEST_CASE(32, a0, 0xa5a5a5ffffffffff, la a1, mbuf + 16; li t0, -1; sd t0, 0(a1); li t0, 0xa5a5a5a5a5a5a5a5; fmv.d.x fa0, t0; fsd fa0, 5(a1); ld a0, 0(a1))
  TEST_CASE(33, a0, 0xffffffa5a5a5a5ff, la a1, mbuf + 16; li t0, -1; sd t0, 0(a1); li t0, 0xa5a5a5a5; fmv.w.x fa0, t0; fsw fa0, 1(a1); ld a0, 0(a1))
  # Across a page boundary (the access is split between two pages).
  TEST_CASE(34, a0, 0x0807060504030201, la a1, pagebuf + 4096 - 3; li a2, 0x0807060504030201; sd a2, 0(a1); ld a0, 0(a1))
  TEST_CASE(35, a0, 0x04030201, la a1, pagebuf + 4096 - 1; li a2, 0x04030201; sw a2, 0(a1); lwu a0, 0(a1))

  # Misaligned AMOs and LR/SC never complete: address-misaligned, nothing written.
#define MIS_ATOMIC(n, cause, insn...)  \
  li TESTNUM, n;                       \
  la a1, mbuf + 18;                    \
  ld s9, -2(a1);                       \
  li a2, 0x5a5a5a5a5a5a5a5a;           \
  EXPECT_MTRAP_NEXT(cause);            \
  insn;                                \
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1); \
  CHECK_TRAP_FIELD_REG(mtrap, TRAP_SEEN_TVAL, a1); \
  ld a0, -2(a1);                       \
  CHECK_REG_REG(a0, s9)
  MIS_ATOMIC(40, AMO_MISALIGNED, amoadd.d a0, a2, (a1))
  MIS_ATOMIC(41, AMO_MISALIGNED, amoswap.d a0, a2, (a1))
  MIS_ATOMIC(42, CAUSE_MISALIGNED_LOAD, lr.d a0, (a1))
#ifdef REFERENCE_QEMU
  # QEMU: the sc.d fails (rd != 0) without a reservation, memory untouched.
  li TESTNUM, 43
  la a1, mbuf + 18
  ld s9, -2(a1)
  li a2, 0x5a5a5a5a5a5a5a5a
  sc.d a0, a2, (a1)
  beqz a0, fail
  ld a0, -2(a1)
  CHECK_REG_REG(a0, s9)
#else
  MIS_ATOMIC(43, CAUSE_MISALIGNED_STORE, sc.d a0, a2, (a1))
#endif
  MIS_ATOMIC(44, AMO_MISALIGNED, amoor.w a0, a2, (a1))
  TEST_PASS
