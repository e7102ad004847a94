// GnuTLS's TLS credentials and sessions behind storage/nbd/nbd_tls.h: the TLS
// module's unit (storage/tls_module.h), which provides them as it loads.
#include "storage/nbd/nbd_tls.h"

#include <gnutls/gnutls.h>
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

namespace strata::storage::nbd {
namespace {

class GnutlsCredentials final : public TlsCredentials {
 public:
  ~GnutlsCredentials() override;

  gnutls_certificate_credentials_t certificate_ = nullptr;
  gnutls_psk_server_credentials_t psk_ = nullptr;
  gnutls_priority_t priority_ = nullptr;
  bool verifyPeer_ = false;
  bool client_ = false;  // loadAuthority
  std::string& mutableDescription() { return description_; }
};

class GnutlsSession final : public TlsSession {
 public:
  GnutlsSession(int socket, std::vector<uint8_t> prefix);
  ~GnutlsSession() override;
  static Result<std::unique_ptr<TlsSession>> create(const TlsCredentials& credentials, int socket,
                                                    std::vector<uint8_t> prefix, const std::string& serverName);

  Result<Handshake> handshake() override;
  ssize_t receive(uint8_t* buffer, size_t length) override;
  ssize_t send(const uint8_t* data, size_t length) override;
  void bye() override;
  bool flushTo(int socket) override;
  size_t outgoingBytes() const override { return outgoing_.size() - outgoingStart_; }
  bool hasBufferedInput() const override;
  std::string describe() const override;

 private:
  static ssize_t pull(gnutls_transport_ptr_t self, void* buffer, size_t length);
  static ssize_t push(gnutls_transport_ptr_t self, const void* data, size_t length);
  static int pullTimeout(gnutls_transport_ptr_t self, unsigned int milliseconds);
  // With verifyPeer: checks the client's certificate during the handshake.
  static int verifyClient(gnutls_session_t session);
  void fail(int code);

  gnutls_session_t session_ = nullptr;
  int socket_;
  std::vector<uint8_t> prefix_;
  size_t prefixStart_ = 0;
  size_t received_ = 0;  // bytes read from the socket, to bound the handshake
  int pullErrno_ = 0;  // why the socket read failed, for GNUTLS_E_PULL_ERROR
  unsigned verifyStatus_ = 0;  // why the client's certificate was refused (gnutls_certificate_status_t bits)
  std::vector<uint8_t> outgoing_;
  size_t outgoingStart_ = 0;
  std::string serverName_;  // client: checked against the server's certificate
};

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

// ---- credentials ------------------------------------------------------------

Result<std::shared_ptr<TlsCredentials>> loadX509(const std::string& certificate, const std::string& key) {
  if (auto readable = requireReadable(certificate); !readable) return readable.error();
  if (auto readable = requireReadable(key); !readable) return readable.error();
  auto credentials = std::make_shared<GnutlsCredentials>();
  if (int rc = gnutls_certificate_allocate_credentials(&credentials->certificate_); rc < 0) {
    return gnutlsError("TLS credentials", rc);
  }
  int rc = gnutls_certificate_set_x509_key_file2(credentials->certificate_, certificate.c_str(), key.c_str(),
                                                 GNUTLS_X509_FMT_PEM, nullptr, 0);
  if (rc < 0) return gnutlsError(fmt::format("{} with {}", certificate, key), rc);
  credentials->mutableDescription() = "X.509 certificate from " + certificate;
  auto priority = makePriority(kX509Priorities);
  if (!priority) return priority.error();
  credentials->priority_ = *priority;
  return std::shared_ptr<TlsCredentials>(std::move(credentials));
}

Result<std::shared_ptr<TlsCredentials>> loadX509Directory(const std::string& directory, bool verifyPeer) {
  auto loaded = loadX509(directory + "/server-cert.pem", directory + "/server-key.pem");
  if (!loaded || !verifyPeer) return loaded;
  auto credentials = std::static_pointer_cast<GnutlsCredentials>(*loaded);
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
  credentials->mutableDescription() += ", client certificates checked against " + authority;
  return loaded;
}

Result<std::shared_ptr<TlsCredentials>> loadAuthority(const std::string& caFile) {
  if (auto readable = requireReadable(caFile); !readable) return readable.error();
  auto credentials = std::make_shared<GnutlsCredentials>();
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
  credentials->mutableDescription() = "servers checked against " + caFile;
  return std::shared_ptr<TlsCredentials>(std::move(credentials));
}

Result<std::shared_ptr<TlsCredentials>> loadPskFile(const std::string& path) {
  if (auto valid = checkPskFile(path); !valid) return valid.error();
  auto credentials = std::make_shared<GnutlsCredentials>();
  if (int rc = gnutls_psk_allocate_server_credentials(&credentials->psk_); rc < 0) {
    return gnutlsError("TLS credentials", rc);
  }
  if (int rc = gnutls_psk_set_server_credentials_file(credentials->psk_, path.c_str()); rc < 0) {
    return gnutlsError(path, rc);
  }
  auto priority = makePriority(kPskPriorities);
  if (!priority) return priority.error();
  credentials->priority_ = *priority;
  credentials->mutableDescription() = "pre-shared keys from " + path;
  return std::shared_ptr<TlsCredentials>(std::move(credentials));
}

GnutlsCredentials::~GnutlsCredentials() {
  if (certificate_ != nullptr) gnutls_certificate_free_credentials(certificate_);
  if (psk_ != nullptr) gnutls_psk_free_server_credentials(psk_);
  if (priority_ != nullptr) gnutls_priority_deinit(priority_);
}

// ---- session ----------------------------------------------------------------

GnutlsSession::GnutlsSession(int socket, std::vector<uint8_t> prefix) : socket_(socket), prefix_(std::move(prefix)) {}

GnutlsSession::~GnutlsSession() {
  if (session_ != nullptr) gnutls_deinit(session_);
}

Result<std::unique_ptr<TlsSession>> GnutlsSession::create(const TlsCredentials& generic, int socket,
                                                          std::vector<uint8_t> prefix, const std::string& serverName) {
  const auto& credentials = static_cast<const GnutlsCredentials&>(generic);  // the only kind there is
  auto tls = std::make_unique<GnutlsSession>(socket, std::move(prefix));
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
    if (credentials.verifyPeer_) gnutls_session_set_verify_function(tls->session_, &GnutlsSession::verifyClient);
  }
  if (rc >= 0 && credentials.psk_ != nullptr) {
    rc = gnutls_credentials_set(tls->session_, GNUTLS_CRD_PSK, credentials.psk_);
  }
  if (rc < 0) return gnutlsError("TLS session", rc);
  gnutls_transport_set_ptr(tls->session_, tls.get());
  gnutls_transport_set_pull_function(tls->session_, &GnutlsSession::pull);
  gnutls_transport_set_push_function(tls->session_, &GnutlsSession::push);
  gnutls_transport_set_pull_timeout_function(tls->session_, &GnutlsSession::pullTimeout);
  return std::unique_ptr<TlsSession>(std::move(tls));
}

ssize_t GnutlsSession::pull(gnutls_transport_ptr_t self, void* buffer, size_t length) {
  auto* tls = static_cast<GnutlsSession*>(self);
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

ssize_t GnutlsSession::push(gnutls_transport_ptr_t self, const void* data, size_t length) {
  auto* tls = static_cast<GnutlsSession*>(self);
  if (tls->outgoingStart_ > 0 && tls->outgoingStart_ * 2 >= tls->outgoing_.size()) {
    tls->outgoing_.erase(tls->outgoing_.begin(), tls->outgoing_.begin() + static_cast<ptrdiff_t>(tls->outgoingStart_));
    tls->outgoingStart_ = 0;
  }
  auto* bytes = static_cast<const uint8_t*>(data);
  tls->outgoing_.insert(tls->outgoing_.end(), bytes, bytes + length);
  return static_cast<ssize_t>(length);
}

int GnutlsSession::pullTimeout(gnutls_transport_ptr_t self, unsigned int) {
  // Never waits: the event loop calls back when the socket is readable.
  auto* tls = static_cast<GnutlsSession*>(self);
  if (tls->prefixStart_ < tls->prefix_.size()) return 1;
  pollfd entry{tls->socket_, POLLIN, 0};
  return ::poll(&entry, 1, 0);
}

int GnutlsSession::verifyClient(gnutls_session_t session) {
  // The chain must lead to the CA, and the certificate must be meant for TLS
  // clients (a server's certificate from the same CA is not a client's).
  gnutls_typed_vdata_st purpose{GNUTLS_DT_KEY_PURPOSE_OID,
                                reinterpret_cast<unsigned char*>(const_cast<char*>(GNUTLS_KP_TLS_WWW_CLIENT)), 0};
  auto* tls = static_cast<GnutlsSession*>(gnutls_transport_get_ptr(session));
  unsigned status = 0;
  int rc = gnutls_certificate_verify_peers(session, &purpose, 1, &status);
  tls->verifyStatus_ = rc < 0 ? static_cast<unsigned>(GNUTLS_CERT_INVALID) : status;
  return tls->verifyStatus_ == 0 ? 0 : GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR;
}

void GnutlsSession::fail(int code) {
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

Result<TlsSession::Handshake> GnutlsSession::handshake() {
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

ssize_t GnutlsSession::receive(uint8_t* buffer, size_t length) {
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

ssize_t GnutlsSession::send(const uint8_t* data, size_t length) {
  ssize_t rc;
  do {
    rc = gnutls_record_send(session_, data, length);
  } while (rc == GNUTLS_E_INTERRUPTED);
  if (rc > 0) return rc;
  fail(static_cast<int>(rc));
  return -1;
}

void GnutlsSession::bye() { gnutls_bye(session_, GNUTLS_SHUT_WR); }

bool GnutlsSession::flushTo(int socket) {
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

bool GnutlsSession::hasBufferedInput() const {
  return prefixStart_ < prefix_.size() || gnutls_record_check_pending(session_) > 0;
}

std::string GnutlsSession::describe() const {
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

}  // namespace

// Provided as the module loads (or as a test binary that links this unit starts).
const TlsBackend kGnutlsBackend{loadX509Directory, loadX509, loadPskFile, loadAuthority, GnutlsSession::create};
const bool kProvided = (tlsBackend.provide(&kGnutlsBackend), true);

}  // namespace strata::storage::nbd
