// CRC-32 (zlib's, the IEEE polynomial) over buffers of any size: the checksum of
// snapshot state files and of live-migration channels and post-copy pages.
#pragma once

#include <cstddef>
#include <cstdint>

namespace strata {

// Extends `crc` (0 to start) over `size` bytes.
uint32_t crc32Update(uint32_t crc, const void* data, size_t size);

}  // namespace strata
