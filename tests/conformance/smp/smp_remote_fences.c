/* Fences across harts (run with --cpus 2 / -smp 2): hart 1 caches a
   translation and a translated block, hart 0 then changes the page table entry
   and rewrites the code; after its own sfence.vma / fence.i hart 1 must see
   the new mapping and run the new instructions (the software half of a TLB
   shootdown and of a remote fence.i). Translated accesses are M-mode loads
   with MPRV = 1 and MPP = S through an Sv39 table both harts share. */
#include "conformance.h"

#define SPIN_LIMIT 200000000ull
#define TEST_VA 0x40000000ull

static uint64_t root_table[512] __attribute__((aligned(4096)));
static uint64_t level1_table[512] __attribute__((aligned(4096)));
static uint64_t level0_table[512] __attribute__((aligned(4096)));
static volatile uint64_t page_a[512] __attribute__((aligned(4096))) = {0xaaaa};
static volatile uint64_t page_b[512] __attribute__((aligned(4096))) = {0xbbbb};

/* li a0, 1; ret — rewritten to li a0, 2 by hart 0. */
static volatile uint32_t patched_code[4] __attribute__((aligned(16))) = {0x00100513, 0x00008067};
#define LI_A0_2 0x00200513u

static volatile uint64_t step, hart1_before, hart1_after, hart1_code_before, hart1_code_after;

static uint64_t wait_for(volatile uint64_t* word, uint64_t value) {
  for (uint64_t spins = 0; spins < SPIN_LIMIT; ++spins)
    if (*word == value) return 1;
  return 0;
}

static uint64_t table_entry(const volatile void* target, uint64_t flags) {
  return (((uint64_t)target >> 12) << 10) | flags | PTE_V;
}

/* A load of `va` translated as S-mode (MPRV) through this hart's satp. */
static uint64_t translated_load(uint64_t va) {
  uint64_t value;
  clear_csr(mstatus, MSTATUS_MPP);
  set_csr(mstatus, MSTATUS_MPP_S);
  __asm__ volatile("csrs mstatus, %2\n\tld %0, 0(%1)\n\tcsrc mstatus, %2"
                   : "=&r"(value)
                   : "r"(va), "r"(MSTATUS_MPRV)
                   : "memory");
  set_csr(mstatus, MSTATUS_MPP);
  return value;
}

static uint64_t call_patched_code(void) {
  uint64_t (*function)(void) = (uint64_t (*)(void))(uintptr_t)patched_code;
  return function();
}

static void use_shared_table(void) {
  write_csr(satp, SATP_MODE_SV39 | ((uint64_t)root_table >> 12));
  __asm__ volatile("sfence.vma" ::: "memory");
}

static void hart1_main(uint64_t hartid) {
  *(volatile uint32_t*)(CLINT_MSIP + 4 * hartid) = 0; /* acknowledge the start */
  write_csr(pmpaddr0, -1ull);                           /* open memory to S (crt.S did so for hart 0 only) */
  write_csr(pmpcfg0, 0x1f);
  use_shared_table();
  hart1_before = translated_load(TEST_VA);
  hart1_code_before = call_patched_code();
  step = 1;
  wait_for(&step, 2); /* hart 0 changed the PTE and the code */
  __asm__ volatile("sfence.vma zero, zero\n\tfence.i" ::: "memory");
  hart1_after = translated_load(TEST_VA);
  hart1_code_after = call_patched_code();
  write_csr(satp, 0);
  step = 3;
  for (;;) __asm__ volatile("wfi");
}

int main(void) {
  /* RAM identity-mapped by a 1 GiB page (stack and data stay reachable under
     MPRV); TEST_VA through three levels to page_a. */
  root_table[2] = table_entry((void*)0x80000000ull, PTE_R | PTE_W | PTE_X | PTE_A | PTE_D);
  root_table[1] = table_entry(level1_table, 0);
  level1_table[0] = table_entry(level0_table, 0);
  level0_table[0] = table_entry(page_a, PTE_R | PTE_W | PTE_A | PTE_D);
  __asm__ volatile("fence rw, rw" ::: "memory");
  use_shared_table();
  CHECK(1, translated_load(TEST_VA), 0xaaaa);

  start_secondary(1, hart1_main);
  CHECK(2, wait_for(&step, 1), 1);
  CHECK(3, hart1_before, 0xaaaa);
  CHECK(4, hart1_code_before, 1);
  CHECK(5, call_patched_code(), 1); /* hart 0 has the block cached as well */

  level0_table[0] = table_entry(page_b, PTE_R | PTE_W | PTE_A | PTE_D);
  patched_code[0] = LI_A0_2;
  __asm__ volatile("fence rw, rw\n\tsfence.vma zero, zero\n\tfence.i" ::: "memory");
  CHECK(6, translated_load(TEST_VA), 0xbbbb);
  CHECK(7, call_patched_code(), 2);

  step = 2;
  CHECK(8, wait_for(&step, 3), 1);
  CHECK(9, hart1_after, 0xbbbb);
  CHECK(10, hart1_code_after, 2);
  write_csr(satp, 0);
  __asm__ volatile("sfence.vma" ::: "memory");
  return 0;
}
