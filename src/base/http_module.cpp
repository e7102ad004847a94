#include "base/http_module.h"

#include <dlfcn.h>

#include <openssl/crypto.h>

namespace strata::http_module {
namespace {

constexpr const char* kLibcrypto = "libcrypto.so.3";  // what Debian's cpp-httplib links

// cpp-httplib's initialiser starts OpenSSL, which then reads openssl.cnf and loads
// libcrypto's error strings (~2 ms, ~30 page faults, a 132 KiB heap step). strata never
// uses OpenSSL (its TLS is GnuTLS), so libcrypto is loaded first and both steps are
// settled as "not loaded": OpenSSL does each only once. A libcrypto that will not load
// is left for the module's own load to report.
void skipOpensslDefaults() {
  void* crypto = ::dlopen(kLibcrypto, RTLD_NOW | RTLD_LOCAL);
  if (crypto == nullptr) return;
  using Init = int(uint64_t, const OPENSSL_INIT_SETTINGS*);
  if (auto* init = reinterpret_cast<Init*>(::dlsym(crypto, "OPENSSL_init_crypto")))
    init(OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS | OPENSSL_INIT_NO_LOAD_CONFIG, nullptr);
}

Result<void> loadOnce() {
  skipOpensslDefaults();
  return module::open("strata-http.so", "the HTTP module");
}

}  // namespace

Result<void> load() {
  static const Result<void> loaded = loadOnce();
  return loaded;
}

}  // namespace strata::http_module
