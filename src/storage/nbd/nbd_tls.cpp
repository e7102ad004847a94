#include "storage/nbd/nbd_tls.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/core.h>
#include <gnutls/x509.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "storage/tls_library.h"

namespace strata::storage::nbd {

namespace {

// TLS 1.2 and later only, as the NBD protocol recommends.
constexpr const char* kX509Priorities = "NORMAL:-VERS-TLS1.1:-VERS-TLS1.0";
constexpr const char* kPskPriorities = "NORMAL:-VERS-TLS1.1:-VERS-TLS1.0:+ECDHE-PSK:+DHE-PSK:+PSK";
// Non-fatal events (warning alerts, renegotiation attempts) handled per call
// before yielding, so a peer sending nothing else cannot keep the loop busy.
constexpr int kNonFatalRetries = 8;
// Client bytes a handshake may take. Real ones need a few KiB (more with a client
// certificate chain); GnuTLS would otherwise collect a ClientHello claiming up
// to 16 MiB, and a client could make every connection hold that much.
constexpr size_t kMaxHandshakeInput = 256 * 1024;

Result<void> requireReadable(const std::string& path) {
  if (::access(path.c_str(), R_OK) != 0) return errnoError(path);
  return {};
}

Error gnutlsError(const std::string& context, int code) {
  return Error{fmt::format("{}: {}", context, gnutls_strerror(code))};
}

Result<gnutls_priority_t> makePriority(const char* priorities) {
  gnutls_priority_t priority = nullptr;
  if (int rc = gnutls_priority_init(&priority, priorities, nullptr); rc < 0) return gnutlsError("TLS priorities", rc);
  return priority;
}

// psktool writes `username:hexkey` lines; GnuTLS reads the file itself at each
// handshake, so a malformed file is caught here rather than by the first client.
Result<void> checkPskFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return errnoError(path);
  std::string line;
  int number = 0, keys = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    size_t colon = line.find(':');
    std::string key = colon == std::string::npos ? std::string() : line.substr(colon + 1);
    bool hex = !key.empty() && key.size() % 2 == 0 &&
               std::all_of(key.begin(), key.end(), [](unsigned char c) { return std::isxdigit(c) != 0; });
    if (colon == 0 || !hex) {
      return Error{fmt::format("{}:{}: expected username:hexkey (as psktool writes)", path, number)};
    }
    ++keys;
  }
  if (keys == 0) return Error{path + ": no keys"};
  return {};
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

// ---- credentials ------------------------------------------------------------

Result<std::shared_ptr<TlsCredentials>> TlsCredentials::loadX509Directory(const std::string& directory,
                                                                         bool verifyPeer) {
  auto loaded = loadX509(directory + "/server-cert.pem", directory + "/server-key.pem");
  if (!loaded || !verifyPeer) return loaded;
  auto& credentials = *loaded;
  std::string authority = directory + "/ca-cert.pem";
  if (auto readable = requireReadable(authority); !readable) return readable.error();
  // Returns how many certificates it loaded; none means the file holds no CA.
  int rc = gnutls_certificate_set_x509_trust_file(credentials->certificate_, authority.c_str(), GNUTLS_X509_FMT_PEM);
  if (rc < 0) return gnutlsError(authority, rc);
  if (rc == 0) return Error{authority + ": no certificates"};
  std::string revoked = directory + "/ca-crl.pem";
  if (::access(revoked.c_str(), F_OK) == 0) {
    rc = gnutls_certificate_set_x509_crl_file(credentials->certificate_, revoked.c_str(), GNUTLS_X509_FMT_PEM);
    if (rc < 0) return gnutlsError(revoked, rc);
  }
  credentials->verifyPeer_ = true;
  credentials->description_ += ", client certificates checked against " + authority;
  return credentials;
}

Result<std::shared_ptr<TlsCredentials>> TlsCredentials::loadX509(const std::string& certificate,
                                                                const std::string& key) {
  if (auto readable = requireReadable(certificate); !readable) return readable.error();
  if (auto readable = requireReadable(key); !readable) return readable.error();
  if (auto ready = initTlsLibrary(); !ready) return ready.error();
  std::shared_ptr<TlsCredentials> credentials(new TlsCredentials);
  if (int rc = gnutls_certificate_allocate_credentials(&credentials->certificate_); rc < 0) {
    return gnutlsError("TLS credentials", rc);
  }
  int rc = gnutls_certificate_set_x509_key_file2(credentials->certificate_, certificate.c_str(), key.c_str(),
                                                 GNUTLS_X509_FMT_PEM, nullptr, 0);
  if (rc < 0) return gnutlsError(fmt::format("{} with {}", certificate, key), rc);
  credentials->description_ = "X.509 certificate from " + certificate;
  auto priority = makePriority(kX509Priorities);
  if (!priority) return priority.error();
  credentials->priority_ = *priority;
  return credentials;
}

Result<std::shared_ptr<TlsCredentials>> TlsCredentials::loadAuthority(const std::string& caFile) {
  if (auto readable = requireReadable(caFile); !readable) return readable.error();
  if (auto ready = initTlsLibrary(); !ready) return ready.error();
  std::shared_ptr<TlsCredentials> credentials(new TlsCredentials);
  if (int rc = gnutls_certificate_allocate_credentials(&credentials->certificate_); rc < 0) {
    return gnutlsError("TLS credentials", rc);
  }
  int rc = gnutls_certificate_set_x509_trust_file(credentials->certificate_, caFile.c_str(), GNUTLS_X509_FMT_PEM);
  if (rc < 0) return gnutlsError(caFile, rc);
  if (rc == 0) return Error{caFile + ": no certificates"};
  auto priority = makePriority(kX509Priorities);
  if (!priority) return priority.error();
  credentials->priority_ = *priority;
  credentials->client_ = true;
  credentials->description_ = "servers checked against " + caFile;
  return credentials;
}

Result<std::shared_ptr<TlsCredentials>> TlsCredentials::loadPskFile(const std::string& path) {
  if (auto valid = checkPskFile(path); !valid) return valid.error();
  if (auto ready = initTlsLibrary(); !ready) return ready.error();
  std::shared_ptr<TlsCredentials> credentials(new TlsCredentials);
  if (int rc = gnutls_psk_allocate_server_credentials(&credentials->psk_); rc < 0) {
    return gnutlsError("TLS credentials", rc);
  }
  if (int rc = gnutls_psk_set_server_credentials_file(credentials->psk_, path.c_str()); rc < 0) {
    return gnutlsError(path, rc);
  }
  auto priority = makePriority(kPskPriorities);
  if (!priority) return priority.error();
  credentials->priority_ = *priority;
  credentials->description_ = "pre-shared keys from " + path;
  return credentials;
}

TlsCredentials::~TlsCredentials() {
  if (certificate_ != nullptr) gnutls_certificate_free_credentials(certificate_);
  if (psk_ != nullptr) gnutls_psk_free_server_credentials(psk_);
  if (priority_ != nullptr) gnutls_priority_deinit(priority_);
}

// ---- session ----------------------------------------------------------------

TlsSession::TlsSession(int socket, std::vector<uint8_t> prefix) : socket_(socket), prefix_(std::move(prefix)) {}

TlsSession::~TlsSession() {
  if (session_ != nullptr) gnutls_deinit(session_);
}

Result<std::unique_ptr<TlsSession>> TlsSession::create(const TlsCredentials& credentials, int socket,
                                                       std::vector<uint8_t> prefix, const std::string& serverName) {
  std::unique_ptr<TlsSession> tls(new TlsSession(socket, std::move(prefix)));
  // NONBLOCK: no handshake timeout that would wait inside GnuTLS.
  const unsigned side = credentials.client_ ? GNUTLS_CLIENT : GNUTLS_SERVER;
  if (int rc = gnutls_init(&tls->session_, side | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL); rc < 0) {
    return gnutlsError("TLS session", rc);
  }
  int rc = gnutls_priority_set(tls->session_, credentials.priority_);
  if (rc >= 0 && credentials.client_) {
    // The chain must lead to the CA and the certificate name the host (an IP address matches its IP SANs).
    tls->serverName_ = serverName;
    rc = gnutls_credentials_set(tls->session_, GNUTLS_CRD_CERTIFICATE, credentials.certificate_);
    gnutls_session_set_verify_cert(tls->session_, tls->serverName_.empty() ? nullptr : tls->serverName_.c_str(), 0);
  } else if (rc >= 0 && credentials.certificate_ != nullptr) {
    rc = gnutls_credentials_set(tls->session_, GNUTLS_CRD_CERTIFICATE, credentials.certificate_);
    gnutls_certificate_server_set_request(tls->session_,
                                          credentials.verifyPeer_ ? GNUTLS_CERT_REQUIRE : GNUTLS_CERT_IGNORE);
    if (credentials.verifyPeer_) gnutls_session_set_verify_function(tls->session_, &TlsSession::verifyClient);
  }
  if (rc >= 0 && credentials.psk_ != nullptr) {
    rc = gnutls_credentials_set(tls->session_, GNUTLS_CRD_PSK, credentials.psk_);
  }
  if (rc < 0) return gnutlsError("TLS session", rc);
  gnutls_transport_set_ptr(tls->session_, tls.get());
  gnutls_transport_set_pull_function(tls->session_, &TlsSession::pull);
  gnutls_transport_set_push_function(tls->session_, &TlsSession::push);
  gnutls_transport_set_pull_timeout_function(tls->session_, &TlsSession::pullTimeout);
  return tls;
}

ssize_t TlsSession::pull(gnutls_transport_ptr_t self, void* buffer, size_t length) {
  auto* tls = static_cast<TlsSession*>(self);
  if (tls->prefixStart_ < tls->prefix_.size()) {
    size_t take = std::min(length, tls->prefix_.size() - tls->prefixStart_);
    std::memcpy(buffer, tls->prefix_.data() + tls->prefixStart_, take);
    tls->prefixStart_ += take;
    if (tls->prefixStart_ == tls->prefix_.size()) tls->prefix_ = {};
    return static_cast<ssize_t>(take);
  }
  ssize_t got = ::recv(tls->socket_, buffer, length, MSG_DONTWAIT);
  if (got > 0) tls->received_ += static_cast<size_t>(got);
  if (got < 0) {
    tls->pullErrno_ = errno;
    gnutls_transport_set_errno(tls->session_, errno);
  }
  return got;
}

ssize_t TlsSession::push(gnutls_transport_ptr_t self, const void* data, size_t length) {
  auto* tls = static_cast<TlsSession*>(self);
  if (tls->outgoingStart_ > 0 && tls->outgoingStart_ * 2 >= tls->outgoing_.size()) {
    tls->outgoing_.erase(tls->outgoing_.begin(), tls->outgoing_.begin() + static_cast<ptrdiff_t>(tls->outgoingStart_));
    tls->outgoingStart_ = 0;
  }
  auto* bytes = static_cast<const uint8_t*>(data);
  tls->outgoing_.insert(tls->outgoing_.end(), bytes, bytes + length);
  return static_cast<ssize_t>(length);
}

int TlsSession::pullTimeout(gnutls_transport_ptr_t self, unsigned int) {
  // Never waits: the event loop calls back when the socket is readable.
  auto* tls = static_cast<TlsSession*>(self);
  if (tls->prefixStart_ < tls->prefix_.size()) return 1;
  pollfd entry{tls->socket_, POLLIN, 0};
  return ::poll(&entry, 1, 0);
}

int TlsSession::verifyClient(gnutls_session_t session) {
  // The chain must lead to the CA, and the certificate must be meant for TLS
  // clients (a server's certificate from the same CA is not a client's).
  gnutls_typed_vdata_st purpose{GNUTLS_DT_KEY_PURPOSE_OID,
                                reinterpret_cast<unsigned char*>(const_cast<char*>(GNUTLS_KP_TLS_WWW_CLIENT)), 0};
  auto* tls = static_cast<TlsSession*>(gnutls_transport_get_ptr(session));
  unsigned status = 0;
  int rc = gnutls_certificate_verify_peers(session, &purpose, 1, &status);
  tls->verifyStatus_ = rc < 0 ? static_cast<unsigned>(GNUTLS_CERT_INVALID) : status;
  return tls->verifyStatus_ == 0 ? 0 : GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR;
}

void TlsSession::fail(int code) {
  error_ = code == GNUTLS_E_PULL_ERROR ? fmt::format("reading from the client: {}", std::strerror(pullErrno_))
                                       : gnutls_strerror(code);
  if (code == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR && verifyStatus_ == 0)
    verifyStatus_ = gnutls_session_get_verify_cert_status(session_);  // a client's check of the server
  if (code == GNUTLS_E_FATAL_ALERT_RECEIVED || code == GNUTLS_E_WARNING_ALERT_RECEIVED) {
    const char* alert = gnutls_alert_get_name(gnutls_alert_get(session_));
    error_ += fmt::format(" ({})", alert != nullptr ? alert : "unknown alert");
  }
  if (verifyStatus_ != 0) {
    gnutls_datum_t text{};
    if (gnutls_certificate_verification_status_print(verifyStatus_, GNUTLS_CRT_X509, &text, 0) == 0) {
      std::string reasons(reinterpret_cast<const char*>(text.data));
      gnutls_free(text.data);
      while (!reasons.empty() && reasons.back() == ' ') reasons.pop_back();
      error_ += " (" + reasons + ")";
    }
  }
}

Result<TlsSession::Handshake> TlsSession::handshake() {
  for (int attempt = 0; attempt < kNonFatalRetries; ++attempt) {
    int rc = gnutls_handshake(session_);
    if (rc == GNUTLS_E_SUCCESS) return Handshake::Done;
    if (received_ > kMaxHandshakeInput) {
      error_ = fmt::format("the client sent over {} KiB without completing the handshake", kMaxHandshakeInput / 1024);
      return Error{error_};
    }
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) return Handshake::NeedInput;
    if (gnutls_error_is_fatal(rc)) {
      fail(rc);
      // Tell the client why, if the socket takes it, before the connection drops.
      gnutls_alert_send_appropriate(session_, rc);
      return Error{error_};
    }
  }
  return Handshake::NeedInput;
}

ssize_t TlsSession::receive(uint8_t* buffer, size_t length) {
  for (int attempt = 0; attempt < kNonFatalRetries; ++attempt) {
    ssize_t rc = gnutls_record_recv(session_, buffer, length);
    if (rc >= 0) return rc;
    if (rc == GNUTLS_E_AGAIN) break;
    // A client that closes without close_notify has still finished sending.
    if (rc == GNUTLS_E_PREMATURE_TERMINATION) return 0;
    if (rc == GNUTLS_E_INTERRUPTED || !gnutls_error_is_fatal(static_cast<int>(rc))) continue;
    fail(static_cast<int>(rc));
    errno = EPROTO;
    return -1;
  }
  errno = EAGAIN;
  return -1;
}

ssize_t TlsSession::send(const uint8_t* data, size_t length) {
  ssize_t rc;
  do {
    rc = gnutls_record_send(session_, data, length);
  } while (rc == GNUTLS_E_INTERRUPTED);
  if (rc > 0) return rc;
  fail(static_cast<int>(rc));
  return -1;
}

void TlsSession::bye() { gnutls_bye(session_, GNUTLS_SHUT_WR); }

bool TlsSession::flushTo(int socket) {
  while (outgoingStart_ < outgoing_.size()) {
    ssize_t sent = ::send(socket, outgoing_.data() + outgoingStart_, outgoing_.size() - outgoingStart_,
                          MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      error_ = fmt::format("write: {}", std::strerror(errno));
      return false;
    }
    outgoingStart_ += static_cast<size_t>(sent);
  }
  outgoing_.clear();
  outgoingStart_ = 0;
  return true;
}

bool TlsSession::hasBufferedInput() const {
  return prefixStart_ < prefix_.size() || gnutls_record_check_pending(session_) > 0;
}

std::string TlsSession::describe() const {
  char* text = gnutls_session_get_desc(session_);
  std::string description = text != nullptr ? text : "TLS";
  gnutls_free(text);
  if (const char* user = gnutls_psk_server_get_username(session_); user != nullptr) {
    description += fmt::format(", PSK user '{}'", user);
  }
  unsigned count = 0;
  const gnutls_datum_t* chain = gnutls_certificate_get_peers(session_, &count);
  gnutls_x509_crt_t certificate = nullptr;
  if (chain != nullptr && count > 0 && gnutls_x509_crt_init(&certificate) == 0) {
    gnutls_datum_t dn{};
    if (gnutls_x509_crt_import(certificate, &chain[0], GNUTLS_X509_FMT_DER) == 0 &&
        gnutls_x509_crt_get_dn3(certificate, &dn, 0) == 0) {
      description += fmt::format(", client certificate '{}'", reinterpret_cast<const char*>(dn.data));
      gnutls_free(dn.data);
    }
    gnutls_x509_crt_deinit(certificate);
  }
  return description;
}

}  // namespace strata::storage::nbd
