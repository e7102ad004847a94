#include "storage/deflate.h"

#include <zlib.h>

namespace strata::storage {

Result<void> inflateRaw(const uint8_t* input, size_t inputLength, uint8_t* output, size_t outLength) {
  z_stream stream{};
  stream.next_in = const_cast<uint8_t*>(input);
  stream.avail_in = static_cast<uInt>(inputLength);
  stream.next_out = output;
  stream.avail_out = static_cast<uInt>(outLength);
  if (inflateInit2(&stream, -12) != Z_OK) return Error{"inflateInit2 failed"};
  int rc = inflate(&stream, Z_FINISH);
  size_t produced = outLength - stream.avail_out;
  inflateEnd(&stream);
  // Z_BUF_ERROR with a full output buffer is fine: the stream may lack its end marker.
  if ((rc == Z_STREAM_END || rc == Z_BUF_ERROR || rc == Z_OK) && produced == outLength) return {};
  return Error{"corrupt compressed cluster (inflate failed)"};
}

}  // namespace strata::storage
