// libFuzzer entry for the NBD server under --tls=require: STARTTLS, the TLS
// handshake, and negotiation and requests inside TLS (see fuzz_targets.h).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return strata::fuzz::nbdTlsServerOneInput(data, size);
}
