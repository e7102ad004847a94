/* CSR bit layouts and trap causes used by the conformance programs (RISC-V
   privileged spec 1.12), shared by assembly and C, plus the register
   save/restore sequences of the trap vectors. */
#ifndef CONFORMANCE_ENCODING_H
#define CONFORMANCE_ENCODING_H

#define MSTATUS_SIE  (1 << 1)
#define MSTATUS_MIE  (1 << 3)
#define MSTATUS_SPIE (1 << 5)
#define MSTATUS_MPIE (1 << 7)
#define MSTATUS_SPP  (1 << 8)
#define MSTATUS_MPP  (3 << 11)
#define MSTATUS_MPP_S (1 << 11)
#define MSTATUS_MPP_M (3 << 11)
#define MSTATUS_FS   (3 << 13)
#define MSTATUS_MPRV (1 << 17)
#define MSTATUS_SUM  (1 << 18)
#define MSTATUS_MXR  (1 << 19)
#define MSTATUS_TVM  (1 << 20)
#define MSTATUS_TW   (1 << 21)
#define MSTATUS_TSR  (1 << 22)

#define MIP_SSIP (1 << 1)
#define MIP_MSIP (1 << 3)
#define MIP_STIP (1 << 5)
#define MIP_MTIP (1 << 7)
#define MIP_SEIP (1 << 9)
#define MIP_MEIP (1 << 11)

#define CAUSE_MISALIGNED_FETCH 0
#define CAUSE_FETCH_ACCESS 1
#define CAUSE_ILLEGAL_INSTRUCTION 2
#define CAUSE_BREAKPOINT 3
#define CAUSE_MISALIGNED_LOAD 4
#define CAUSE_LOAD_ACCESS 5
#define CAUSE_MISALIGNED_STORE 6
#define CAUSE_STORE_ACCESS 7
#define CAUSE_USER_ECALL 8
#define CAUSE_SUPERVISOR_ECALL 9
#define CAUSE_MACHINE_ECALL 11
#define CAUSE_FETCH_PAGE_FAULT 12
#define CAUSE_LOAD_PAGE_FAULT 13
#define CAUSE_STORE_PAGE_FAULT 15
#define CAUSE_INTERRUPT_BIT 0x8000000000000000

/* Page-table entry bits (Sv39/Sv48/Sv57). */
#define PTE_V (1 << 0)
#define PTE_R (1 << 1)
#define PTE_W (1 << 2)
#define PTE_X (1 << 3)
#define PTE_U (1 << 4)
#define PTE_G (1 << 5)
#define PTE_A (1 << 6)
#define PTE_D (1 << 7)
#define SATP_MODE_SV39 (8ull << 60)
#define SATP_MODE_SV48 (9ull << 60)
#define SATP_MODE_SV57 (10ull << 60)

/* CLINT of the virt and spike boards. */
#define CLINT_BASE 0x2000000
#define CLINT_MSIP (CLINT_BASE + 0x0)
#define CLINT_MTIMECMP (CLINT_BASE + 0x4000)
#define CLINT_MTIME (CLINT_BASE + 0xbff8)

#ifdef __ASSEMBLER__
#define SAVE_REGS \
  sd x1, 1*8(sp); sd x3, 3*8(sp); sd x4, 4*8(sp); sd x5, 5*8(sp); sd x6, 6*8(sp); \
  sd x7, 7*8(sp); sd x8, 8*8(sp); sd x9, 9*8(sp); sd x10, 10*8(sp); sd x11, 11*8(sp); \
  sd x12, 12*8(sp); sd x13, 13*8(sp); sd x14, 14*8(sp); sd x15, 15*8(sp); sd x16, 16*8(sp); \
  sd x17, 17*8(sp); sd x18, 18*8(sp); sd x19, 19*8(sp); sd x20, 20*8(sp); sd x21, 21*8(sp); \
  sd x22, 22*8(sp); sd x23, 23*8(sp); sd x24, 24*8(sp); sd x25, 25*8(sp); sd x26, 26*8(sp); \
  sd x27, 27*8(sp); sd x28, 28*8(sp); sd x29, 29*8(sp); sd x30, 30*8(sp); sd x31, 31*8(sp)
#define RESTORE_REGS \
  ld x1, 1*8(sp); ld x3, 3*8(sp); ld x4, 4*8(sp); ld x5, 5*8(sp); ld x6, 6*8(sp); \
  ld x7, 7*8(sp); ld x8, 8*8(sp); ld x9, 9*8(sp); ld x10, 10*8(sp); ld x11, 11*8(sp); \
  ld x12, 12*8(sp); ld x13, 13*8(sp); ld x14, 14*8(sp); ld x15, 15*8(sp); ld x16, 16*8(sp); \
  ld x17, 17*8(sp); ld x18, 18*8(sp); ld x19, 19*8(sp); ld x20, 20*8(sp); ld x21, 21*8(sp); \
  ld x22, 22*8(sp); ld x23, 23*8(sp); ld x24, 24*8(sp); ld x25, 25*8(sp); ld x26, 26*8(sp); \
  ld x27, 27*8(sp); ld x28, 28*8(sp); ld x29, 29*8(sp); ld x30, 30*8(sp); ld x31, 31*8(sp)
#endif

#endif
