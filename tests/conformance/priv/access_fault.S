# Access faults: loads, stores and instruction fetches at a physical address
# where neither board has RAM or a device (0x70000000) raise cause 5, 7 and 1
# with mtval = the address, and leave registers alone.
#include "test_macros.h"
#define HOLE 0x70000000
TEST_BEGIN
  li TESTNUM, 1
  li a1, HOLE
  li a0, 0x1234
  EXPECT_MTRAP_NEXT(CAUSE_LOAD_ACCESS)
  ld a0, 8(a1)
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_TVAL, HOLE + 8)
  CHECK_REG(a0, 0x1234)                          # the destination is not written
  li TESTNUM, 2
  EXPECT_MTRAP_NEXT(CAUSE_STORE_ACCESS)
  sw a0, 4(a1)
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_TVAL, HOLE + 4)
  # AMOs report store/AMO access faults (7); QEMU 7.2 reports a load fault (5).
  li TESTNUM, 3
#ifdef REFERENCE_QEMU
  EXPECT_MTRAP_NEXT(CAUSE_LOAD_ACCESS)
#else
  EXPECT_MTRAP_NEXT(CAUSE_STORE_ACCESS)
#endif
  amoadd.d a0, a0, (a1)
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_TVAL, HOLE)
  li TESTNUM, 4
  EXPECT_MTRAP(CAUSE_FETCH_ACCESS, 1f)
  jr a1
  j fail
1: CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_TVAL, HOLE)
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_EPC, HOLE)
  TEST_PASS
