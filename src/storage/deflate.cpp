#include "storage/deflate.h"

#include <dlfcn.h>
#include <zlib.h>

#include <mutex>
#include <string>

namespace strata::storage {

namespace {

struct ZlibFunctions {
  decltype(&::inflateInit2_) initInflate = nullptr;
  decltype(&::inflate) runInflate = nullptr;
  decltype(&::inflateEnd) endInflate = nullptr;
  std::string error;
};

const ZlibFunctions& zlib() {
  static ZlibFunctions functions;
  static std::once_flag once;
  std::call_once(once, [] {
    void* handle = ::dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      functions.error = std::string("compressed clusters need zlib: ") + ::dlerror();
      return;
    }
    functions.initInflate = reinterpret_cast<decltype(&::inflateInit2_)>(::dlsym(handle, "inflateInit2_"));
    functions.runInflate = reinterpret_cast<decltype(&::inflate)>(::dlsym(handle, "inflate"));
    functions.endInflate = reinterpret_cast<decltype(&::inflateEnd)>(::dlsym(handle, "inflateEnd"));
    if (!functions.initInflate || !functions.runInflate || !functions.endInflate) {
      functions.error = "compressed clusters need zlib: libz.so.1 lacks inflate";
    }
  });
  return functions;
}

}  // namespace

Result<void> inflateRaw(const uint8_t* input, size_t inputLength, uint8_t* output, size_t outLength) {
  const ZlibFunctions& z = zlib();
  if (!z.error.empty()) return Error{z.error};
  z_stream stream{};
  stream.next_in = const_cast<uint8_t*>(input);
  stream.avail_in = static_cast<uInt>(inputLength);
  stream.next_out = output;
  stream.avail_out = static_cast<uInt>(outLength);
  if (z.initInflate(&stream, -12, ZLIB_VERSION, static_cast<int>(sizeof(z_stream))) != Z_OK) {
    return Error{"inflateInit2 failed"};
  }
  int rc = z.runInflate(&stream, Z_FINISH);
  size_t produced = outLength - stream.avail_out;
  z.endInflate(&stream);
  // Z_BUF_ERROR with a full output buffer is fine: the stream may lack its end marker.
  if ((rc == Z_STREAM_END || rc == Z_BUF_ERROR || rc == Z_OK) && produced == outLength) return {};
  return Error{"corrupt compressed cluster (inflate failed)"};
}

}  // namespace strata::storage
