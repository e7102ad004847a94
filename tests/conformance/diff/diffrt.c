/* Guest side of the differential programs: after each random sequence,
   print its index and an FNV-1a digest of its trace (two 64-bit words per
   instruction), or with `dump` every trace word, through the HTIF console. */
#include "conformance.h"

void report_sequence(uint64_t index, const uint64_t* trace, uint64_t words, uint64_t dump) {
  print_dec(index);
  if (dump) {
    print_str(":\n");
    for (uint64_t i = 0; i < words; ++i) {
      print_hex(trace[i]);
      htif_putchar('\n');
    }
    return;
  }
  uint64_t hash = 0xcbf29ce484222325ull;
  for (uint64_t i = 0; i < words; ++i) {
    uint64_t word = trace[i];
    for (int byte = 0; byte < 8; ++byte) {
      hash ^= (word >> (8 * byte)) & 0xff;
      hash *= 0x100000001b3ull;
    }
  }
  htif_putchar(' ');
  print_hex(hash);
  htif_putchar('\n');
}
