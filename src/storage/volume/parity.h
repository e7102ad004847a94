// XOR parity for RAID 5, computed with ISA-L's xor_gen (libisal from Debian).
// ISA-L wants 32-byte aligned buffers and lengths a multiple of 32 (our scratch
// buffers are 4 KiB aligned and sized); other shapes take a plain word loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace strata::storage::volume {

// out = sources[0] ^ sources[1] ^ ...; out may not alias a source.
void xorBlocks(const std::vector<const uint8_t*>& sources, uint8_t* out, size_t length);
// out ^= in.
void xorInto(uint8_t* out, const uint8_t* in, size_t length);

}  // namespace strata::storage::volume
