/* Conformance runtime: HTIF console/exit and the C halves of the M- and S-mode
   trap vectors. A trap is served only if the test announced it (struct
   trap_expectation); any other trap prints its cause and fails the program
   with a code that names it: 200+cause (M-mode exception), 216+cause (S-mode
   exception), 240+code (interrupt). */
#include "conformance.h"

volatile struct trap_expectation mtrap = {TRAP_NONE, 0, 0, 0, 0, 0, 0, 0};
volatile struct trap_expectation strap = {TRAP_NONE, 0, 0, 0, 0, 0, 0, 0};

/* Read by parked harts in crt.S. */
void (*volatile secondary_entry)(uint64_t hartid);

void start_secondary(uint64_t hart, void (*entry)(uint64_t hartid)) {
  secondary_entry = entry;
  __asm__ volatile("fence rw, rw" ::: "memory");
  *(volatile uint32_t*)(CLINT_MSIP + 4 * hart) = 1;
}

struct trap_frame {
  uint64_t x[32];
};

/* HTIF console: device 1, command 1. Wait for the host to take each byte
   (it clears tohost and answers through fromhost). */
void htif_putchar(char c) {
  while (tohost != 0) {
  }
  tohost = (1ull << 56) | (1ull << 48) | (uint8_t)c;
  while (fromhost == 0) {
  }
  fromhost = 0;
}

void print_str(const char* s) {
  while (*s) htif_putchar(*s++);
}

void print_hex(uint64_t value) {
  htif_putchar('0');
  htif_putchar('x');
  int started = 0;
  for (int shift = 60; shift >= 0; shift -= 4) {
    unsigned digit = (value >> shift) & 0xf;
    if (digit || started || shift == 0) {
      htif_putchar("0123456789abcdef"[digit]);
      started = 1;
    }
  }
}

void print_dec(uint64_t value) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = (char)('0' + value % 10);
    value /= 10;
  } while (value);
  while (n) htif_putchar(digits[--n]);
}

void report_mismatch(uint64_t test, uint64_t got, uint64_t expected) {
  print_str("FAIL test ");
  print_dec(test);
  print_str(": got ");
  print_hex(got);
  print_str(" expected ");
  print_hex(expected);
  print_str("\n");
  exit_program(test ? test : 199);
}

static unsigned instruction_length(uint64_t pc) {
  uint16_t low = *(volatile uint16_t*)pc;
  return (low & 3) == 3 ? 4 : 2;
}

static _Noreturn void unexpected_trap(const char* who, uint64_t cause, uint64_t epc, uint64_t tval,
                                      uint64_t code) {
  print_str(who);
  print_str(" unexpected trap cause=");
  print_hex(cause);
  print_str(" epc=");
  print_hex(epc);
  print_str(" tval=");
  print_hex(tval);
  print_str("\n");
  exit_program(code);
}

static void record(volatile struct trap_expectation* e, uint64_t cause, uint64_t epc, uint64_t tval,
                   uint64_t prev_mode, uint64_t status) {
  e->seen_cause = cause;
  e->seen_epc = epc;
  e->seen_tval = tval;
  e->seen_prev_mode = prev_mode;
  e->seen_status = status;
  e->count++;
  e->cause = TRAP_NONE; /* one trap per announcement */
}

void machine_trap(struct trap_frame* frame) {
  (void)frame;
  uint64_t cause = read_csr(mcause), epc = read_csr(mepc), tval = read_csr(mtval);
  uint64_t status = read_csr(mstatus);
  int64_t want = mtrap.cause;
  if (want == TRAP_NONE || (want != TRAP_ANY && (uint64_t)want != cause)) {
    uint64_t code = (cause >> 63) ? 240 + (cause & 15) : 200 + (cause & 15);
    unexpected_trap("M", cause, epc, tval, code);
  }
  uint64_t resume = mtrap.resume;
  record(&mtrap, cause, epc, tval, (status >> 11) & 3, status);
  if (cause >> 63) {
    /* Mask the interrupt that fired so it cannot fire again on return. */
    clear_csr(mie, 1ull << (cause & 63));
    if (resume == 0) return;
  } else if (resume == 0) {
    write_csr(mepc, epc + instruction_length(epc));
    return;
  }
  write_csr(mepc, resume);
  set_csr(mstatus, MSTATUS_MPP_M); /* carry on in M-mode at the resume label */
}

void supervisor_trap(struct trap_frame* frame) {
  (void)frame;
  uint64_t cause = read_csr(scause), epc = read_csr(sepc), tval = read_csr(stval);
  uint64_t status = read_csr(sstatus);
  int64_t want = strap.cause;
  if (want == TRAP_NONE || (want != TRAP_ANY && (uint64_t)want != cause)) {
    uint64_t code = (cause >> 63) ? 240 + (cause & 15) : 216 + (cause & 15);
    unexpected_trap("S", cause, epc, tval, code);
  }
  uint64_t resume = strap.resume;
  record(&strap, cause, epc, tval, (status >> 8) & 1, status);
  if (cause >> 63) {
    clear_csr(sie, 1ull << (cause & 63));
    if (resume == 0) return;
  } else if (resume == 0) {
    write_csr(sepc, epc + instruction_length(epc));
    return;
  }
  write_csr(sepc, resume);
  set_csr(sstatus, MSTATUS_SPP); /* carry on in S-mode at the resume label */
}
