/* Regression: strata's HTIF handler treated every odd tohost value as an exit
   request, so printing a character with an odd code (device 1, command 1,
   payload 'A' = 0x41) ended the program as "test 0x80800000000020 failed".
   Exit requests are device 0 / command 0 only. This prints every printable
   ASCII byte, odd ones included, and then passes. */
#include "conformance.h"

int main(void) {
  for (int c = 0x20; c < 0x7f; ++c) htif_putchar((char)c);
  htif_putchar('\n');
  return 0;
}
