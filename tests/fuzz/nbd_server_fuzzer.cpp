// libFuzzer entry for the NBD server's negotiation and request handling (see fuzz_targets.h).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return strata::fuzz::nbdServerOneInput(data, size);
}
