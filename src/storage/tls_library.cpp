#include "storage/tls_library.h"

#include <gnutls/gnutls.h>

#include <mutex>

#include <fmt/core.h>

namespace strata::storage {

Result<void> initTlsLibrary() {
  static std::once_flag once;
  static int status = 0;
  std::call_once(once, [] { status = gnutls_global_init(); });  // never deinitialised: TLS may run until exit
  if (status < 0) return Error{fmt::format("initialising GnuTLS: {}", gnutls_strerror(status))};
  return {};
}

}  // namespace strata::storage
