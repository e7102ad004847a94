// GnuTLS, initialised on first use rather than when the binary loads: the
// strata executable opts out of GnuTLS's implicit load-time init (~2 ms and
// ~40 page faults that every `strata run --restore` paid without using TLS).
// Every unit calling into GnuTLS calls initTlsLibrary() first.
#pragma once

#include "base/result.h"

namespace strata::storage {

// gnutls_global_init(), once per process; later calls return its outcome.
// Under the VM's sandbox it needs getrandom, newfstatat and openat (its config file).
Result<void> initTlsLibrary();

}  // namespace strata::storage
