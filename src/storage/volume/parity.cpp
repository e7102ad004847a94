#include "storage/volume/parity.h"

#include <isa-l/raid.h>

#include <cstring>

namespace strata::storage::volume {

namespace {

void xorPortable(const std::vector<const uint8_t*>& sources, uint8_t* out, size_t length) {
  std::memcpy(out, sources[0], length);
  for (size_t s = 1; s < sources.size(); ++s) xorInto(out, sources[s], length);
}

}  // namespace

void xorInto(uint8_t* out, const uint8_t* in, size_t length) {
  size_t i = 0;
  for (; i + 8 <= length; i += 8) {
    uint64_t a, b;
    std::memcpy(&a, out + i, 8);
    std::memcpy(&b, in + i, 8);
    a ^= b;
    std::memcpy(out + i, &a, 8);
  }
  for (; i < length; ++i) out[i] ^= in[i];
}

void xorBlocks(const std::vector<const uint8_t*>& sources, uint8_t* out, size_t length) {
  if (sources.empty()) {
    std::memset(out, 0, length);
    return;
  }
  if (sources.size() == 1) {
    std::memcpy(out, sources[0], length);
    return;
  }
  bool aligned = length % 32 == 0 && length <= 0x7fffffff && reinterpret_cast<uintptr_t>(out) % 32 == 0;
  for (const uint8_t* s : sources) aligned = aligned && reinterpret_cast<uintptr_t>(s) % 32 == 0;
  if (!aligned) return xorPortable(sources, out, length);
  std::vector<void*> array;
  for (const uint8_t* s : sources) array.push_back(const_cast<uint8_t*>(s));
  array.push_back(out);
  xor_gen(static_cast<int>(array.size()), static_cast<int>(length), array.data());
}

}  // namespace strata::storage::volume
