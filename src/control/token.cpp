#include "control/token.h"

#include <nettle/sha2.h>

#include <fmt/core.h>

#include "base/random.h"

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
  if (fillRandom(secret, sizeof secret) != sizeof secret) return errnoError("token: getrandom");
  return "strata_" + hex(secret, sizeof secret);
}

std::string tokenHash(const std::string& token) {
  unsigned char digest[SHA256_DIGEST_SIZE];
  sha256_ctx context;
  sha256_init(&context);
  sha256_update(&context, token.size(), reinterpret_cast<const uint8_t*>(token.data()));
  sha256_digest(&context, sizeof digest, digest);
  return hex(digest, sizeof digest);
}

}  // namespace strata::control
