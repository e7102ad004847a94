// libFuzzer entry shared by every fuzz_* binary: STRATA_FUZZ_TARGET names the
// target (see fuzz_targets.h), so each binary is this file plus its target.
#include <cstdio>
#include <cstdlib>

#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const strata::fuzz::OneInput run = [] {
    auto found = strata::fuzz::findTarget(STRATA_FUZZ_TARGET);
    if (found == nullptr) {
      std::fprintf(stderr, "unknown fuzz target %s\n", STRATA_FUZZ_TARGET);
      std::abort();
    }
    return found;
  }();
  return run(data, size);
}
