/* Compiled C on the bare hart: what a compiler emits for ordinary code
   (loops, calls, 128-bit arithmetic, division, a switch jump table, doubles) plus
   the C side of the runtime (console, CSR macros, a timer interrupt announced
   through the trap expectation). Expected values are well-known constants:
   CRC-32 of "123456789" is 0xcbf43926, F(90) = 2880067194370816120,
   sqrt(2)^2 in doubles is 2.0000000000000004 (0x4000000000000001). */
#include "conformance.h"

static uint32_t crc32(const char* data, int length) {
  uint32_t crc = 0xffffffffu;
  for (int i = 0; i < length; ++i) {
    crc ^= (uint8_t)data[i];
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1));
  }
  return ~crc;
}

static uint64_t fibonacci(int n) {
  uint64_t a = 0, b = 1;
  while (n--) {
    uint64_t next = a + b;
    a = b;
    b = next;
  }
  return a;
}

static void insertion_sort(int64_t* values, int count) {
  for (int i = 1; i < count; ++i) {
    int64_t value = values[i];
    int j = i - 1;
    while (j >= 0 && values[j] > value) {
      values[j + 1] = values[j];
      --j;
    }
    values[j + 1] = value;
  }
}

/* A dense switch whose cases do different work, so gcc emits a jump table
   (an indirect `jr` through .rodata; CMake's conformance.c_runtime_jump_table
   test checks the disassembly) rather than a lookup array or a branch tree. */
__attribute__((noinline)) static int64_t dispatch(int op, int64_t a, int64_t b) {
  switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a ^ (b << 3);
    case 4: return a / b;
    case 5: return (a >> 2) | b;
    case 6: return a % b;
    case 7: return ~a & b;
    default: return -1;
  }
}

static uint64_t double_bits(double d) {
  union { double d; uint64_t u; } v = {d};
  return v.u;
}

/* Values the compiler cannot fold. */
static volatile uint64_t opaque_max = 0xffffffffffffffffull;
static volatile int64_t opaque_negative = -7;
static volatile double opaque_two = 2.0;
static volatile int opaque_ops[10] = {-1, 0, 1, 2, 3, 4, 5, 6, 7, 8};

int main(void) {
  CHECK(1, crc32("123456789", 9), 0xcbf43926);
  CHECK(2, fibonacci(90), 2880067194370816120ull);
  unsigned __int128 square = (unsigned __int128)opaque_max * opaque_max;  /* (2^64-1)^2 */
  CHECK(3, (uint64_t)(square >> 64), 0xfffffffffffffffeull);
  CHECK(4, (uint64_t)square, 1);
  CHECK(5, opaque_negative / 2, (uint64_t)-3);   /* C division truncates, like div */
  CHECK(6, opaque_negative % 2, (uint64_t)-1);
  CHECK(7, (uint64_t)opaque_negative >> 60, 0xf);
  int64_t values[8] = {5, -3, 9, 0, -100, 42, 7, 7};
  insertion_sort(values, 8);
  CHECK(8, values[0], (uint64_t)-100);
  CHECK(9, values[3], 5);
  CHECK(10, values[7], 42);
  /* 1000 and 7: 1007, 993, 7000, 976, 142, 255, 6, 7, and -1 twice. */
  int64_t total = 0;
  for (int i = 0; i < 10; ++i) total += dispatch(opaque_ops[i], 1000, opaque_ops[8]);
  CHECK(11, total, 10384);
  double root = __builtin_sqrt(opaque_two);
  CHECK(12, double_bits(root), 0x3ff6a09e667f3bcdull);
  CHECK(13, double_bits(root * root), 0x4000000000000001ull);
  CHECK(14, (int64_t)(opaque_two * -1.75), (uint64_t)-3);  /* -3.5 truncates to -3 */
  CHECK(15, read_csr(mhartid), 0);

  /* A timer interrupt ~20 us away, announced to the M-mode handler. */
  volatile uint64_t* mtime = (volatile uint64_t*)CLINT_MTIME;
  volatile uint64_t* mtimecmp = (volatile uint64_t*)CLINT_MTIMECMP;
  expect_machine_trap((int64_t)(CAUSE_INTERRUPT_BIT | 7), 0);
  *mtimecmp = *mtime + 200;
  write_csr(mie, MIP_MTIP);
  set_csr(mstatus, MSTATUS_MIE);
  for (uint64_t spin = 0; mtrap.count == 0 && spin < (1ull << 26); ++spin) {
  }
  clear_csr(mstatus, MSTATUS_MIE);
  *mtimecmp = ~0ull;
  CHECK(16, mtrap.count, 1);
  CHECK(17, mtrap.seen_cause, CAUSE_INTERRUPT_BIT | 7);

  print_str("c_runtime: ok\n");
  return 0;
}
