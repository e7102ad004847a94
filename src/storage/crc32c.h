// CRC-32C (Castagnoli), the checksum of the volume manager's metadata copies.
#pragma once

#include <cstddef>
#include <cstdint>

namespace strata::storage {

uint32_t crc32c(const void* data, size_t length, uint32_t crc = 0);

}  // namespace strata::storage
