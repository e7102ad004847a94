// TLS for the NBD server (NBD_OPT_STARTTLS) over GnuTLS: the server's policy
// (off / on / require), its credentials (X.509 from a qemu/libnbd-style
// directory, or a psktool key file), and one connection's TLS session driven
// over a non-blocking socket without ever blocking the event loop. Live
// migration uses the same for its stream, and the client side too (loadAuthority).
// The credentials and sessions are GnuTLS's, made in the TLS module
// (storage/tls_module.h, nbd_tls_gnutls.cpp); the factories load it on first use.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "storage/tls_module.h"

namespace strata::storage::nbd {

// Off: NBD_OPT_STARTTLS is refused. On: clients may upgrade to TLS, or not.
// Require: every option but STARTTLS and ABORT is refused until TLS is up.
enum class TlsMode { Off, On, Require };
Result<TlsMode> parseTlsMode(const std::string& text);
const char* tlsModeName(TlsMode mode);

class TlsCredentials {
 public:
  // DIR/server-cert.pem (the chain clients verify against their ca-cert.pem)
  // and DIR/server-key.pem, the layout qemu's tls-creds-x509 and libnbd use.
  // verifyPeer (qemu's verify-peer): every client must present a certificate for
  // TLS client use, signed by DIR/ca-cert.pem (and not revoked by DIR/ca-crl.pem, if present).
  static Result<std::shared_ptr<TlsCredentials>> loadX509Directory(const std::string& directory,
                                                                   bool verifyPeer = false);
  // A certificate (chain) and its private key, PEM files anywhere (the daemon's --tls-cert/--tls-key).
  static Result<std::shared_ptr<TlsCredentials>> loadX509(const std::string& certificate, const std::string& key);
  // A psktool key file: one `username:hexkey` line per client.
  static Result<std::shared_ptr<TlsCredentials>> loadPskFile(const std::string& path);
  // A client's: the servers it talks to must present a certificate this CA signed.
  static Result<std::shared_ptr<TlsCredentials>> loadAuthority(const std::string& caFile);
  virtual ~TlsCredentials() = default;
  TlsCredentials(const TlsCredentials&) = delete;
  TlsCredentials& operator=(const TlsCredentials&) = delete;

  const std::string& description() const { return description_; }

 protected:
  TlsCredentials() = default;
  std::string description_;
};

struct TlsPolicy {
  TlsMode mode = TlsMode::Off;
  std::shared_ptr<const TlsCredentials> credentials;  // required unless mode is Off
};

// The server side of one TLS session (the client side with loadAuthority's credentials). Reads come straight from the socket
// (non-blocking); everything GnuTLS writes — handshake messages, encrypted
// records, alerts — is collected in an outgoing buffer that flushTo() writes
// out when the socket has room, so GnuTLS itself never sees a full socket.
class TlsSession {
 public:
  enum class Handshake { Done, NeedInput };

  // prefix: bytes the client sent after NBD_OPT_STARTTLS that are already read
  // from the socket; the handshake consumes them first. serverName: a client's
  // check of the server's certificate (a host name or an IP address).
  static Result<std::unique_ptr<TlsSession>> create(const TlsCredentials& credentials, int socket,
                                                    std::vector<uint8_t> prefix, const std::string& serverName = {});
  virtual ~TlsSession() = default;
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Advances the handshake as far as the input received allows.
  virtual Result<Handshake> handshake() = 0;
  // Like read(2): > 0 plaintext bytes, 0 at the end of the client's stream
  // (close_notify or a bare close), -1 with errno EAGAIN when nothing is
  // ready, or -1 with errno EPROTO and error() saying why.
  virtual ssize_t receive(uint8_t* buffer, size_t length) = 0;
  // Encrypts up to length bytes into the outgoing buffer; returns how many it
  // took (> 0), or -1 with error() set when the session has failed.
  virtual ssize_t send(const uint8_t* data, size_t length) = 0;
  // Queues a close_notify alert.
  virtual void bye() = 0;
  // Writes buffered outgoing bytes; false with error() set if the socket failed.
  virtual bool flushTo(int socket) = 0;

  virtual size_t outgoingBytes() const = 0;
  // Input already off the socket — early handshake bytes, or decrypted data
  // GnuTLS holds — that the socket's readiness will not announce.
  virtual bool hasBufferedInput() const = 0;
  const std::string& error() const { return error_; }
  // Protocol, key exchange and cipher, e.g. "(TLS1.3)-(ECDHE-SECP256R1)-(AES-256-GCM)",
  // and who the client is (its certificate's DN or its PSK username) when it said.
  virtual std::string describe() const = 0;

 protected:
  TlsSession() = default;
  std::string error_;
};

// What the TLS module's unit (nbd_tls_gnutls.cpp) provides as it loads: the
// factories above, which forward to it.
struct TlsBackend {
  Result<std::shared_ptr<TlsCredentials>> (*loadX509Directory)(const std::string& directory, bool verifyPeer);
  Result<std::shared_ptr<TlsCredentials>> (*loadX509)(const std::string& certificate, const std::string& key);
  Result<std::shared_ptr<TlsCredentials>> (*loadPskFile)(const std::string& path);
  Result<std::shared_ptr<TlsCredentials>> (*loadAuthority)(const std::string& caFile);
  Result<std::unique_ptr<TlsSession>> (*createSession)(const TlsCredentials& credentials, int socket,
                                                       std::vector<uint8_t> prefix, const std::string& serverName);
};
extern tls_module::Entry<const TlsBackend> tlsBackend;

}  // namespace strata::storage::nbd
