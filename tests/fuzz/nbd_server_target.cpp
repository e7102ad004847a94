#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/log.h"
#include "fuzz_targets.h"
#include "memory_block_device.h"
#include "storage/nbd/nbd_protocol.h"
#include "storage/nbd/nbd_server.h"

namespace strata::fuzz {

namespace {

using namespace storage::nbd;

// A client that makes no progress for this many loop iterations means the server hung: trap.
constexpr long kMaxSpins = 1000000;

// Writes a fresh self-signed ECDSA certificate for localhost and its key as
// DIR/server-cert.pem and DIR/server-key.pem. Made at start rather than
// committed, so no private key lives in the repository.
bool writeTestCertificate(const std::string& directory) {
  gnutls_x509_privkey_t key = nullptr;
  gnutls_x509_crt_t certificate = nullptr;
  gnutls_datum_t keyPem{}, certificatePem{};
  unsigned char serial[] = {1};
  time_t now = std::time(nullptr);
  bool made = gnutls_x509_privkey_init(&key) == 0 &&
              gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
                                           0) == 0 &&
              gnutls_x509_crt_init(&certificate) == 0 && gnutls_x509_crt_set_version(certificate, 3) == 0 &&
              gnutls_x509_crt_set_serial(certificate, serial, sizeof serial) == 0 &&
              gnutls_x509_crt_set_activation_time(certificate, now - 3600) == 0 &&
              gnutls_x509_crt_set_expiration_time(certificate, now + 30 * 86400) == 0 &&
              gnutls_x509_crt_set_dn_by_oid(certificate, GNUTLS_OID_X520_COMMON_NAME, 0, "localhost", 9) == 0 &&
              gnutls_x509_crt_set_key(certificate, key) == 0 &&
              gnutls_x509_crt_sign2(certificate, certificate, key, GNUTLS_DIG_SHA256, 0) == 0 &&
              gnutls_x509_crt_export2(certificate, GNUTLS_X509_FMT_PEM, &certificatePem) == 0 &&
              gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &keyPem) == 0;
  if (made) {
    std::ofstream(directory + "/server-cert.pem", std::ios::binary)
        .write(reinterpret_cast<const char*>(certificatePem.data), certificatePem.size);
    std::ofstream(directory + "/server-key.pem", std::ios::binary)
        .write(reinterpret_cast<const char*>(keyPem.data), keyPem.size);
  }
  gnutls_free(certificatePem.data);
  gnutls_free(keyPem.data);
  if (certificate != nullptr) gnutls_x509_crt_deinit(certificate);
  if (key != nullptr) gnutls_x509_privkey_deinit(key);
  return made;
}

// An X.509 server policy requiring TLS, from a certificate made for this run.
TlsPolicy requireTlsPolicy() {
  std::string pattern = (std::filesystem::temp_directory_path() / "strata-fuzz-tls-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) std::abort();
  std::shared_ptr<TlsCredentials> credentials;
  if (writeTestCertificate(pattern)) {
    auto loaded = TlsCredentials::loadX509Directory(pattern);
    if (loaded) credentials = *loaded;
  }
  std::filesystem::remove_all(pattern);
  if (!credentials) std::abort();  // the harness itself is broken
  return TlsPolicy{TlsMode::Require, credentials};
}

struct NbdState {
  std::unique_ptr<EventLoop> loop;
  std::unique_ptr<storage::testing::MemoryBlockDevice> device;
  std::unique_ptr<NbdServer> plain;  // TLS off
  std::unique_ptr<NbdServer> tls;    // TLS required
};

NbdState& state() {
  static NbdState* instance = [] {
    // STRATA_FUZZ_DEBUG=1 shows why inputs are refused when replaying one.
    log::setLevel(std::getenv("STRATA_FUZZ_DEBUG") ? log::Level::Debug : log::Level::Error);
    auto* created = new NbdState;
    created->loop = std::move(*EventLoop::create());
    created->device = std::make_unique<storage::testing::MemoryBlockDevice>(*created->loop, 256 * 1024);
    // Small limits, so inputs of fuzzer size reach them.
    NbdLimits limits;
    limits.maxPayload = 128 * 1024;
    limits.maxOptionLength = 4096;
    limits.maxInflightRequests = 4;
    limits.maxBufferedBytes = 512 * 1024;
    limits.maxBlockStatusExtents = 8;
    NbdExport disk;
    disk.name = "disk";
    disk.description = "fuzz";
    disk.device = created->device.get();
    disk.blockStatus = [](uint64_t offset, uint64_t length) -> Result<AllocationExtent> {
      uint64_t step = std::min<uint64_t>(length, 4096 - offset % 4096);
      return AllocationExtent{step, (offset / 4096) % 3 == 0 ? (kStateHole | kStateZero) : 0u};
    };
    NbdExport readOnly = disk;
    readOnly.name = "ro";
    readOnly.readOnly = true;
    readOnly.blockStatus = {};
    created->plain = std::make_unique<NbdServer>(*created->loop, std::vector{disk, readOnly}, limits);
    created->tls = std::make_unique<NbdServer>(*created->loop, std::vector{disk, readOnly}, limits);
    if (!created->tls->setTls(requireTlsPolicy())) std::abort();
    return created;
  }();
  return *instance;
}

std::vector<uint8_t> clientFlags() {
  std::vector<uint8_t> bytes;
  WireWriter(bytes).u32(kClientFlagFixedNewstyle | kClientFlagNoZeroes);
  return bytes;
}

// Structured replies, base:allocation and NBD_OPT_GO, after the client flags.
std::vector<uint8_t> validOptions() {
  std::vector<uint8_t> bytes;
  WireWriter writer(bytes);
  writer.u64(kOptionMagic).u32(kOptStructuredReply).u32(0);
  std::string query(kBaseAllocation);
  writer.u64(kOptionMagic).u32(kOptSetMetaContext).u32(static_cast<uint32_t>(4 + 4 + 4 + 4 + query.size()));
  writer.u32(4).bytes("disk").u32(1).u32(static_cast<uint32_t>(query.size())).bytes(query);
  writer.u64(kOptionMagic).u32(kOptGo).u32(4 + 4 + 2);
  writer.u32(4).bytes("disk").u16(0);
  return bytes;
}

void append(std::vector<uint8_t>& to, const std::vector<uint8_t>& bytes) { to.insert(to.end(), bytes.begin(), bytes.end()); }

// One client connection over a socketpair; every wait runs the server's loop.
class Client {
 public:
  Client(NbdState& fuzz, NbdServer& server) : fuzz_(fuzz), server_(server) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0) return;
    fd_.reset(pair[1]);
    if (!server.serveConnection(UniqueFd(pair[0]), "fuzz client")) fd_.reset();
  }
  ~Client() {
    if (session_ != nullptr) gnutls_deinit(session_);
    if (credentials_ != nullptr) gnutls_certificate_free_credentials(credentials_);
  }
  bool connected() const { return fd_.valid(); }

  // Runs the server once; counts towards the hang trap.
  void spin() {
    fuzz_.loop->runOnce(0);
    if (++spins_ > kMaxSpins) __builtin_trap();
  }
  // Reads and drops whatever the server sent, unless reading it is the caller's job.
  void drain() {
    while (::recv(fd_.get(), sink_.data(), sink_.size(), 0) > 0) {
    }
  }

  // Sends the client flags and NBD_OPT_STARTTLS, reads the greeting and the
  // reply, and completes a TLS handshake. False if the server did not go along.
  bool startTls() {
    std::vector<uint8_t> request = clientFlags();
    WireWriter(request).u64(kOptionMagic).u32(kOptStartTls).u32(0);
    // 20 bytes into an empty socket buffer; sendRaw() would drop the greeting.
    if (::send(fd_.get(), request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
      return false;
    }
    std::vector<uint8_t> reply(kHandshakeSize + kOptionReplyHeaderSize);
    size_t got = 0;
    while (got < reply.size()) {
      ssize_t n = ::recv(fd_.get(), reply.data() + got, reply.size() - got, 0);
      if (n == 0 || (n < 0 && errno != EAGAIN)) return false;
      if (n > 0) got += static_cast<size_t>(n);
      spin();
    }
    if (loadBe32(reply.data() + kHandshakeSize + 12) != kRepAck) return false;
    gnutls_init(&session_, GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
    gnutls_certificate_allocate_credentials(&credentials_);
    gnutls_set_default_priority(session_);
    gnutls_credentials_set(session_, GNUTLS_CRD_CERTIFICATE, credentials_);  // the certificate is not checked
    gnutls_transport_set_int(session_, fd_.get());
    while (true) {
      int rc = gnutls_handshake(session_);
      if (rc == 0) return true;
      if (gnutls_error_is_fatal(rc)) return false;
      spin();
    }
  }

  // Sends bytes as they are; false once the server has closed the connection.
  bool sendRaw(const std::vector<uint8_t>& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n = ::send(fd_.get(), bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
      if (n > 0) sent += static_cast<size_t>(n);
      spin();
      drain();
    }
    return true;
  }
  // Sends bytes through the TLS session (replies are drained undecrypted).
  bool sendTls(const std::vector<uint8_t>& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n = gnutls_record_send(session_, bytes.data() + sent, bytes.size() - sent);
      if (n < 0 && gnutls_error_is_fatal(static_cast<int>(n))) return false;
      if (n > 0) sent += static_cast<size_t>(n);
      spin();
      drain();
    }
    return true;
  }
  // A TLS close_notify, as a polite client ends its session.
  void sendCloseNotify() {
    for (int rc = gnutls_bye(session_, GNUTLS_SHUT_WR); rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED;
         rc = gnutls_bye(session_, GNUTLS_SHUT_WR)) {
      spin();
      drain();
    }
  }

  // Ends the input, then waits until the server has closed every session and
  // finished every device request.
  void finish() {
    ::shutdown(fd_.get(), SHUT_WR);
    while (!(server_.connectionCount() == 0 && server_.idle())) {
      spin();
      drain();
    }
  }

 private:
  NbdState& fuzz_;
  NbdServer& server_;
  UniqueFd fd_;
  long spins_ = 0;
  std::vector<uint8_t> sink_ = std::vector<uint8_t>(65536);
  gnutls_session_t session_ = nullptr;
  gnutls_certificate_credentials_t credentials_ = nullptr;
};

}  // namespace

int nbdServerOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  auto& fuzz = state();
  std::vector<uint8_t> input;
  if (data[0] & 1) {
    input = clientFlags();
    append(input, validOptions());
  }
  input.insert(input.end(), data + 1, data + size);
  Client client(fuzz, *fuzz.plain);
  if (!client.connected()) return 0;
  client.sendRaw(input);  // a server that closes early just ends the input
  client.finish();
  return 0;
}

int nbdTlsServerOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  auto& fuzz = state();
  uint8_t mode = data[0];
  std::vector<uint8_t> rest(data + 1, data + size);
  Client client(fuzz, *fuzz.tls);
  if (!client.connected()) return 0;
  if (!(mode & 2)) {
    // No TLS client: the bytes meet the server in the clear. With bit 2 the
    // client flags and NBD_OPT_STARTTLS come first, so the bytes go to the TLS
    // handshake (the server's ClientHello parsing).
    std::vector<uint8_t> input;
    if (mode & 4) {
      input = clientFlags();
      WireWriter(input).u64(kOptionMagic).u32(kOptStartTls).u32(0);
    }
    append(input, rest);
    client.sendRaw(input);
  } else if (client.startTls()) {
    // TLS is up. Bit 0: negotiate an export first; bit 2: the bytes go on the
    // socket raw (a broken record stream) instead of through TLS; bit 3: end
    // with a close_notify rather than a bare close.
    std::vector<uint8_t> input;
    if (mode & 1) input = validOptions();
    bool sent = client.sendTls(input);
    if (sent) sent = (mode & 4) ? client.sendRaw(rest) : client.sendTls(rest);
    if (sent && (mode & 8)) client.sendCloseNotify();
  }
  client.finish();
  return 0;
}

}  // namespace strata::fuzz
