// libFuzzer entry for the qcow2 header and table parser (see fuzz_targets.h).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return strata::fuzz::qcow2ImageOneInput(data, size);
}
