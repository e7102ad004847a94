// The fuzz targets' entry points, shared by the libFuzzer binaries (built with
// clang when STRATA_FUZZ=ON) and by fuzz_regression, which replays the
// committed corpus through them with the normal compiler as a CTest test.
#pragma once

#include <cstddef>
#include <cstdint>

namespace strata::fuzz {

// Writes the bytes to a file and opens it as qcow2 through openDiskImage, read-only
// and then read-write, reading, writing and querying block status on what opens.
int qcow2ImageOneInput(const uint8_t* data, size_t size);

// Feeds the bytes to an in-process NBD server as one client over a socketpair.
// Odd first byte: a valid handshake (structured replies, base:allocation, NBD_OPT_GO)
// is sent first, so the rest exercises the transmission phase.
int nbdServerOneInput(const uint8_t* data, size_t size);

}  // namespace strata::fuzz
