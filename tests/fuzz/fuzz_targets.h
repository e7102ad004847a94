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

// The same against a server that requires TLS (X.509, a certificate made at
// start). The first byte picks how the client plays it: bit 1 clear: the bytes
// arrive in the clear, after client flags and NBD_OPT_STARTTLS if bit 2 is set
// (so they feed the TLS handshake); bit 1 set: a real GnuTLS client upgrades to
// TLS, then (bit 0) negotiates an export, then sends the bytes encrypted (or raw
// with bit 2, breaking the record stream), ending with a close_notify if bit 3 is set.
int nbdTlsServerOneInput(const uint8_t* data, size_t size);

}  // namespace strata::fuzz
