/* Large memcpy and memset: 16 MiB buffers copied and filled over and over
 * (libc's routines, as programs use them), then a checksum of the result.
 * Argument: passes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { kBufferBytes = 16 << 20 };

int main(int argc, char** argv) {
  long passes = argc > 1 ? atol(argv[1]) : 40;
  uint8_t* source = malloc(kBufferBytes);
  uint8_t* target = malloc(kBufferBytes);
  if (!source || !target) return 1;
  for (size_t i = 0; i < kBufferBytes; ++i) source[i] = (uint8_t)(i * 131 + (i >> 12));
  uint64_t sum = 0;
  for (long pass = 0; pass < passes; ++pass) {
    memset(target, (int)pass, kBufferBytes);
    sum += target[(size_t)pass * 4099 % kBufferBytes];
    /* A shifting offset, so copies are not always aligned alike. */
    size_t offset = (size_t)pass % 64;
    memcpy(target + offset, source, kBufferBytes - offset);
    source[(size_t)pass * 7919 % kBufferBytes] ^= target[(size_t)pass * 104729 % kBufferBytes];
  }
  for (size_t i = 0; i < kBufferBytes; i += 64) sum = sum * 31 + target[i];
  printf("memops passes=%ld MiB-moved=%ld sum=%016llx\n", passes, passes * 2 * (kBufferBytes >> 20),
         (unsigned long long)sum);
  free(source);
  free(target);
  return 0;
}
