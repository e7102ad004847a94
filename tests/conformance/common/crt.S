# Start-up code and trap vectors shared by every conformance program.
# Hart 0 starts in M-mode at _start; other harts park in WFI until started. The trap vectors
# save every integer register and hand over to C (runtime.c), which either
# serves a trap the test announced (trap_expect) or fails the program.
#include "encoding.h"

  .section .text.init, "ax"
  .globl _start
_start:
  csrr t0, mhartid
  bnez t0, park_hart
  .option push
  .option norelax
  li gp, 0
  .option pop
  la sp, __stack_top
  la t0, __mtrap_stack_top
  csrw mscratch, t0
  la t0, __strap_stack_top
  csrw sscratch, t0
  la t0, trap_entry
  csrw mtvec, t0
  # Without a PMP entry QEMU denies S/U-mode every access: open all memory.
  li t0, -1
  csrw pmpaddr0, t0
  li t0, 0x1f               # NAPOT | X | W | R
  csrw pmpcfg0, t0
  # FPU on, rounding mode RNE, no flags; no interrupts; no delegation.
  li t0, MSTATUS_FS
  csrs mstatus, t0
  csrwi fcsr, 0
  csrw mie, zero
  csrw medeleg, zero
  csrw mideleg, zero
  csrw satp, zero
  # Zero .bss (RAM starts zeroed on both engines, but do not rely on it).
  la t0, __bss_start
  la t1, __bss_end
1: bgeu t0, t1, 2f
  sd zero, 0(t0)
  addi t0, t0, 8
  j 1b
2:
  # Known values in the FP registers so tests never read garbage.
  fmv.d.x f0, zero
  fmv.d.x f1, zero
  fmv.d.x f2, zero
  fmv.d.x f3, zero
  call main
  # main returns 0 for pass, else the number of the failed test.
  j exit_program

# Other harts sleep until hart 0 publishes `secondary_entry` and sends them a
# software interrupt through the CLINT (start_secondary in runtime.c): MSIE is
# on and MIE off, so the interrupt ends WFI without trapping. Each runs the
# entry on its own 4 KiB stack; it must not take traps (mtvec is unset).
park_hart:
  csrsi mie, 8              # MSIE
1: la t0, secondary_entry
  ld t1, 0(t0)
  bnez t1, 2f
  wfi
  j 1b
2: csrr a0, mhartid
  la sp, __secondary_stack_top
  addi t2, a0, -1
  slli t2, t2, 12
  sub sp, sp, t2
  jalr t1
3: wfi
  j 3b

# exit_program(a0 = 0 pass, n = test n failed): never returns.
  .text
  .globl exit_program
exit_program:
  slli a0, a0, 1
  ori a0, a0, 1
  la t0, tohost
1: sd a0, 0(t0)
  j 1b

  .globl pass
pass:
  li a0, 0
  j exit_program

# A TEST_* macro failed: gp = test number, a0 = value seen, a1 = value expected.
  .globl fail_values
fail_values:
  csrr t0, mhartid          # may trap outside M-mode; the trap handler then fails the program
  la sp, __stack_top
  mv a2, a1
  mv a1, a0
  mv a0, gp
  call report_mismatch      # prints and exits with gp
  j exit_program

# Plain failure with gp = test number (no values to show).
  .globl fail
fail:
  la sp, __stack_top
  mv a0, gp
  bnez a0, exit_program
  li a0, 199
  j exit_program

# ---------------------------------------------------------------- traps
# Frame: x1..x31 at offsets 8*i; x0's slot holds nothing.
#define FRAME_SIZE (32 * 8)

  .align 4
  .globl trap_entry
trap_entry:
  csrrw sp, mscratch, sp
  addi sp, sp, -FRAME_SIZE
  SAVE_REGS
  csrr t0, mscratch
  sd t0, 2*8(sp)            # the interrupted sp
  addi t0, sp, FRAME_SIZE
  csrw mscratch, t0
  mv a0, sp
  call machine_trap         # runtime.c; may change mepc/mstatus and the frame
  RESTORE_REGS
  ld sp, 2*8(sp)
  mret

  .align 4
  .globl strap_entry
strap_entry:
  csrrw sp, sscratch, sp
  addi sp, sp, -FRAME_SIZE
  SAVE_REGS
  csrr t0, sscratch
  sd t0, 2*8(sp)
  addi t0, sp, FRAME_SIZE
  csrw sscratch, t0
  mv a0, sp
  call supervisor_trap
  RESTORE_REGS
  ld sp, 2*8(sp)
  sret

# ---------------------------------------------------------------- HTIF
  .section .tohost, "aw", @progbits
  .align 6
  .globl tohost
  .type tohost, @object
  .size tohost, 8
tohost: .dword 0
  .globl fromhost
  .type fromhost, @object
  .size fromhost, 8
fromhost: .dword 0
