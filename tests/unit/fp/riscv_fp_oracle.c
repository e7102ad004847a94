/* Reference oracle for the fp unit tests: a tiny riscv64 Linux program, run
 * under qemu-riscv64, that executes one real F/D instruction per input record
 * and prints the result bits and fflags. fp_crosscheck_test.cpp builds it with
 * the riscv64 cross compiler when available and compares against cpu/fp.
 * Input records (stdin, text): "op rm a b c" (hex 64-bit operands).
 * Output (stdout): "result flags" per record. */
#include <stdint.h>
#include <stdio.h>

/* Runs INSN with frm = rm and fresh fflags; operands in ft0..ft2 / a-regs. */
#define FP3(MVIN, MVOUT, INSN)                                                              \
  __asm__ volatile("fsrm %[rm]\n fsflags x0\n" MVIN " ft0,%[a]\n" MVIN " ft1,%[b]\n" MVIN   \
                   " ft2,%[c]\n" INSN "\n" MVOUT " %[r],ft3\n frflags %[f]\n"               \
                   : [r] "=&r"(r), [f] "=&r"(f)                                             \
                   : [rm] "r"(rm), [a] "r"(a), [b] "r"(b), [c] "r"(c)                       \
                   : "ft0", "ft1", "ft2", "ft3", "memory")
#define FPINT(MVIN, INSN)                                                                   \
  __asm__ volatile("fsrm %[rm]\n fsflags x0\n" MVIN " ft0,%[a]\n" MVIN " ft1,%[b]\n" INSN   \
                   "\n frflags %[f]\n"                                                      \
                   : [r] "=&r"(r), [f] "=&r"(f)                                             \
                   : [rm] "r"(rm), [a] "r"(a), [b] "r"(b)                                   \
                   : "ft0", "ft1", "memory")
#define INTFP(MVOUT, INSN)                                                                  \
  __asm__ volatile("fsrm %[rm]\n fsflags x0\n" INSN "\n" MVOUT " %[r],ft3\n frflags %[f]\n" \
                   : [r] "=&r"(r), [f] "=&r"(f)                                             \
                   : [rm] "r"(rm), [a] "r"(a)                                               \
                   : "ft3", "memory")

int main(void) {
  unsigned op;
  unsigned long long ra, rb, rc;
  unsigned rmIn;
  while (scanf("%u %u %llx %llx %llx", &op, &rmIn, &ra, &rb, &rc) == 5) {
    uint64_t a = ra, b = rb, c = rc, r = 0, f = 0, rm = rmIn;
    switch (op) {
      case 0: FP3("fmv.w.x", "fmv.x.w", "fadd.s ft3,ft0,ft1"); break;
      case 1: FP3("fmv.w.x", "fmv.x.w", "fsub.s ft3,ft0,ft1"); break;
      case 2: FP3("fmv.w.x", "fmv.x.w", "fmul.s ft3,ft0,ft1"); break;
      case 3: FP3("fmv.w.x", "fmv.x.w", "fdiv.s ft3,ft0,ft1"); break;
      case 4: FP3("fmv.w.x", "fmv.x.w", "fsqrt.s ft3,ft0"); break;
      case 5: FP3("fmv.w.x", "fmv.x.w", "fmadd.s ft3,ft0,ft1,ft2"); break;
      case 6: FP3("fmv.w.x", "fmv.x.w", "fmsub.s ft3,ft0,ft1,ft2"); break;
      case 7: FP3("fmv.w.x", "fmv.x.w", "fnmsub.s ft3,ft0,ft1,ft2"); break;
      case 8: FP3("fmv.w.x", "fmv.x.w", "fnmadd.s ft3,ft0,ft1,ft2"); break;
      case 9: FP3("fmv.w.x", "fmv.x.w", "fmin.s ft3,ft0,ft1"); break;
      case 10: FP3("fmv.w.x", "fmv.x.w", "fmax.s ft3,ft0,ft1"); break;
      case 11: FPINT("fmv.w.x", "feq.s %[r],ft0,ft1"); break;
      case 12: FPINT("fmv.w.x", "flt.s %[r],ft0,ft1"); break;
      case 13: FPINT("fmv.w.x", "fle.s %[r],ft0,ft1"); break;
      case 14: FPINT("fmv.w.x", "fclass.s %[r],ft0"); break;
      case 15: FP3("fmv.w.x", "fmv.x.d", "fcvt.d.s ft3,ft0"); break;
      case 16: FP3("fmv.d.x", "fmv.x.w", "fcvt.s.d ft3,ft0,dyn"); break;
      case 17: FPINT("fmv.w.x", "fcvt.w.s %[r],ft0,dyn"); break;
      case 18: FPINT("fmv.w.x", "fcvt.wu.s %[r],ft0,dyn"); break;
      case 19: FPINT("fmv.w.x", "fcvt.l.s %[r],ft0,dyn"); break;
      case 20: FPINT("fmv.w.x", "fcvt.lu.s %[r],ft0,dyn"); break;
      case 21: INTFP("fmv.x.w", "fcvt.s.w ft3,%[a],dyn"); break;
      case 22: INTFP("fmv.x.w", "fcvt.s.wu ft3,%[a],dyn"); break;
      case 23: INTFP("fmv.x.w", "fcvt.s.l ft3,%[a],dyn"); break;
      case 24: INTFP("fmv.x.w", "fcvt.s.lu ft3,%[a],dyn"); break;
      case 32: FP3("fmv.d.x", "fmv.x.d", "fadd.d ft3,ft0,ft1"); break;
      case 33: FP3("fmv.d.x", "fmv.x.d", "fsub.d ft3,ft0,ft1"); break;
      case 34: FP3("fmv.d.x", "fmv.x.d", "fmul.d ft3,ft0,ft1"); break;
      case 35: FP3("fmv.d.x", "fmv.x.d", "fdiv.d ft3,ft0,ft1"); break;
      case 36: FP3("fmv.d.x", "fmv.x.d", "fsqrt.d ft3,ft0"); break;
      case 37: FP3("fmv.d.x", "fmv.x.d", "fmadd.d ft3,ft0,ft1,ft2"); break;
      case 38: FP3("fmv.d.x", "fmv.x.d", "fmsub.d ft3,ft0,ft1,ft2"); break;
      case 39: FP3("fmv.d.x", "fmv.x.d", "fnmsub.d ft3,ft0,ft1,ft2"); break;
      case 40: FP3("fmv.d.x", "fmv.x.d", "fnmadd.d ft3,ft0,ft1,ft2"); break;
      case 41: FP3("fmv.d.x", "fmv.x.d", "fmin.d ft3,ft0,ft1"); break;
      case 42: FP3("fmv.d.x", "fmv.x.d", "fmax.d ft3,ft0,ft1"); break;
      case 43: FPINT("fmv.d.x", "feq.d %[r],ft0,ft1"); break;
      case 44: FPINT("fmv.d.x", "flt.d %[r],ft0,ft1"); break;
      case 45: FPINT("fmv.d.x", "fle.d %[r],ft0,ft1"); break;
      case 46: FPINT("fmv.d.x", "fclass.d %[r],ft0"); break;
      case 49: FPINT("fmv.d.x", "fcvt.w.d %[r],ft0,dyn"); break;
      case 50: FPINT("fmv.d.x", "fcvt.wu.d %[r],ft0,dyn"); break;
      case 51: FPINT("fmv.d.x", "fcvt.l.d %[r],ft0,dyn"); break;
      case 52: FPINT("fmv.d.x", "fcvt.lu.d %[r],ft0,dyn"); break;
      case 53: INTFP("fmv.x.d", "fcvt.d.w ft3,%[a]"); break;
      case 54: INTFP("fmv.x.d", "fcvt.d.wu ft3,%[a]"); break;
      case 55: INTFP("fmv.x.d", "fcvt.d.l ft3,%[a],dyn"); break;
      case 56: INTFP("fmv.x.d", "fcvt.d.lu ft3,%[a],dyn"); break;
      default: r = 0; f = 0xff; break;
    }
    if (op < 32 && op != 15 && op != 11 && op != 12 && op != 13 && op != 14 && (op < 17 || op > 20)) {
      r &= 0xffffffffu; /* single-precision result bits */
    }
    printf("%llx %llx\n", (unsigned long long)r, (unsigned long long)f);
  }
  return 0;
}
