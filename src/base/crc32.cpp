#include "base/crc32.h"

#include <isa-l/crc.h>

namespace strata {

// ISA-L's reflected CRC-32 is zlib's (same polynomial, same pre- and post-inversion, chainable alike),
// several times faster on a restore's state file.
uint32_t crc32Update(uint32_t crc, const void* data, size_t size) {
  return ::crc32_gzip_refl(crc, static_cast<const unsigned char*>(data), size);
}

}  // namespace strata
