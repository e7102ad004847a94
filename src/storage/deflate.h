// Raw DEFLATE decompression for qcow2 compressed clusters. zlib is loaded at
// run time (libz.so.1 is part of every Debian system) so the storage library
// needs no link-time dependency for a feature most images never use.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/result.h"

namespace strata::storage {

// Inflates raw deflate data (no zlib header) into exactly outLength bytes.
// Input past the end of the stream is ignored, as qcow2 pads to sectors.
Result<void> inflateRaw(const uint8_t* input, size_t inputLength, uint8_t* output, size_t outLength);

}  // namespace strata::storage
