#include "storage/nbd/nbd_tls.h"

#include <fmt/core.h>

namespace strata::storage::nbd {

tls_module::Entry<const TlsBackend> tlsBackend{"its TLS backend"};

namespace {

// Calls the backend's factory, loading the TLS module first if need be.
template <typename Factory, typename... Arguments>
auto callBackend(Factory TlsBackend::*factory, Arguments&&... arguments)
    -> decltype((std::declval<const TlsBackend&>().*factory)(std::forward<Arguments>(arguments)...)) {
  auto backend = tlsBackend.get();
  if (!backend) return backend.error();
  return ((*backend)->*factory)(std::forward<Arguments>(arguments)...);
}

}  // namespace

Result<TlsMode> parseTlsMode(const std::string& text) {
  if (text == "off") return TlsMode::Off;
  if (text == "on") return TlsMode::On;
  if (text == "require") return TlsMode::Require;
  return Error{fmt::format("TLS mode '{}': expected off, on or require", text)};
}

const char* tlsModeName(TlsMode mode) {
  switch (mode) {
    case TlsMode::Off: return "off";
    case TlsMode::On: return "on";
    case TlsMode::Require: return "require";
  }
  return "?";
}

Result<std::shared_ptr<TlsCredentials>> TlsCredentials::loadX509Directory(const std::string& directory,
                                                                         bool verifyPeer) {
  return callBackend(&TlsBackend::loadX509Directory, directory, verifyPeer);
}

Result<std::shared_ptr<TlsCredentials>> TlsCredentials::loadX509(const std::string& certificate,
                                                                const std::string& key) {
  return callBackend(&TlsBackend::loadX509, certificate, key);
}

Result<std::shared_ptr<TlsCredentials>> TlsCredentials::loadPskFile(const std::string& path) {
  return callBackend(&TlsBackend::loadPskFile, path);
}

Result<std::shared_ptr<TlsCredentials>> TlsCredentials::loadAuthority(const std::string& caFile) {
  return callBackend(&TlsBackend::loadAuthority, caFile);
}

Result<std::unique_ptr<TlsSession>> TlsSession::create(const TlsCredentials& credentials, int socket,
                                                       std::vector<uint8_t> prefix, const std::string& serverName) {
  return callBackend(&TlsBackend::createSession, credentials, socket, std::move(prefix), serverName);
}

}  // namespace strata::storage::nbd
