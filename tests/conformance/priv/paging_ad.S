# Sv39 accessed and dirty bits kept by the hart: a load or fetch through a
# PTE with A = 0 sets A, a store sets A and D (D = 0 is never left behind by a
# store, even when a load cached the translation first), an MPRV access sets
# them as the translated mode's access would, and an access that faults
# (permission, U page from S) leaves the PTE untouched. Both strata and QEMU
# update the bits in hardware (the other legal choice, a page fault, is what
# the faulting cases check against).
#include "test_macros.h"

#define VA_DATA  0x40000000        /* page_data: R W, A = D = 0 */
#define VA_DATA2 0x40001000        /* page_data2: R W, A = D = 0 */
#define VA_RO    0x40002000        /* page_ro: R only, A = 0 */
#define VA_USER  0x40003000        /* page_user: U R W, A = 0 */
#define VA_CODE  0x40004000        /* page_code: X, A = 0 */
#define VA_MPRV  0x40005000        /* page_mprv: R W, A = D = 0 */

  .data
  .align 12
root_pt: .fill 512, 8, 0
l1_pt:   .fill 512, 8, 0
l0_pt:   .fill 512, 8, 0
page_data:  .dword 0x1111111111111111
  .align 12
page_data2: .dword 0x2222222222222222
  .align 12
page_ro:    .dword 0x3333333333333333
  .align 12
page_user:  .dword 0x4444444444444444
  .align 12
page_mprv:  .dword 0x5555555555555555
  .align 12

  .text
  .align 12
# Mapped at VA_CODE: S-mode jumps here and leaves through the ecall.
  .option push
  .option norvc
page_code:
  li a0, 0x77
  ecall
  .option pop
  .align 12

#define SET_L0(index, label, flags) SET_PTE_TO(l0_pt, index, label, flags)

TEST_BEGIN
  # ---- tables: RAM identity-mapped for S code (A and D preset), test pages in l0
  SET_PTE(root_pt, 2, LEAF(0x80000000, PTE_R | PTE_W | PTE_X | PTE_A | PTE_D))   # 1 GiB at 0x80000000
  SET_PTE_TO(root_pt, 1, l1_pt, 0)
  SET_PTE_TO(l1_pt, 0, l0_pt, 0)
  SET_L0(0, page_data, PTE_R | PTE_W)
  SET_L0(1, page_data2, PTE_R | PTE_W)
  SET_L0(2, page_ro, PTE_R)
  SET_L0(3, page_user, PTE_R | PTE_W | PTE_U)
  SET_L0(4, page_code, PTE_X)
  SET_L0(5, page_mprv, PTE_R | PTE_W)
  SET_SATP(SATP_MODE_SV39, root_pt)

  # ---- a load sets A only
  TEST_CASE(1, a0, 0, PTE_AD(l0_pt, 0))
  S_RUN(2, li a1, VA_DATA; ld a0, 0(a1))
  CHECK_REG(a0, 0x1111111111111111)
  TEST_CASE(3, a0, PTE_A, PTE_AD(l0_pt, 0))
  # ---- a store after that load (translation possibly cached without D) sets D
  S_RUN(4, li a1, VA_DATA; li a2, 0x0123456789abcdef; sd a2, 8(a1))
  TEST_CASE(5, a0, PTE_A | PTE_D, PTE_AD(l0_pt, 0))
  TEST_CASE(6, a0, 0x0123456789abcdef, la a1, page_data; ld a0, 8(a1))
  # ---- a first store sets A and D together; an AMO counts as a store
  S_RUN(7, li a1, VA_DATA2; li a2, 5; amoadd.d a0, a2, (a1))
  CHECK_REG(a0, 0x2222222222222222)
  TEST_CASE(8, a0, PTE_A | PTE_D, PTE_AD(l0_pt, 1))
  TEST_CASE(9, a0, 0x2222222222222227, la a1, page_data2; ld a0, 0(a1))

  # ---- a fetch sets A
  TEST_CASE(10, a0, 0, PTE_AD(l0_pt, 4))
  S_RUN(11, li a1, VA_CODE; li a0, 0; jr a1)
  TEST_CASE(12, a0, PTE_A, PTE_AD(l0_pt, 4))

  # ---- faulting accesses leave A and D alone
  S_FAULT(20, CAUSE_STORE_PAGE_FAULT, VA_RO + 8, li a1, VA_RO; sd zero, 8(a1))      # R only: no store
  TEST_CASE(21, a0, 0, PTE_AD(l0_pt, 2))
  S_FAULT(22, CAUSE_LOAD_PAGE_FAULT, VA_USER, li a1, VA_USER; ld a0, 0(a1))          # U page from S, SUM = 0
  TEST_CASE(23, a0, 0, PTE_AD(l0_pt, 3))
  S_FAULT(24, CAUSE_FETCH_PAGE_FAULT, VA_DATA2, li a1, VA_DATA2; jr a1)              # no X
  TEST_CASE(25, a0, PTE_A | PTE_D, PTE_AD(l0_pt, 1))
  # The read-only page still gets A from a load.
  S_RUN(26, li a1, VA_RO; ld a0, 0(a1))
  CHECK_REG(a0, 0x3333333333333333)
  TEST_CASE(27, a0, PTE_A, PTE_AD(l0_pt, 2))

  # ---- M-mode with MPRV and MPP = S translates and updates like S would
  li TESTNUM, 30
  li t0, MSTATUS_MPP
  csrc mstatus, t0
  li t0, MSTATUS_MPP_S | MSTATUS_MPRV
  csrs mstatus, t0
  li a1, VA_MPRV
  ld a0, 0(a1)
  li t0, MSTATUS_MPRV
  csrc mstatus, t0
  CHECK_REG(a0, 0x5555555555555555)
  TEST_CASE(31, a0, PTE_A, PTE_AD(l0_pt, 5))
  li TESTNUM, 32
  li t0, MSTATUS_MPRV
  csrs mstatus, t0
  li a1, VA_MPRV
  sd zero, 16(a1)
  li t0, MSTATUS_MPRV
  csrc mstatus, t0
  TEST_CASE(33, a0, PTE_A | PTE_D, PTE_AD(l0_pt, 5))
  li t0, MSTATUS_MPP
  csrs mstatus, t0                                      # back to MPP = M

  # ---- clearing A and D again (with sfence.vma) makes the next access set them anew
  SET_L0(0, page_data, PTE_R | PTE_W)
  sfence.vma
  S_RUN(40, li a1, VA_DATA; ld a0, 8(a1))
  CHECK_REG(a0, 0x0123456789abcdef)
  TEST_CASE(41, a0, PTE_A, PTE_AD(l0_pt, 0))
  S_RUN(42, li a1, VA_DATA; sw zero, 8(a1))
  TEST_CASE(43, a0, PTE_A | PTE_D, PTE_AD(l0_pt, 0))

  csrw satp, zero
  sfence.vma
  TEST_PASS
