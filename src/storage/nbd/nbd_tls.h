// TLS for the NBD server (NBD_OPT_STARTTLS) over GnuTLS: the server's policy
// (off / on / require), its credentials (X.509 from a qemu/libnbd-style
// directory, or a psktool key file), and one connection's TLS session driven
// over a non-blocking socket without ever blocking the event loop. Live
// migration uses the same for its stream, and the client side too (loadAuthority).
#pragma once

#include <gnutls/gnutls.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"

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
  ~TlsCredentials();
  TlsCredentials(const TlsCredentials&) = delete;
  TlsCredentials& operator=(const TlsCredentials&) = delete;

  const std::string& description() const { return description_; }

 private:
  friend class TlsSession;
  TlsCredentials() = default;

  gnutls_certificate_credentials_t certificate_ = nullptr;
  gnutls_psk_server_credentials_t psk_ = nullptr;
  gnutls_priority_t priority_ = nullptr;
  bool verifyPeer_ = false;
  bool client_ = false;  // loadAuthority
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
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Advances the handshake as far as the input received allows.
  Result<Handshake> handshake();
  // Like read(2): > 0 plaintext bytes, 0 at the end of the client's stream
  // (close_notify or a bare close), -1 with errno EAGAIN when nothing is
  // ready, or -1 with errno EPROTO and error() saying why.
  ssize_t receive(uint8_t* buffer, size_t length);
  // Encrypts up to length bytes into the outgoing buffer; returns how many it
  // took (> 0), or -1 with error() set when the session has failed.
  ssize_t send(const uint8_t* data, size_t length);
  // Queues a close_notify alert.
  void bye();
  // Writes buffered outgoing bytes; false with error() set if the socket failed.
  bool flushTo(int socket);

  size_t outgoingBytes() const { return outgoing_.size() - outgoingStart_; }
  // Input already off the socket — early handshake bytes, or decrypted data
  // GnuTLS holds — that the socket's readiness will not announce.
  bool hasBufferedInput() const;
  const std::string& error() const { return error_; }
  // Protocol, key exchange and cipher, e.g. "(TLS1.3)-(ECDHE-SECP256R1)-(AES-256-GCM)",
  // and who the client is (its certificate's DN or its PSK username) when it said.
  std::string describe() const;

 private:
  TlsSession(int socket, std::vector<uint8_t> prefix);
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
  std::string error_;
};

}  // namespace strata::storage::nbd
