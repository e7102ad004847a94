# Sv39 paging: translation through 3 levels and 1 GiB superpages, page faults
# with the faulting address in mtval/stval (load 13, store 15, fetch 12),
# permission checks (R/W/X, U pages from S without and with SUM, S pages from
# U, execute-only pages without and with MXR, the reserved W-without-R
# encoding, misaligned superpages, non-canonical addresses), MPRV loads with
# MPP = S and U, sfence.vma after a PTE change, delegation of page faults to
# S-mode, and satp ignoring writes of an unsupported mode.
#include "test_macros.h"

#define VA_A     0x40000000        /* page_a, S read/write */
#define VA_U     0x40001000        /* page_u, U read/write */
#define VA_X     0x40002000        /* page_x, execute only */
#define VA_BAD   0x40003000        /* not mapped */
#define VA_RO    0x40004000        /* page_a again, read only */
#define VA_UCODE 0x40005000        /* u_code, U read/execute */
#define VA_WO    0x40006000        /* page_a, W without R: reserved */
#define VA_MISALIGNED_GIGA 0xc0000000

  .data
  .align 12
root_pt: .fill 512, 8, 0
l1_pt:   .fill 512, 8, 0
l0_pt:   .fill 512, 8, 0
page_a:  .dword 0x1111222233334444
  .align 12
page_u:  .dword 0x5555666677778888
  .align 12
page_x:  .dword 0x99990000aaaabbbb
  .align 12
page_c:  .dword 0xccccddddeeeeffff
  .align 12

  .text
  .align 12
# U-mode code, mapped at VA_UCODE. Loads its own U page into a0 (fine), then
# touches whatever address s9 holds (tests set it), then ecalls.
  .option push
  .option norvc
u_code:
  lui a1, VA_U >> 12
  ld a0, 0(a1)
  ld a2, 0(s9)                     # at u_code + 8
  ecall
  .option pop
  .align 12

TEST_BEGIN
  # ---- build the tables (M-mode, physical addresses)
  SET_PTE(root_pt, 0, LEAF(0x00000000, PTE_R | PTE_W | PTE_A | PTE_D))             # devices, 1 GiB
  SET_PTE(root_pt, 2, LEAF(0x80000000, PTE_R | PTE_W | PTE_X | PTE_A | PTE_D))     # RAM identity, 1 GiB, S only
  SET_PTE(root_pt, 3, LEAF(0x80200000, PTE_R | PTE_W | PTE_A | PTE_D))             # misaligned superpage
  SET_PTE_TO(root_pt, 1, l1_pt, 0)                                                 # root[1] -> l1
  SET_PTE_TO(l1_pt, 0, l0_pt, 0)                                                   # l1[0] -> l0
#define SET_L0(index, label, flags) SET_PTE_TO(l0_pt, index, label, flags)
  SET_L0(0, page_a, PTE_R | PTE_W | PTE_A | PTE_D)
  SET_L0(1, page_u, PTE_R | PTE_W | PTE_U | PTE_A | PTE_D)
  SET_L0(2, page_x, PTE_X | PTE_A)
  SET_L0(4, page_a, PTE_R | PTE_A)
  SET_L0(5, u_code, PTE_R | PTE_X | PTE_U | PTE_A)
  SET_L0(6, page_a, PTE_W | PTE_A | PTE_D)
  SET_SATP(SATP_MODE_SV39, root_pt)
  mv s10, t0                                    # the satp value, for later checks
  TEST_CASE(1, a0, 0, csrr a0, satp; sub a0, a0, s10)

  # ---- S-mode accesses that work
  S_RUN(2, li a1, VA_A; ld a0, 0(a1))
  CHECK_REG(a0, 0x1111222233334444)
  S_RUN(3, li a1, VA_A; li a2, 0x0102030405060708; sd a2, 8(a1); li a1, VA_RO; ld a0, 8(a1))   # alias sees the store
  CHECK_REG(a0, 0x0102030405060708)
  TEST_CASE(4, a0, 0x0102030405060708, la a1, page_a; ld a0, 8(a1))                     # physical view too

  # ---- S-mode faults, taken in M with mtval = the virtual address
  S_FAULT(10, CAUSE_STORE_PAGE_FAULT, VA_RO + 16, li a1, VA_RO; sd zero, 16(a1))          # read-only page
  S_FAULT(11, CAUSE_LOAD_PAGE_FAULT, VA_BAD + 16, li a1, VA_BAD; ld a0, 16(a1))           # invalid PTE
  S_FAULT(12, CAUSE_STORE_PAGE_FAULT, VA_BAD + 8, li a1, VA_BAD; sw a0, 8(a1))
  S_FAULT(13, CAUSE_FETCH_PAGE_FAULT, VA_BAD, li a1, VA_BAD; jr a1)
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_EPC, VA_BAD)
  S_FAULT(14, CAUSE_LOAD_PAGE_FAULT, VA_U, li a1, VA_U; ld a0, 0(a1))                     # U page, SUM = 0
  S_FAULT(15, CAUSE_LOAD_PAGE_FAULT, VA_X, li a1, VA_X; ld a0, 0(a1))                     # execute-only, MXR = 0
  S_FAULT(16, CAUSE_FETCH_PAGE_FAULT, VA_UCODE, li a1, VA_UCODE; jr a1)                   # S never runs U code
  S_FAULT(17, CAUSE_LOAD_PAGE_FAULT, VA_WO, li a1, VA_WO; ld a0, 0(a1))                   # W without R is reserved
  S_FAULT(18, CAUSE_LOAD_PAGE_FAULT, VA_MISALIGNED_GIGA, li a1, VA_MISALIGNED_GIGA; ld a0, 0(a1))
  S_FAULT(19, CAUSE_LOAD_PAGE_FAULT, 0x0000008000000000, li a1, 0x0000008000000000; ld a0, 0(a1))  # not sign-extended from bit 38
  S_FAULT(20, CAUSE_STORE_PAGE_FAULT, VA_X + 8, li a1, VA_X; sd a0, 8(a1))                # X only: no store
  S_FAULT(21, CAUSE_FETCH_PAGE_FAULT, VA_A, li a1, VA_A; jr a1)                           # RW page: no fetch
  # SUM = 1 opens U pages to S loads and stores (never to fetches).
  li t0, MSTATUS_SUM
  csrs mstatus, t0
  S_RUN(22, li a1, VA_U; ld a0, 0(a1))
  CHECK_REG(a0, 0x5555666677778888)
  S_FAULT(23, CAUSE_FETCH_PAGE_FAULT, VA_UCODE, li a1, VA_UCODE; jr a1)
  li t0, MSTATUS_SUM
  csrc mstatus, t0
  # MXR = 1 makes execute-only pages readable (not writable).
  li t0, MSTATUS_MXR
  csrs mstatus, t0
  S_RUN(24, li a1, VA_X; ld a0, 0(a1))
  CHECK_REG(a0, 0x99990000aaaabbbb)
  S_FAULT(25, CAUSE_STORE_PAGE_FAULT, VA_X, li a1, VA_X; sd a0, 0(a1))
  li t0, MSTATUS_MXR
  csrc mstatus, t0

  # ---- U-mode: its own pages work, S pages fault
#define U_RUN(n, cause, touch)                 \
  li TESTNUM, n;                               \
  li s9, touch;                                \
  li a0, 0;                                    \
  EXPECT_MTRAP(cause, 100f);                   \
  li t0, MSTATUS_MPP;                          \
  csrc mstatus, t0;                            \
  li t0, VA_UCODE;                             \
  csrw mepc, t0;                               \
  mret;                                        \
100: CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1);   \
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_PREV_MODE, 0); \
  CHECK_REG(a0, 0x5555666677778888)
  U_RUN(30, CAUSE_USER_ECALL, VA_U + 8)                    # U page: no fault, reaches the ecall
  U_RUN(31, CAUSE_LOAD_PAGE_FAULT, VA_A)                   # S page from U
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_TVAL, VA_A)
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_EPC, VA_UCODE + 8)
  U_RUN(32, CAUSE_LOAD_PAGE_FAULT, VA_BAD + 0x10)
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_TVAL, VA_BAD + 0x10)
  # SUM does not let U touch S pages.
  li t0, MSTATUS_SUM
  csrs mstatus, t0
  U_RUN(33, CAUSE_LOAD_PAGE_FAULT, VA_A + 0x20)
  li t0, MSTATUS_SUM
  csrc mstatus, t0

  # ---- page faults delegated to S-mode: stval carries the address
  la t0, strap_entry
  csrw stvec, t0
  li t0, (1 << CAUSE_LOAD_PAGE_FAULT) | (1 << CAUSE_STORE_PAGE_FAULT) | (1 << CAUSE_FETCH_PAGE_FAULT)
  csrw medeleg, t0
  li TESTNUM, 40
  EXPECT_MTRAP(CAUSE_SUPERVISOR_ECALL, 3f)
  ENTER_MODE(1, 1f)
1: EXPECT_STRAP(CAUSE_STORE_PAGE_FAULT, 2f)
  li a1, VA_RO
  sd zero, 24(a1)
  j fail
2: CHECK_TRAP_FIELD(strap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(strap, TRAP_SEEN_TVAL, VA_RO + 24)
  CHECK_TRAP_FIELD(strap, TRAP_SEEN_PREV_MODE, 1)
  ecall
3: CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  csrw medeleg, zero

  # ---- MPRV: M-mode loads and stores translated as MPP's mode
  li TESTNUM, 50
  li t0, MSTATUS_MPP
  csrc mstatus, t0
  li t0, MSTATUS_MPP_S | MSTATUS_MPRV
  csrs mstatus, t0
  li a1, VA_A
  ld a0, 0(a1)                       # translated: page_a
  li t0, MSTATUS_MPRV
  csrc mstatus, t0
  CHECK_REG(a0, 0x1111222233334444)
  # MPP = U: the S page faults (the trap is taken in M; the handler runs with MPP = M).
  li TESTNUM, 51
  li t0, MSTATUS_MPP
  csrc mstatus, t0
  EXPECT_MTRAP(CAUSE_LOAD_PAGE_FAULT, 4f)   # (before MPRV: mtrap is not U-accessible)
  li t0, MSTATUS_MPRV
  csrs mstatus, t0
  li a1, VA_A
  ld a0, 0(a1)
  j fail
4: li t0, MSTATUS_MPRV
  csrc mstatus, t0
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_TVAL, VA_A)
  CHECK_TRAP_FIELD(mtrap, TRAP_SEEN_PREV_MODE, 3)
  # MPP = U: the U page works, for stores too.
  li TESTNUM, 52
  li t0, MSTATUS_MPP
  csrc mstatus, t0
  li t0, MSTATUS_MPRV
  csrs mstatus, t0
  li a1, VA_U
  li a2, 0x0badc0de
  sd a2, 8(a1)
  ld a0, 8(a1)
  li t0, MSTATUS_MPRV
  csrc mstatus, t0
  CHECK_REG(a0, 0x0badc0de)
  TEST_CASE(53, a0, 0x0badc0de, la a1, page_u; ld a0, 8(a1))
  # MPP = S with SUM = 0 cannot read the U page.
  li TESTNUM, 54
  EXPECT_MTRAP(CAUSE_LOAD_PAGE_FAULT, 5f)
  li t0, MSTATUS_MPP_S | MSTATUS_MPRV
  csrs mstatus, t0
  li a1, VA_U
  ld a0, 0(a1)
  j fail
5: li t0, MSTATUS_MPRV
  csrc mstatus, t0
  CHECK_TRAP_FIELD(mtrap, TRAP_COUNT, 1)
  li t0, MSTATUS_MPP
  csrs mstatus, t0                   # back to MPP = M

  # ---- sfence.vma after remapping VA_A to page_c (done by S itself)
  S_RUN(60, li a1, VA_A; ld a0, 0(a1); la t1, l0_pt; la t2, page_c; srli t2, t2, 12; slli t2, t2, 10; ori t2, t2, PTE_R | PTE_W | PTE_A | PTE_D | PTE_V; sd t2, 0(t1); li a2, VA_A; sfence.vma a2; ld a0, 0(a1))
  CHECK_REG(a0, 0xccccddddeeeeffff)
  # ... and back, with a global sfence.vma.
  S_RUN(61, la t1, l0_pt; la t2, page_a; srli t2, t2, 12; slli t2, t2, 10; ori t2, t2, PTE_R | PTE_W | PTE_A | PTE_D | PTE_V; sd t2, 0(t1); sfence.vma; li a1, VA_A; ld a0, 0(a1))
  CHECK_REG(a0, 0x1111222233334444)

  # ---- satp: a write with an unsupported mode (1..7 are reserved) is ignored
  TEST_CASE(70, a0, 0, li a1, (5 << 60) | 0x1234; csrw satp, a1; csrr a0, satp; sub a0, a0, s10)
  csrw satp, zero
  sfence.vma
  TEST_PASS
