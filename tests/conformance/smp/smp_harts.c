/* Two harts (run with --cpus 2 / -smp 2): a parked hart started with a CLINT
   software interrupt; AMOs and LR/SC loops from both harts at once lose no
   update; a store by the other hart makes a pending SC fail; a software
   interrupt from hart 1 wakes hart 0 from WFI and shows in mip until
   cleared. Handshakes are bounded spins, so a lost wake-up fails a test
   instead of hanging. */
#include "conformance.h"

#define ROUNDS 20000
#define SPIN_LIMIT 200000000ull

static volatile uint64_t hart1_started, hart1_done, amo_counter, lrsc_counter;
static volatile uint64_t step, shared_word;

static uint64_t wait_for(volatile uint64_t* word, uint64_t value) {
  for (uint64_t spins = 0; spins < SPIN_LIMIT; ++spins)
    if (*word == value) return 1;
  return 0;
}

static void amo_add(volatile uint64_t* word) {
  __asm__ volatile("amoadd.d zero, %1, (%0)" ::"r"(word), "r"(1ull) : "memory");
}

static void lrsc_add(volatile uint64_t* word) {
  uint64_t value, failed;
  do {
    __asm__ volatile("lr.d %0, (%2)\n\taddi %0, %0, 1\n\tsc.d %1, %0, (%2)"
                     : "=&r"(value), "=&r"(failed)
                     : "r"(word)
                     : "memory");
  } while (failed);
}

static void hart1_main(uint64_t hartid) {
  *(volatile uint32_t*)(CLINT_MSIP + 4 * hartid) = 0;  /* acknowledge the start */
  hart1_started = hartid;
  wait_for(&step, 1);
  for (int i = 0; i < ROUNDS; ++i) {
    amo_add(&amo_counter);
    lrsc_add(&lrsc_counter);
  }
  wait_for(&step, 2);  /* hart 0 holds a reservation on shared_word */
  shared_word = 0x2222;
  step = 3;
  wait_for(&step, 4);  /* hart 0 waits in WFI for our interrupt */
  *(volatile uint32_t*)(CLINT_MSIP + 0) = 1;
  hart1_done = 1;
  for (;;) __asm__ volatile("wfi");
}

int main(void) {
  start_secondary(1, hart1_main);
  CHECK(1, wait_for(&hart1_started, 1), 1);
  CHECK(2, *(volatile uint32_t*)(CLINT_MSIP + 4), 0);  /* hart 1 cleared its msip */

  step = 1;
  for (int i = 0; i < ROUNDS; ++i) {
    amo_add(&amo_counter);
    lrsc_add(&lrsc_counter);
  }
  /* Bounded wait for hart 1's last updates: both counters reach 2 * ROUNDS. */
  CHECK(3, wait_for(&amo_counter, 2 * ROUNDS), 1);
  CHECK(4, wait_for(&lrsc_counter, 2 * ROUNDS), 1);

  /* LR here, a store to the same word by hart 1, then SC must fail. */
  uint64_t loaded, failed;
  shared_word = 0x1111;
  __asm__ volatile("lr.d %0, (%1)" : "=r"(loaded) : "r"(&shared_word) : "memory");
  step = 2;
  uint64_t acknowledged = wait_for(&step, 3);
  __asm__ volatile("sc.d %0, %2, (%1)" : "=r"(failed) : "r"(&shared_word), "r"(0x3333ull) : "memory");
  CHECK(5, acknowledged, 1);
  CHECK(6, loaded, 0x1111);
  CHECK(7, failed != 0, 1);
  CHECK(8, shared_word, 0x2222);

  /* WFI with MSIE on and MIE off: hart 1's IPI wakes us without a trap. */
  write_csr(mie, MIP_MSIP);
  step = 4;
  for (uint64_t spins = 0; spins < 1000 && !(read_csr(mip) & MIP_MSIP); ++spins) __asm__ volatile("wfi");
  CHECK(9, read_csr(mip) & MIP_MSIP, MIP_MSIP);
  *(volatile uint32_t*)(CLINT_MSIP + 0) = 0;
  uint64_t cleared = 0;
  for (uint64_t spins = 0; spins < 1000000 && !cleared; ++spins) cleared = !(read_csr(mip) & MIP_MSIP);
  CHECK(10, cleared, 1);
  write_csr(mie, 0);
  CHECK(11, wait_for(&hart1_done, 1), 1);
  return 0;
}
