// Helpers for the NBD tests: a server running on its own EventLoop thread; a
// deliberately low-level blocking client that speaks raw protocol bytes (and
// TLS after NBD_OPT_STARTTLS), so tests can send exactly what a well-behaved or
// hostile client would; throwaway TLS keys; running tools and `strata nbd serve`.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/event_loop.h"
#include "base/unique_fd.h"
#include "storage/nbd/nbd_protocol.h"
#include "storage/nbd/nbd_server.h"
#include "../storage/storage_test_util.h"

namespace strata::storage::nbd::testing {

// Shell commands run as in the storage tests: exit status plus stdout+stderr.
using storage::testing::CommandResult;
inline CommandResult run(const std::string& command) { return storage::testing::runCommand(command); }
// Temporary directories, files and data patterns as in the storage tests.
using storage::testing::pattern;
using storage::testing::TempDir;
using storage::testing::writeFile;

inline bool haveTool(const std::string& name) { return run("command -v " + name).exitCode == 0; }

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// ---- TLS ----------------------------------------------------------------------

// Keys for the TLS tests, made with certtool and psktool (Debian: gnutls-bin):
// certs/ holds ca-cert.pem, server-cert.pem (for localhost, 127.0.0.1 and ::1)
// and server-key.pem — the directory layout qemu and libnbd use, good for the
// server and the clients alike; untrusted/ holds another CA's ca-cert.pem.
// Client certificates, in the layout qemu (endpoint=client) and libnbd read:
// client/ holds ca-cert.pem, client-cert.pem and client-key.pem from the certs/
// CA; rogue/ the same but with a client certificate the untrusted CA signed.
struct TestPki {
  std::string certs;
  std::string untrusted;
  std::string client;
  std::string rogue;
  std::string pskFile;  // user "alice"
  std::string pskKey;   // alice's key, hex
};

// Empty error on success.
inline std::string makeTestPki(const std::string& root, TestPki& pki) {
  pki.certs = root + "/certs";
  pki.untrusted = root + "/untrusted";
  pki.client = root + "/client";
  pki.rogue = root + "/rogue";
  pki.pskFile = root + "/keys.psk";
  for (const auto& dir : {pki.certs, pki.untrusted, pki.client, pki.rogue}) std::filesystem::create_directories(dir);
  std::ofstream(root + "/ca.info") << "cn = strata test CA\nca\ncert_signing_key\nexpiration_days = 2\n";
  std::ofstream(root + "/server.info") << "organization = strata tests\ncn = localhost\ndns_name = localhost\n"
                                          "ip_address = 127.0.0.1\nip_address = ::1\ntls_www_server\n"
                                          "encryption_key\nsigning_key\nexpiration_days = 2\n";
  std::ofstream(root + "/client.info") << "organization = strata tests\ncn = nbd test client\ntls_www_client\n"
                                          "encryption_key\nsigning_key\nexpiration_days = 2\n";
  auto makeCa = [&](const std::string& dir) {
    return "certtool --generate-privkey --key-type=ecdsa --outfile " + dir + "/ca-key.pem && " +
           "certtool --generate-self-signed --load-privkey " + dir + "/ca-key.pem --template " + root +
           "/ca.info --outfile " + dir + "/ca-cert.pem";
  };
  std::string server = "certtool --generate-privkey --key-type=ecdsa --outfile " + pki.certs + "/server-key.pem && " +
                       "certtool --generate-certificate --load-privkey " + pki.certs + "/server-key.pem " +
                       "--load-ca-certificate " + pki.certs + "/ca-cert.pem --load-ca-privkey " + pki.certs +
                       "/ca-key.pem --template " + root + "/server.info --outfile " + pki.certs + "/server-cert.pem";
  // A client key and certificate in dir, signed by the CA in caDir.
  auto makeClient = [&](const std::string& dir, const std::string& caDir) {
    return "certtool --generate-privkey --key-type=ecdsa --outfile " + dir + "/client-key.pem && " +
           "certtool --generate-certificate --load-privkey " + dir + "/client-key.pem --load-ca-certificate " +
           caDir + "/ca-cert.pem --load-ca-privkey " + caDir + "/ca-key.pem --template " + root +
           "/client.info --outfile " + dir + "/client-cert.pem && cp " + pki.certs + "/ca-cert.pem " + dir + "/";
  };
  for (const auto& command : {makeCa(pki.certs), server, makeCa(pki.untrusted), makeClient(pki.client, pki.certs),
                              makeClient(pki.rogue, pki.untrusted), "psktool -u alice -p " + pki.pskFile}) {
    auto made = run("(" + command + ")");
    if (made.exitCode != 0) return command + ": " + made.output;
  }
  std::ifstream psk(pki.pskFile);
  std::string line;
  std::getline(psk, line);
  pki.pskKey = line.substr(line.find(':') + 1);
  return {};
}

struct TlsClientOptions {
  std::string caFile;   // X.509: trust this CA and check that the server is localhost
  std::string pskUser;  // or a pre-shared key
  std::string pskKey;   // hex
  std::string certificateFile;  // X.509: present this client certificate (with keyFile), if set
  std::string keyFile;
};

// The client side of a TLS session on a blocking socket (its receive timeout bounds every wait).
class ClientTls {
 public:
  ClientTls() = default;
  ~ClientTls() {
    if (session_ != nullptr) gnutls_deinit(session_);
    if (certificate_ != nullptr) gnutls_certificate_free_credentials(certificate_);
    if (psk_ != nullptr) gnutls_psk_free_client_credentials(psk_);
  }
  ClientTls(const ClientTls&) = delete;
  ClientTls& operator=(const ClientTls&) = delete;

  // Empty on success, else why the handshake failed.
  std::string handshake(int fd, const TlsClientOptions& options) {
    gnutls_init(&session_, GNUTLS_CLIENT | GNUTLS_NO_SIGNAL);
    if (!options.pskUser.empty()) {
      gnutls_psk_allocate_client_credentials(&psk_);
      gnutls_datum_t key{reinterpret_cast<unsigned char*>(const_cast<char*>(options.pskKey.data())),
                         static_cast<unsigned>(options.pskKey.size())};
      gnutls_psk_set_client_credentials(psk_, options.pskUser.c_str(), &key, GNUTLS_PSK_KEY_HEX);
      gnutls_priority_set_direct(session_, "NORMAL:+ECDHE-PSK:+PSK", nullptr);
      gnutls_credentials_set(session_, GNUTLS_CRD_PSK, psk_);
    } else {
      gnutls_certificate_allocate_credentials(&certificate_);
      gnutls_certificate_set_x509_trust_file(certificate_, options.caFile.c_str(), GNUTLS_X509_FMT_PEM);
      if (!options.certificateFile.empty()) {
        int rc = gnutls_certificate_set_x509_key_file(certificate_, options.certificateFile.c_str(),
                                                      options.keyFile.c_str(), GNUTLS_X509_FMT_PEM);
        if (rc < 0) return std::string("client certificate: ") + gnutls_strerror(rc);
      }
      gnutls_set_default_priority(session_);
      gnutls_credentials_set(session_, GNUTLS_CRD_CERTIFICATE, certificate_);
      gnutls_session_set_verify_cert(session_, "localhost", 0);
    }
    gnutls_transport_set_int(session_, fd);
    int rc;
    do {
      rc = gnutls_handshake(session_);
    } while (rc < 0 && rc != GNUTLS_E_AGAIN && !gnutls_error_is_fatal(rc));
    return rc == 0 ? std::string() : gnutls_strerror(rc);
  }
  gnutls_session_t session() const { return session_; }

 private:
  gnutls_session_t session_ = nullptr;
  gnutls_certificate_credentials_t certificate_ = nullptr;
  gnutls_psk_client_credentials_t psk_ = nullptr;
};

// Owns an EventLoop that runs on a background thread once start() is called.
// Build devices and the server before start(); afterwards touch them only via call().
class LoopThread {
 public:
  LoopThread() { loop_ = std::move(*EventLoop::create()); }
  ~LoopThread() { stop(); }
  EventLoop& loop() { return *loop_; }
  void start() {
    thread_ = std::thread([this] { loop_->run(); });
  }
  // Runs fn on the loop thread and waits for its result.
  template <typename Fn>
  auto call(Fn fn) -> decltype(fn()) {
    if (!thread_.joinable()) return fn();
    std::packaged_task<decltype(fn())()> task(std::move(fn));
    auto result = task.get_future();
    loop_->post([&task] { task(); });
    return result.get();
  }
  void stop() {
    if (!thread_.joinable()) return;
    loop_->stop();
    thread_.join();
  }

 private:
  std::unique_ptr<EventLoop> loop_;
  std::thread thread_;
};

struct OptionReply {
  uint32_t option = 0;
  uint32_t type = 0;
  std::vector<uint8_t> data;
};

struct Reply {
  bool structured = false;
  uint16_t flags = 0;  // structured only
  uint16_t type = 0;   // structured only
  uint32_t error = 0;  // simple reply error, or the error of an ERROR chunk
  uint64_t handle = 0;
  std::vector<uint8_t> payload;  // structured payload, or READ data of a simple reply
  std::string message;           // text of an ERROR chunk
};

// A blocking client with a receive timeout, so a server that hangs fails the test instead of hanging it.
class RawClient {
 public:
  static RawClient connectUnix(const std::string& path) {
    RawClient client;
    client.fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    if (::connect(client.fd_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) client.fd_.reset();
    client.setTimeouts();
    return client;
  }
  bool connected() const { return fd_.valid(); }
  int fd() const { return fd_.get(); }
  void close() {
    tls_.reset();
    fd_.reset();
  }
  void shutdownWrite() { ::shutdown(fd_.get(), SHUT_WR); }

  // Sends NBD_OPT_STARTTLS; on NBD_REP_ACK completes the TLS handshake, after which every
  // send and receive goes through TLS. Returns the reply type (~0u if there was none);
  // tlsError says why a handshake failed.
  uint32_t startTls(const TlsClientOptions& options, std::string& tlsError) {
    auto replies = option(kOptStartTls, {});
    if (replies.empty()) return ~0u;
    if (replies.back().type != kRepAck) return replies.back().type;
    auto tls = std::make_unique<ClientTls>();
    tlsError = tls->handshake(fd_.get(), options);
    if (tlsError.empty()) tls_ = std::move(tls);
    return kRepAck;
  }
  bool tlsActive() const { return tls_ != nullptr; }

  bool send(const std::vector<uint8_t>& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n = tls_ ? gnutls_record_send(tls_->session(), bytes.data() + sent, bytes.size() - sent)
                       : ::send(fd_.get(), bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }
  bool receive(size_t length, std::vector<uint8_t>& out) {
    out.resize(length);
    size_t got = 0;
    while (got < length) {
      ssize_t n = receiveSome(out.data() + got, length - got);
      if (n <= 0) return false;
      got += static_cast<size_t>(n);
    }
    return true;
  }
  static RawClient connectTcp(uint16_t port) {
    RawClient client;
    client.fd_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(client.fd_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) client.fd_.reset();
    client.setTimeouts();
    return client;
  }
  // The local port of a TCP connection, which the server's log names.
  uint16_t localPort() const {
    sockaddr_in address{};
    socklen_t length = sizeof address;
    ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&address), &length);
    return ntohs(address.sin_port);
  }
  // True when the server closed the connection (end of file, close_notify, or reset) within the timeout.
  bool closedByServer() {
    uint8_t byte;
    while (true) {
      ssize_t n = receiveSome(&byte, 1);
      if (n == 0) return true;
      if (n < 0) return tls_ ? n != GNUTLS_E_AGAIN : errno == ECONNRESET || errno == EPIPE;
    }
  }
  // recv(2), or gnutls_record_recv once TLS is up (then < 0 is a GnuTLS error code).
  ssize_t receiveSome(uint8_t* buffer, size_t length) {
    if (!tls_) return ::recv(fd_.get(), buffer, length, 0);
    ssize_t n;
    do {
      n = gnutls_record_recv(tls_->session(), buffer, length);
    } while (n == GNUTLS_E_INTERRUPTED);
    return n;
  }
  // False when data is waiting or the connection closed.
  bool quiet(int milliseconds = 100) {
    pollfd entry{fd_.get(), POLLIN, 0};
    return ::poll(&entry, 1, milliseconds) == 0;
  }

  // Reads the greeting and sends client flags.
  void handshake(uint32_t clientFlags = kClientFlagFixedNewstyle | kClientFlagNoZeroes) {
    std::vector<uint8_t> greeting;
    ASSERT_TRUE(receive(kHandshakeSize, greeting));
    ASSERT_EQ(loadBe64(greeting.data()), kNbdMagic);
    ASSERT_EQ(loadBe64(greeting.data() + 8), kOptionMagic);
    std::vector<uint8_t> flags;
    WireWriter(flags).u32(clientFlags);
    ASSERT_TRUE(send(flags));
  }
  bool sendOption(uint32_t option, const std::vector<uint8_t>& data) {
    std::vector<uint8_t> message;
    WireWriter(message).u64(kOptionMagic).u32(option).u32(static_cast<uint32_t>(data.size()));
    message.insert(message.end(), data.begin(), data.end());
    return send(message);
  }
  bool readOptionReply(OptionReply& reply) {
    std::vector<uint8_t> header;
    if (!receive(kOptionReplyHeaderSize, header)) return false;
    EXPECT_EQ(loadBe64(header.data()), kOptionReplyMagic);
    reply.option = loadBe32(header.data() + 8);
    reply.type = loadBe32(header.data() + 12);
    return receive(loadBe32(header.data() + 16), reply.data);
  }
  // Sends an option and collects replies up to the final one (ACK or an error).
  std::vector<OptionReply> option(uint32_t option, const std::vector<uint8_t>& data) {
    std::vector<OptionReply> replies;
    if (!sendOption(option, data)) return replies;
    OptionReply reply;
    while (readOptionReply(reply)) {
      replies.push_back(reply);
      if (reply.type == kRepAck || (reply.type & kRepErrorBit)) break;
    }
    return replies;
  }
  static std::vector<uint8_t> goData(const std::string& name, const std::vector<uint16_t>& infos = {}) {
    std::vector<uint8_t> data;
    WireWriter writer(data);
    writer.u32(static_cast<uint32_t>(name.size())).bytes(name).u16(static_cast<uint16_t>(infos.size()));
    for (uint16_t info : infos) writer.u16(info);
    return data;
  }
  static std::vector<uint8_t> metaData(const std::string& name, const std::vector<std::string>& queries) {
    std::vector<uint8_t> data;
    WireWriter writer(data);
    writer.u32(static_cast<uint32_t>(name.size())).bytes(name).u32(static_cast<uint32_t>(queries.size()));
    for (const auto& query : queries) writer.u32(static_cast<uint32_t>(query.size())).bytes(query);
    return data;
  }
  // Handshake, optional structured replies and base:allocation, then NBD_OPT_GO.
  // Returns the transmission flags (0 on failure).
  uint16_t connectExport(const std::string& name = "", bool structured = false, bool allocation = false) {
    handshake();
    if (structured) {
      auto replies = option(kOptStructuredReply, {});
      if (replies.empty() || replies.back().type != kRepAck) return 0;
    }
    if (allocation) {
      auto replies = option(kOptSetMetaContext, metaData(name, {std::string(kBaseAllocation)}));
      if (replies.empty() || replies.back().type != kRepAck) return 0;
    }
    structured_ = structured;
    auto replies = option(kOptGo, goData(name));
    if (replies.empty() || replies.back().type != kRepAck) return 0;
    for (const auto& reply : replies) {
      if (reply.type == kRepInfo && reply.data.size() == 12 && loadBe16(reply.data.data()) == kInfoExport) {
        return loadBe16(reply.data.data() + 10);
      }
    }
    return 0;
  }
  void setStructured(bool structured) { structured_ = structured; }

  bool request(uint16_t type, uint64_t handle, uint64_t offset, uint32_t length, uint16_t flags = 0,
               const std::vector<uint8_t>& payload = {}) {
    std::vector<uint8_t> message;
    WireWriter(message).u32(kRequestMagic).u16(flags).u16(type).u64(handle).u64(offset).u32(length);
    message.insert(message.end(), payload.begin(), payload.end());
    return send(message);
  }
  // Reads one reply (for a simple READ reply, readLength bytes of data follow a success).
  bool readReply(Reply& reply, size_t readLength = 0) {
    reply = Reply{};
    std::vector<uint8_t> magic;
    if (!receive(4, magic)) return false;
    std::vector<uint8_t> rest;
    if (loadBe32(magic.data()) == kSimpleReplyMagic) {
      if (!receive(12, rest)) return false;
      reply.error = loadBe32(rest.data());
      reply.handle = loadBe64(rest.data() + 4);
      if (reply.error == 0 && readLength > 0 && !receive(readLength, reply.payload)) return false;
      return true;
    }
    EXPECT_EQ(loadBe32(magic.data()), kStructuredReplyMagic);
    if (loadBe32(magic.data()) != kStructuredReplyMagic || !receive(16, rest)) return false;
    reply.structured = true;
    reply.flags = loadBe16(rest.data());
    reply.type = loadBe16(rest.data() + 2);
    reply.handle = loadBe64(rest.data() + 4);
    if (!receive(loadBe32(rest.data() + 12), reply.payload)) return false;
    if (reply.type & 0x8000) {
      if (reply.payload.size() < 6) return false;
      reply.error = loadBe32(reply.payload.data());
      uint16_t length = loadBe16(reply.payload.data() + 4);
      if (reply.payload.size() < 6u + length) return false;
      reply.message.assign(reinterpret_cast<const char*>(reply.payload.data() + 6), length);
    }
    return true;
  }
  // Writes and waits for the reply's error value (~0u if the connection failed).
  uint32_t write(uint64_t handle, uint64_t offset, const std::vector<uint8_t>& data, uint16_t flags = 0) {
    Reply reply;
    if (!request(kCmdWrite, handle, offset, static_cast<uint32_t>(data.size()), flags, data) || !readReply(reply)) {
      return ~0u;
    }
    EXPECT_EQ(reply.handle, handle);
    return reply.error;
  }
  // Reads and returns the data; error receives the reply's error value.
  std::vector<uint8_t> read(uint64_t handle, uint64_t offset, uint32_t length, uint32_t& error) {
    Reply reply;
    error = ~0u;
    if (!request(kCmdRead, handle, offset, length) || !readReply(reply, length)) return {};
    EXPECT_EQ(reply.handle, handle);
    error = reply.error;
    if (reply.structured && reply.type == kReplyTypeOffsetData && reply.payload.size() >= 8) {
      EXPECT_EQ(loadBe64(reply.payload.data()), offset);
      return std::vector<uint8_t>(reply.payload.begin() + 8, reply.payload.end());
    }
    return reply.payload;
  }
  uint32_t command(uint16_t type, uint64_t handle, uint64_t offset, uint32_t length, uint16_t flags = 0) {
    Reply reply;
    if (!request(type, handle, offset, length, flags) || !readReply(reply)) return ~0u;
    EXPECT_EQ(reply.handle, handle);
    return reply.error;
  }

 private:
  void setTimeouts() {
    timeval timeout{10, 0};
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  }

  UniqueFd fd_;
  std::unique_ptr<ClientTls> tls_;
  bool structured_ = false;
};

inline std::string strataBinary() {
  char self[PATH_MAX] = {};
  ssize_t length = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (length <= 0) return {};
  auto path = std::filesystem::path(std::string(self, static_cast<size_t>(length))).parent_path().parent_path() /
              "strata";
  return std::filesystem::exists(path) ? path.string() : std::string{};
}

// A `strata nbd serve` child whose first stdout line is the URI it serves; its
// stderr (the log) goes to logPath when one is given.
class ServeProcess {
 public:
  ServeProcess(const std::string& strata, const std::vector<std::string>& arguments, const std::string& logPath = {}) {
    int out[2];
    if (::pipe(out) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      if (!logPath.empty()) {
        UniqueFd log(::open(logPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        ::dup2(log.get(), STDERR_FILENO);
      }
      ::dup2(out[1], STDOUT_FILENO);
      ::close(out[0]);
      ::close(out[1]);
      std::vector<char*> argv{const_cast<char*>(strata.c_str()), const_cast<char*>("nbd"),
                              const_cast<char*>("serve")};
      for (const auto& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
      argv.push_back(nullptr);
      ::execv(strata.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    FILE* stream = ::fdopen(out[0], "r");
    char line[512] = {};
    if (std::fgets(line, sizeof line, stream) != nullptr) {
      uri_ = line;
      while (!uri_.empty() && uri_.back() == '\n') uri_.pop_back();
    }
    std::fclose(stream);
  }
  ~ServeProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  const std::string& uri() const { return uri_; }
  // Sends signal and returns the exit status (-1 if it did not exit normally).
  int stop(int signal) {
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  std::string uri_;
};

}  // namespace strata::storage::nbd::testing
