#include "control/token.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <fmt/core.h>

#include "storage/tls_library.h"

namespace strata::control {
namespace {

std::string hex(const unsigned char* bytes, size_t size) {
  std::string text;
  for (size_t i = 0; i < size; ++i) text += fmt::format("{:02x}", bytes[i]);
  return text;
}

}  // namespace

Result<std::string> newToken() {
  unsigned char secret[32];
  if (auto ready = storage::initTlsLibrary(); !ready) return Error{fmt::format("token: {}", ready.error().message)};
  if (int rc = gnutls_rnd(GNUTLS_RND_KEY, secret, sizeof secret); rc < 0)
    return Error{fmt::format("token: {}", gnutls_strerror(rc))};
  return "strata_" + hex(secret, sizeof secret);
}

std::string tokenHash(const std::string& token) {
  unsigned char digest[32];
  (void)storage::initTlsLibrary();  // GnuTLS starts on first use; should that fail, so does the hash
  gnutls_hash_fast(GNUTLS_DIG_SHA256, token.data(), token.size(), digest);
  return hex(digest, sizeof digest);
}

}  // namespace strata::control
