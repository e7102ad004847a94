// Raw DEFLATE decompression (zlib) for qcow2 compressed clusters.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/result.h"

namespace strata::storage {

// Inflates raw deflate data (no zlib header) into exactly outLength bytes.
// Input past the end of the stream is ignored, as qcow2 pads to sectors.
Result<void> inflateRaw(const uint8_t* input, size_t inputLength, uint8_t* output, size_t outLength);

}  // namespace strata::storage
