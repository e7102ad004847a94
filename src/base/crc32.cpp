#include "base/crc32.h"

#include <zlib.h>

#include <algorithm>

namespace strata {

uint32_t crc32Update(uint32_t crc, const void* data, size_t size) {
  auto bytes = static_cast<const Bytef*>(data);
  uLong value = crc;
  while (size > 0) {  // zlib takes uInt lengths
    uInt chunk = static_cast<uInt>(std::min<size_t>(size, 1u << 30));
    value = ::crc32(value, bytes, chunk);
    bytes += chunk;
    size -= chunk;
  }
  return static_cast<uint32_t>(value);
}

}  // namespace strata
