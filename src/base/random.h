// Bytes from the kernel's random generator, getrandom(2): the guest's entropy
// device, VM generation ids, the daemon's tokens and WebSocket nonces.
#pragma once

#include <cstddef>

namespace strata {

// Fills [data, data + size), retrying after a signal and a short read, and
// returns the bytes filled: fewer than `size` only if getrandom failed
// otherwise. Blocks until the kernel's generator is seeded.
size_t fillRandom(void* data, size_t size);

}  // namespace strata
