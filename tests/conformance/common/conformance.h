/* C side of the conformance runtime: console and exit over HTIF (tohost),
   CSR access, and the trap-expectation protocol the trap vectors in crt.S
   serve (announce a trap, run the faulting code, inspect what was recorded). */
#ifndef CONFORMANCE_H
#define CONFORMANCE_H

#include <stdint.h>
#include "encoding.h"

/* What a trap handler should do with the next trap and what it saw.
   Layout is fixed: assembly tests address the fields by offset (TRAP_* below). */
struct trap_expectation {
  int64_t cause;          /* expected mcause/scause; TRAP_NONE, or TRAP_ANY */
  uint64_t resume;        /* resume pc (then in the handler's own mode); 0 = after the instruction */
  uint64_t count;         /* traps served through this expectation */
  uint64_t seen_cause;
  uint64_t seen_epc;
  uint64_t seen_tval;
  uint64_t seen_prev_mode; /* MPP (or SPP) of the trapped code: 0 U, 1 S, 3 M */
  uint64_t seen_status;    /* mstatus (or sstatus) when the trap was taken */
};
#define TRAP_NONE (-1)
#define TRAP_ANY (-2)

extern volatile struct trap_expectation mtrap, strap;
extern volatile uint64_t tohost, fromhost;

/* Starts hart `hart` (1-3) at entry(hartid) on its own stack, in M-mode with
   no trap handling: the hart was parked in WFI by crt.S. */
void start_secondary(uint64_t hart, void (*entry)(uint64_t hartid));

void htif_putchar(char c);
void print_str(const char* s);
void print_hex(uint64_t value);
void print_dec(uint64_t value);
void report_mismatch(uint64_t test, uint64_t got, uint64_t expected);
_Noreturn void exit_program(uint64_t failed_test);

#define read_csr(name) ({ uint64_t v_; __asm__ volatile("csrr %0, " #name : "=r"(v_)); v_; })
#define write_csr(name, value) __asm__ volatile("csrw " #name ", %0" ::"rK"((uint64_t)(value)))
#define set_csr(name, bits) __asm__ volatile("csrs " #name ", %0" ::"rK"((uint64_t)(bits)))
#define clear_csr(name, bits) __asm__ volatile("csrc " #name ", %0" ::"rK"((uint64_t)(bits)))

/* Fails the program with test number n unless got == expected (printing both). */
#define CHECK(n, got, expected)                                                       \
  do {                                                                                \
    uint64_t got_ = (uint64_t)(got), expected_ = (uint64_t)(expected);                \
    if (got_ != expected_) report_mismatch((n), got_, expected_);                     \
  } while (0)

static inline void expect_machine_trap(int64_t cause, uint64_t resume) {
  mtrap.count = 0;
  mtrap.resume = resume;
  mtrap.cause = cause;
}

#endif
