// The HTTP module (base/module.h): the units that call cpp-httplib (a VM's API
// socket, the daemon's REST API, the HTTP client of the daemon and the CLI) are
// built into strata-http.so, not into the executable. Debian builds cpp-httplib
// with OpenSSL and brotli, and loading those libraries cost every VM process
// ~150 page faults of relocations as it started, although only `--api-socket`,
// the daemon and `strata vm` speak HTTP (bench/README.md).
#pragma once

#include "base/module.h"

namespace strata::http_module {

// Loads strata-http.so once with its libraries; thread-safe.
Result<void> load();

template <typename Function>
class Entry : public module::Entry<Function> {
 public:
  explicit constexpr Entry(const char* name) : module::Entry<Function>(name, &load, "the HTTP module") {}
};

}  // namespace strata::http_module
