// XOR parity for RAID 5, computed with ISA-L's xor_gen (libisal from Debian,
// loaded at first use) and a plain word loop when the library is absent.
// Buffers must be 32-byte aligned and lengths a multiple of 32 (our scratch
// buffers are 4 KiB aligned and sized).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace strata::storage::volume {

// out = sources[0] ^ sources[1] ^ ...; out may not alias a source.
void xorBlocks(const std::vector<const uint8_t*>& sources, uint8_t* out, size_t length);
// Whether the fast path (ISA-L) is in use; for diagnostics and benchmarks.
bool parityUsesIsal();

}  // namespace strata::storage::volume
