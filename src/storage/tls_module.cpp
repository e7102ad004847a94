#include "storage/tls_module.h"

namespace strata::storage::tls_module {

Result<void> load() {
  static const Result<void> loaded = module::open("strata-tls.so", "the TLS module");
  return loaded;
}

}  // namespace strata::storage::tls_module
