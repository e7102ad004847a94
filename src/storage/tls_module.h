// The TLS module (base/module.h): GnuTLS and the unit that drives it
// (storage/nbd/nbd_tls_gnutls.cpp) are built into strata-tls.so, not into the
// executable. GnuTLS needs p11-kit (no static archive), which with libffi and
// their initialisers cost every `strata run` ~40 page faults and ~0.7 ms as it
// started, although only the NBD server, migration over TLS and the daemon's
// TLS listener use TLS (bench/README.md). Loading the module starts GnuTLS (its
// load-time init). Under a VM's sandbox a load is refused: the API thread loads
// the module before it enters its role.
#pragma once

#include "base/module.h"

namespace strata::storage::tls_module {

// Loads strata-tls.so once with its libraries; thread-safe.
Result<void> load();

template <typename Function>
class Entry : public module::Entry<Function> {
 public:
  explicit constexpr Entry(const char* name) : module::Entry<Function>(name, &load, "the TLS module") {}
};

}  // namespace strata::storage::tls_module
