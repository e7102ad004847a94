#include "base/http_module.h"

#include <dlfcn.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <string>

#include <fmt/core.h>

namespace strata::http_module {
namespace {

constexpr const char* kModuleName = "strata-http.so";
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

// Beside the running executable (where the build and an install put it), else in the
// build directory (an executable copied elsewhere).
std::string modulePath() {
  char self[4096];
  ssize_t length = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (length > 0) {
    std::string path(self, static_cast<size_t>(length));
    path = path.substr(0, path.rfind('/') + 1) + kModuleName;
    if (::access(path.c_str(), R_OK) == 0) return path;
  }
  return std::string(STRATA_BUILD_DIR "/") + kModuleName;
}

Result<void> loadOnce() {
  skipOpensslDefaults();
  std::string path = modulePath();
  // Never unloaded: its units' entry points stay set for the process's life.
  if (::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL) == nullptr)
    return Error{fmt::format("cannot load the HTTP module: {}", ::dlerror())};
  return {};
}

}  // namespace

Result<void> load() {
  static const Result<void> loaded = loadOnce();
  return loaded;
}

}  // namespace strata::http_module
