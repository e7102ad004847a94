/* A compression round trip: an LZ77 compressor (hash of the next 4 bytes to
 * the last position seen, greedy matches) and its decompressor over 4 MiB of
 * generated text-like data, checked byte for byte. Argument: rounds.
 * Format, one sequence after another: a token byte (literal count in the high
 * nibble, match length - 4 in the low one, 15 meaning more in the bytes that
 * follow, each added until one is below 255), the literals, a 2-byte offset;
 * the last sequence has literals only. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { kInputBytes = 4 << 20, kHashBits = 16, kMinMatch = 4, kMaxOffset = 65535 };

static uint32_t hash4(const uint8_t* p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return (v * 2654435761u) >> (32 - kHashBits);
}

static uint8_t* put_length(uint8_t* out, size_t length) {
  for (; length >= 255; length -= 255) *out++ = 255;
  *out++ = (uint8_t)length;
  return out;
}

static uint8_t* put_sequence(uint8_t* out, const uint8_t* literals, size_t literal_count, size_t match_length,
                             size_t offset) {
  size_t extra = match_length ? match_length - kMinMatch : 0;
  *out++ = (uint8_t)(((literal_count < 15 ? literal_count : 15) << 4) | (extra < 15 ? extra : 15));
  if (literal_count >= 15) out = put_length(out, literal_count - 15);
  memcpy(out, literals, literal_count);
  out += literal_count;
  if (!match_length) return out;
  *out++ = (uint8_t)offset;
  *out++ = (uint8_t)(offset >> 8);
  if (extra >= 15) out = put_length(out, extra - 15);
  return out;
}

static size_t compress(const uint8_t* in, size_t size, uint8_t* out) {
  static uint32_t last_seen[1u << kHashBits];
  memset(last_seen, 0xff, sizeof last_seen);
  uint8_t* start = out;
  size_t anchor = 0, at = 0;
  while (at + kMinMatch + 8 < size) {
    uint32_t h = hash4(in + at);
    uint32_t candidate = last_seen[h];
    last_seen[h] = (uint32_t)at;
    if (candidate == UINT32_MAX || at - candidate > kMaxOffset || memcmp(in + candidate, in + at, kMinMatch) != 0) {
      ++at;
      continue;
    }
    size_t length = kMinMatch;
    while (at + length < size && in[candidate + length] == in[at + length]) ++length;
    out = put_sequence(out, in + anchor, at - anchor, length, at - candidate);
    at += length;
    anchor = at;
  }
  out = put_sequence(out, in + anchor, size - anchor, 0, 0);
  return (size_t)(out - start);
}

/* Returns the decompressed size, or 0 for a stream that does not decode. */
static size_t decompress(const uint8_t* in, size_t size, uint8_t* out, size_t capacity) {
  const uint8_t* end = in + size;
  size_t produced = 0;
  while (in < end) {
    uint8_t token = *in++;
    size_t literal_count = token >> 4, extra = token & 15;
    if (literal_count == 15)
      for (uint8_t more = 255; more == 255 && in < end; literal_count += more) more = *in++;
    if (literal_count > (size_t)(end - in) || literal_count > capacity - produced) return 0;
    memcpy(out + produced, in, literal_count);
    in += literal_count;
    produced += literal_count;
    if (in == end) break;
    if (end - in < 2) return 0;
    size_t offset = in[0] | (size_t)in[1] << 8;
    in += 2;
    if (extra == 15)
      for (uint8_t more = 255; more == 255 && in < end; extra += more) more = *in++;
    size_t length = extra + kMinMatch;
    if (offset == 0 || offset > produced || length > capacity - produced) return 0;
    for (size_t i = 0; i < length; ++i, ++produced) out[produced] = out[produced - offset];  /* may overlap */
  }
  return produced;
}

int main(int argc, char** argv) {
  long rounds = argc > 1 ? atol(argv[1]) : 4;
  static const char* words[] = {"virtual ", "machine ", "switch ", "port ", "frame ", "guest ", "host ",
                                "block ", "device ", "queue ", "the ", "a ", "of ", "and ", "to ", "strata\n"};
  uint8_t* input = malloc(kInputBytes);
  uint8_t* packed = malloc(kInputBytes + kInputBytes / 8 + 64);
  uint8_t* unpacked = malloc(kInputBytes);
  if (!input || !packed || !unpacked) return 1;
  uint32_t seed = 12345;
  for (size_t at = 0; at < kInputBytes;) {
    seed = seed * 1103515245u + 12345u;
    if ((seed >> 28) == 0) {  /* now and then a number, which repeats less */
      input[at++] = (uint8_t)('0' + (seed >> 8) % 10);
      continue;
    }
    const char* word = words[(seed >> 16) % 16];
    for (size_t i = 0; word[i] && at < kInputBytes; ++i) input[at++] = (uint8_t)word[i];
  }
  size_t packed_size = 0;
  uint32_t check = 0;
  for (long round = 0; round < rounds; ++round) {
    input[(size_t)round * 7919 % kInputBytes] ^= (uint8_t)round;  /* each round's data differs */
    packed_size = compress(input, kInputBytes, packed);
    size_t unpacked_size = decompress(packed, packed_size, unpacked, kInputBytes);
    if (unpacked_size != kInputBytes || memcmp(unpacked, input, kInputBytes) != 0) {
      printf("compress: round %ld did not round-trip\n", round);
      return 1;
    }
    for (size_t i = 0; i < packed_size; i += 97) check = check * 33 + packed[i];
  }
  printf("compress rounds=%ld bytes=%d packed=%zu check=%08x\n", rounds, kInputBytes, packed_size, check);
  free(input);
  free(packed);
  free(unpacked);
  return 0;
}
