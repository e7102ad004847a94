// TLS in the NBD server (NBD_OPT_STARTTLS): the require/on/off policies at the
// protocol level with a raw client speaking GnuTLS, hostile clients (garbage
// instead of a ClientHello, stalls, hang-ups, a broken record stream), and real
// clients — nbdinfo, nbdcopy, qemu-img, qemu-io — with X.509 certificates made
// by certtool and PSK keys made by psktool, plus `strata nbd serve --tls-*`.
#include <fmt/core.h>
#include <gtest/gtest.h>

#include <thread>

#include "../../fuzz/memory_block_device.h"
#include "nbd_test_support.h"
#include "storage/disk_image.h"

namespace strata::storage::nbd {
namespace {

using storage::testing::MemoryBlockDevice;
using testing::ClientTls;
using testing::contains;
using testing::haveTool;
using testing::LoopThread;
using testing::pattern;
using testing::RawClient;
using testing::run;
using testing::ServeProcess;
using testing::strataBinary;
using testing::TempDir;
using testing::TestPki;
using testing::TlsClientOptions;
using testing::writeFile;

constexpr uint16_t kReadWriteFlags = kTransHasFlags | kTransSendFlush | kTransSendFua | kTransSendTrim |
                                     kTransSendWriteZeroes | kTransCanMultiConn;

class NbdTls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    for (const char* tool : {"certtool", "psktool"}) {
      if (!haveTool(tool)) {
        skipReason = std::string(tool) + " is not installed (Debian: gnutls-bin)";
        return;
      }
    }
    keysDir = new TempDir;
    pkiError = testing::makeTestPki(keysDir->file("pki"), pki);
  }
  static void TearDownTestSuite() {
    delete keysDir;
    keysDir = nullptr;
  }
  void SetUp() override {
    if (!skipReason.empty()) GTEST_SKIP() << skipReason;
    ASSERT_EQ(pkiError, "");
  }
  void TearDown() override { stopServing(); }

  static std::shared_ptr<const TlsCredentials> certificates(bool verifyPeer = false) {
    auto loaded = TlsCredentials::loadX509Directory(pki.certs, verifyPeer);
    EXPECT_TRUE(loaded) << loaded.error().message;
    return loaded ? *loaded : nullptr;
  }
  static std::shared_ptr<const TlsCredentials> preSharedKeys() {
    auto loaded = TlsCredentials::loadPskFile(pki.pskFile);
    EXPECT_TRUE(loaded) << loaded.error().message;
    return loaded ? *loaded : nullptr;
  }

  // Serves an in-memory disk named "disk" on a UNIX socket.
  void serveMemory(TlsMode mode, std::shared_ptr<const TlsCredentials> credentials = certificates(),
                   NbdLimits limits = {}) {
    memory = std::make_unique<MemoryBlockDevice>(thread.loop(), 1 << 20);
    NbdExport exported;
    exported.name = "disk";
    exported.device = memory.get();
    startServer(exported, mode, std::move(credentials), limits);
  }
  // Serves an image file as the default export, on a UNIX socket and loopback TCP.
  void serveImage(const std::string& path, TlsMode mode,
                  std::shared_ptr<const TlsCredentials> credentials = certificates()) {
    auto opened = openDiskImage(path, {}, thread.loop());
    ASSERT_TRUE(opened) << opened.error().message;
    image = std::move(*opened);
    NbdExport exported;
    exported.device = image.get();
    exported.blockStatus = diskImageBlockStatus(*image);
    startServer(exported, mode, std::move(credentials));
  }
  void startServer(const NbdExport& exported, TlsMode mode, std::shared_ptr<const TlsCredentials> credentials,
                   NbdLimits limits = {}) {
    server = std::make_unique<NbdServer>(thread.loop(), std::vector{exported}, limits);
    auto configured = server->setTls({mode, std::move(credentials)});
    ASSERT_TRUE(configured) << configured.error().message;
    ASSERT_TRUE(server->listenUnix(socketPath));
    auto port = server->listenTcp(0);
    ASSERT_TRUE(port) << port.error().message;
    tcpPort = *port;
    thread.start();
  }
  void stopServing() {
    if (!server) return;
    thread.call([&] { server->shutdown(); });
    thread.stop();
    for (int i = 0; !server->idle() && i < 1000; ++i) thread.loop().runOnce(10);
    EXPECT_TRUE(server->idle());
    server.reset();
    if (image) {
      bool done = false;
      image->flush([&](int) { done = true; });
      while (!done) thread.loop().runOnce(100);
    }
    image.reset();
    memory.reset();
  }

  RawClient client() {
    auto connection = RawClient::connectUnix(socketPath);
    EXPECT_TRUE(connection.connected());
    return connection;
  }
  // Leaves `stalled` right after the STARTTLS reply and `partial` mid-record:
  // a TLS record header announcing 16 KiB, then only part of it.
  void stallInTlsHandshake(RawClient& stalled, RawClient& partial) {
    stalled.handshake();
    ASSERT_EQ(stalled.option(kOptStartTls, {}).back().type, kRepAck);
    partial.handshake();
    ASSERT_EQ(partial.option(kOptStartTls, {}).back().type, kRepAck);
    std::vector<uint8_t> record{0x16, 0x03, 0x01, 0x40, 0x00};
    record.resize(1000, 0x01);
    ASSERT_TRUE(partial.send(record));
  }
  static TlsClientOptions trustTestCa() { return {.caFile = pki.certs + "/ca-cert.pem"}; }
  // Handshake and NBD_OPT_STARTTLS with the test CA; false if TLS did not come up.
  bool tlsClient(RawClient& c, const TlsClientOptions& options = trustTestCa()) {
    c.handshake();
    std::string error;
    uint32_t reply = c.startTls(options, error);
    EXPECT_EQ(reply, kRepAck);
    EXPECT_EQ(error, "");
    return reply == kRepAck && c.tlsActive();
  }
  size_t connections() {
    return thread.call([&] { return server->connectionCount(); });
  }
  bool waitForClients(size_t count) {
    for (int i = 0; i < 500; ++i) {
      if (connections() == count) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  // A new TLS client negotiates, writes and reads back: the server is serving.
  void expectTlsClientServed(uint64_t offset = 4096) {
    auto c = client();
    ASSERT_TRUE(tlsClient(c));
    ASSERT_EQ(c.option(kOptGo, RawClient::goData("disk")).back().type, kRepAck);
    auto data = pattern(4096, static_cast<uint32_t>(offset));
    EXPECT_EQ(c.write(1, offset, data), 0u);
    uint32_t error;
    EXPECT_EQ(c.read(2, offset, 4096, error), data);
    EXPECT_EQ(error, 0u);
  }
  std::string tlsUnixUri(const std::string& certificates) const {
    return "nbds+unix:///?socket=" + socketPath + "&tls-certificates=" + certificates;
  }
  std::string tlsTcpUri(const std::string& certificates) const {
    return "nbds://127.0.0.1:" + std::to_string(tcpPort) + "/?tls-certificates=" + certificates;
  }
  // qemu's client: --object and --image-opts for an NBD export over loopback TCP with TLS.
  std::string qemuTlsArguments(const std::string& credsObject) const {
    return "--object " + credsObject + " --image-opts driver=nbd,server.type=inet,server.host=127.0.0.1,server.port=" +
           std::to_string(tcpPort) + ",tls-creds=tls0";
  }

  static inline std::string skipReason;
  static inline std::string pkiError;
  static inline TempDir* keysDir = nullptr;
  static inline TestPki pki;

  TempDir dir;
  std::string socketPath = dir.file("nbd.sock");
  uint16_t tcpPort = 0;
  LoopThread thread;
  std::unique_ptr<MemoryBlockDevice> memory;
  std::unique_ptr<DiskImage> image;
  std::unique_ptr<NbdServer> server;
};

// ---- policy, at the protocol level -----------------------------------------

TEST_F(NbdTls, RequireRefusesEveryOptionButStartTlsAndAbort) {
  serveMemory(TlsMode::Require);
  auto c = client();
  c.handshake();
  std::vector<std::pair<uint32_t, std::vector<uint8_t>>> options{
      {kOptList, {}},
      {kOptInfo, RawClient::goData("disk")},
      {kOptGo, RawClient::goData("disk")},
      {kOptStructuredReply, {}},
      {kOptListMetaContext, RawClient::metaData("disk", {})},
      {99, {1, 2, 3}},
  };
  for (const auto& [option, data] : options) {
    auto replies = c.option(option, data);
    ASSERT_EQ(replies.size(), 1u) << optionName(option);
    EXPECT_EQ(replies[0].type, kRepErrTlsReqd) << optionName(option);
    EXPECT_EQ(std::string(replies[0].data.begin(), replies[0].data.end()),
              "this server requires TLS: send NBD_OPT_STARTTLS first");
  }
  auto abort = c.option(kOptAbort, {});
  ASSERT_EQ(abort.size(), 1u);
  EXPECT_EQ(abort[0].type, kRepAck);
  EXPECT_TRUE(c.closedByServer());

  // NBD_OPT_EXPORT_NAME cannot be refused with an error: the session ends.
  auto d = client();
  d.handshake();
  ASSERT_TRUE(d.sendOption(kOptExportName, {'d', 'i', 's', 'k'}));
  EXPECT_TRUE(d.closedByServer());
  // So does a client without fixed newstyle, which may only send NBD_OPT_EXPORT_NAME.
  auto e = client();
  e.handshake(0);
  ASSERT_TRUE(e.sendOption(kOptExportName, {}));
  EXPECT_TRUE(e.closedByServer());
  EXPECT_EQ(thread.call([&] { return memory->writes; }), 0u);
}

TEST_F(NbdTls, OptionsAndTransmissionOverTls) {
  serveMemory(TlsMode::Require);
  auto c = client();
  ASSERT_TRUE(tlsClient(c));
  // Haggling goes on inside TLS: what was refused before now works.
  auto list = c.option(kOptList, {});
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].type, kRepServer);
  EXPECT_EQ(list[1].type, kRepAck);
  // A second STARTTLS is invalid once TLS is up, and haggling continues.
  auto again = c.option(kOptStartTls, {});
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].type, kRepErrInvalid);
  EXPECT_EQ(std::string(again[0].data.begin(), again[0].data.end()), "TLS is already active");
  ASSERT_EQ(c.option(kOptStructuredReply, {}).back().type, kRepAck);
  c.setStructured(true);
  auto go = c.option(kOptGo, RawClient::goData("disk"));
  ASSERT_EQ(go.back().type, kRepAck);
  EXPECT_EQ(loadBe16(go[0].data.data() + 10), kReadWriteFlags | kTransSendDf);

  // Transfers larger than a TLS record (16 KiB) and than the encrypt-ahead window
  // (256 KiB), several in flight at once.
  auto data = pattern(1 << 20, 21);
  std::vector<uint8_t> half(data.begin(), data.begin() + (512 << 10));
  std::vector<uint8_t> rest(data.begin() + (512 << 10), data.end());
  ASSERT_TRUE(c.request(kCmdWrite, 10, 0, static_cast<uint32_t>(half.size()), 0, half));
  ASSERT_TRUE(c.request(kCmdWrite, 11, 512 << 10, static_cast<uint32_t>(rest.size()), kCmdFlagFua, rest));
  testing::Reply reply;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(c.readReply(reply));
    EXPECT_EQ(reply.error, 0u);
  }
  for (uint64_t handle = 20; handle < 24; ++handle) {
    ASSERT_TRUE(c.request(kCmdRead, handle, (handle - 20) << 18, 1 << 18));
  }
  std::vector<uint8_t> readBack(1 << 20);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(c.readReply(reply));
    ASSERT_EQ(reply.type, kReplyTypeOffsetData);
    ASSERT_EQ(reply.payload.size(), 8u + (1 << 18));
    uint64_t offset = loadBe64(reply.payload.data());
    EXPECT_EQ(offset, (reply.handle - 20) << 18);
    std::copy(reply.payload.begin() + 8, reply.payload.end(), readBack.begin() + static_cast<ptrdiff_t>(offset));
  }
  EXPECT_EQ(readBack, data);
  EXPECT_EQ(thread.call([&] { return memory->bytes(); }), data);
  // NBD_CMD_DISC ends the session with a TLS close_notify, which the client sees as a clean end.
  ASSERT_TRUE(c.request(kCmdDisc, 30, 0, 0));
  EXPECT_TRUE(c.closedByServer());
  EXPECT_TRUE(waitForClients(0));
}

TEST_F(NbdTls, WhatWasNegotiatedInTheClearIsForgottenAfterStartTls) {
  serveMemory(TlsMode::On);
  auto c = client();
  c.handshake();
  ASSERT_EQ(c.option(kOptStructuredReply, {}).back().type, kRepAck);  // mode On: options work in the clear
  std::string error;
  ASSERT_EQ(c.startTls(trustTestCa(), error), kRepAck);
  ASSERT_EQ(error, "");
  // Without negotiating structured replies again, the session has simple replies only.
  auto go = c.option(kOptGo, RawClient::goData("disk"));
  ASSERT_EQ(go.back().type, kRepAck);
  EXPECT_EQ(loadBe16(go[0].data.data() + 10), kReadWriteFlags);
  testing::Reply reply;
  ASSERT_TRUE(c.request(kCmdRead, 5, 0, 512));
  ASSERT_TRUE(c.readReply(reply, 512));
  EXPECT_FALSE(reply.structured);
  EXPECT_EQ(reply.payload.size(), 512u);
}

TEST_F(NbdTls, ModeOnServesPlaintextClientsToo) {
  serveMemory(TlsMode::On);
  auto plain = client();
  ASSERT_EQ(plain.connectExport("disk"), kReadWriteFlags);
  EXPECT_EQ(plain.write(1, 0, pattern(4096, 3)), 0u);
  expectTlsClientServed();
}

TEST_F(NbdTls, ModeOffRefusesStartTlsWithPolicy) {
  serveMemory(TlsMode::Off, nullptr);
  auto c = client();
  c.handshake();
  auto replies = c.option(kOptStartTls, {});
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].type, kRepErrPolicy);
  EXPECT_EQ(c.option(kOptGo, RawClient::goData("disk")).back().type, kRepAck);
}

TEST_F(NbdTls, StartTlsWithDataIsInvalidAndHagglingContinues) {
  serveMemory(TlsMode::Require);
  auto c = client();
  c.handshake();
  auto replies = c.option(kOptStartTls, {1, 2, 3});
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].type, kRepErrInvalid);
  std::string error;
  EXPECT_EQ(c.startTls(trustTestCa(), error), kRepAck);
  EXPECT_EQ(error, "");
  EXPECT_EQ(c.option(kOptGo, RawClient::goData("disk")).back().type, kRepAck);
}

TEST_F(NbdTls, PolicyNeedsCredentials) {
  NbdServer bare(thread.loop(), {});
  auto refused = bare.setTls({TlsMode::Require, nullptr});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message, "TLS mode require needs credentials");
  EXPECT_TRUE(bare.setTls({TlsMode::Off, nullptr}));
}

// ---- hostile and broken clients ------------------------------------------------

TEST_F(NbdTls, GarbageInsteadOfAClientHelloDropsOnlyThatClient) {
  serveMemory(TlsMode::Require);
  std::vector<std::vector<uint8_t>> garbage{
      std::vector<uint8_t>(1000, 0x00),
      {'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P', '/', '1', '.', '1', '\r', '\n', '\r', '\n'},
      pattern(4096, 7),
      // A handshake record holding a ServerHello, which a client never sends.
      {0x16, 0x03, 0x01, 0x00, 0x08, 0x02, 0x00, 0x00, 0x04, 0x03, 0x03, 0x00, 0x00},
  };
  // A ClientHello claiming 16 MiB, sent as 16 KiB records: the server gives up
  // after 256 KiB instead of collecting it all.
  std::vector<uint8_t> huge{0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0xff, 0xff, 0xff};
  huge.resize(5 + 0x4000, 0x00);
  for (int record = 0; record < 20; ++record) {
    huge.insert(huge.end(), {0x16, 0x03, 0x01, 0x40, 0x00});
    huge.resize(huge.size() + 0x4000, 0x00);
  }
  garbage.push_back(huge);
  for (const auto& bytes : garbage) {
    auto c = client();
    c.handshake();
    auto ack = c.option(kOptStartTls, {});
    ASSERT_EQ(ack.back().type, kRepAck);
    c.send(bytes);  // may fail part-way: the server hangs up on the huge one once it has seen 256 KiB
    EXPECT_TRUE(c.closedByServer());
  }
  EXPECT_TRUE(waitForClients(0));
  expectTlsClientServed();
}

TEST_F(NbdTls, StalledAndVanishingHandshakesDoNotHoldUpOthers) {
  serveMemory(TlsMode::Require);
  auto stalled = client();
  auto partial = client();
  ASSERT_NO_FATAL_FAILURE(stallInTlsHandshake(stalled, partial));
  // While they wait, other clients are served over TLS.
  expectTlsClientServed(0);
  expectTlsClientServed(8192);
  EXPECT_TRUE(stalled.quiet());
  EXPECT_TRUE(partial.quiet());
  EXPECT_TRUE(waitForClients(2));
  // Hanging up mid-handshake just drops the connection.
  stalled.close();
  partial.close();
  EXPECT_TRUE(waitForClients(0));
  expectTlsClientServed();
}

TEST_F(NbdTls, StalledTlsHandshakesAreDroppedAtTheHandshakeLimit) {
  NbdLimits limits;
  limits.handshakeLimit = std::chrono::seconds(1);
  serveMemory(TlsMode::Require, certificates(), limits);
  auto stalled = client();
  auto partial = client();
  ASSERT_NO_FATAL_FAILURE(stallInTlsHandshake(stalled, partial));
  // A client that completes TLS but never picks an export is dropped too.
  auto undecided = client();
  ASSERT_TRUE(tlsClient(undecided));
  // Meanwhile a well-behaved client is served, and stays past the limit.
  auto good = client();
  ASSERT_TRUE(tlsClient(good));
  ASSERT_EQ(good.option(kOptGo, RawClient::goData("disk")).back().type, kRepAck);
  EXPECT_EQ(good.write(1, 0, pattern(4096, 5)), 0u);
  EXPECT_TRUE(stalled.closedByServer());
  EXPECT_TRUE(partial.closedByServer());
  EXPECT_TRUE(undecided.closedByServer());
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  uint32_t error;
  EXPECT_EQ(good.read(2, 0, 4096, error), pattern(4096, 5));
  EXPECT_EQ(error, 0u);
  EXPECT_TRUE(waitForClients(1));
}

TEST_F(NbdTls, ClientHelloSentWithoutWaitingForTheReplyIsAccepted) {
  serveMemory(TlsMode::Require);
  // The client pipelines STARTTLS and its ClientHello in one write: the server
  // must reply in the clear first and then hand the early bytes to TLS.
  auto c = client();
  c.handshake();
  struct Transport {
    int fd;
    bool first = true;
    bool replySkipped = false;
    std::vector<uint8_t> reply;
  } transport{c.fd()};
  gnutls_session_t session;
  gnutls_certificate_credentials_t credentials;
  ASSERT_EQ(gnutls_init(&session, GNUTLS_CLIENT | GNUTLS_NO_SIGNAL), 0);
  gnutls_certificate_allocate_credentials(&credentials);
  gnutls_certificate_set_x509_trust_file(credentials, (pki.certs + "/ca-cert.pem").c_str(), GNUTLS_X509_FMT_PEM);
  gnutls_set_default_priority(session);
  gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, credentials);
  gnutls_session_set_verify_cert(session, "localhost", 0);
  gnutls_transport_set_ptr(session, &transport);
  gnutls_transport_set_push_function(session, [](gnutls_transport_ptr_t self, const void* data, size_t length) {
    auto* t = static_cast<Transport*>(self);
    std::vector<uint8_t> bytes;
    if (t->first) {  // the STARTTLS option and the ClientHello in one segment
      WireWriter(bytes).u64(kOptionMagic).u32(kOptStartTls).u32(0);
      t->first = false;
    }
    bytes.insert(bytes.end(), static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + length);
    return ::send(t->fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size())
               ? static_cast<ssize_t>(length)
               : -1;
  });
  gnutls_transport_set_pull_function(session, [](gnutls_transport_ptr_t self, void* buffer, size_t length) {
    auto* t = static_cast<Transport*>(self);
    while (!t->replySkipped) {  // the plaintext NBD_REP_ACK comes before any TLS record
      uint8_t byte;
      if (::recv(t->fd, &byte, 1, 0) != 1) return ssize_t{-1};
      t->reply.push_back(byte);
      t->replySkipped = t->reply.size() == kOptionReplyHeaderSize;
    }
    return ::recv(t->fd, buffer, length, 0);
  });
  int rc = gnutls_handshake(session);
  EXPECT_EQ(rc, 0) << gnutls_strerror(rc);
  ASSERT_EQ(transport.reply.size(), kOptionReplyHeaderSize);
  EXPECT_EQ(loadBe32(transport.reply.data() + 12), kRepAck);
  gnutls_deinit(session);
  gnutls_certificate_free_credentials(credentials);
}

TEST_F(NbdTls, GarbageInsideAnEstablishedSessionDropsOnlyThatClient) {
  serveMemory(TlsMode::Require);
  auto c = client();
  ASSERT_TRUE(tlsClient(c));
  ASSERT_EQ(c.option(kOptGo, RawClient::goData("disk")).back().type, kRepAck);
  // Plaintext bytes on the socket of a TLS session: not a valid record.
  std::vector<uint8_t> bytes;
  WireWriter(bytes).u32(kRequestMagic).u16(0).u16(kCmdRead).u64(1).u64(0).u32(512);
  ASSERT_EQ(::send(c.fd(), bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
  EXPECT_TRUE(c.closedByServer());
  EXPECT_TRUE(waitForClients(0));
  expectTlsClientServed();
}

TEST_F(NbdTls, UntrustedCertificateIsRejectedByTheRawClient) {
  serveMemory(TlsMode::Require);
  auto c = client();
  c.handshake();
  std::string error;
  EXPECT_EQ(c.startTls({.caFile = pki.untrusted + "/ca-cert.pem"}, error), kRepAck);
  EXPECT_EQ(error, "Error in the certificate verification.");
  EXPECT_FALSE(c.tlsActive());
  c.close();
  EXPECT_TRUE(waitForClients(0));
  expectTlsClientServed();
}

TEST_F(NbdTls, PreSharedKeys) {
  serveMemory(TlsMode::Require, preSharedKeys());
  auto c = client();
  ASSERT_TRUE(tlsClient(c, {.pskUser = "alice", .pskKey = pki.pskKey}));
  ASSERT_EQ(c.option(kOptGo, RawClient::goData("disk")).back().type, kRepAck);
  EXPECT_EQ(c.write(1, 0, pattern(8192, 4)), 0u);
  // A wrong key or an unknown user fails the handshake.
  for (const auto& [user, key] : {std::pair{std::string("alice"), std::string(64, '0')},
                                  std::pair{std::string("mallory"), pki.pskKey}}) {
    auto d = client();
    d.handshake();
    std::string error;
    EXPECT_EQ(d.startTls({.pskUser = user, .pskKey = key}, error), kRepAck);
    EXPECT_NE(error, "") << user;
    EXPECT_FALSE(d.tlsActive());
  }
}

// ---- client certificates (--tls-verify-peer) ------------------------------------

TEST_F(NbdTls, VerifyPeerServesOnlyClientsWithACertificateFromTheCa) {
  serveMemory(TlsMode::Require, certificates(true));
  // True when the client gets through TLS and NBD_OPT_GO.
  auto served = [&](const TlsClientOptions& options) {
    auto c = client();
    c.handshake();
    std::string error;
    if (c.startTls(options, error) != kRepAck || !c.tlsActive()) return false;
    // Under TLS 1.3 the client finishes its side before the server has checked
    // its certificate; the refusal then arrives as an alert instead of a reply.
    auto replies = c.option(kOptGo, RawClient::goData("disk"));
    return !replies.empty() && replies.back().type == kRepAck;
  };
  std::string ca = pki.certs + "/ca-cert.pem";
  EXPECT_TRUE(served({.caFile = ca, .certificateFile = pki.client + "/client-cert.pem",
                      .keyFile = pki.client + "/client-key.pem"}));
  EXPECT_FALSE(served(trustTestCa())) << "no client certificate";
  EXPECT_FALSE(served({.caFile = ca, .certificateFile = pki.rogue + "/client-cert.pem",
                       .keyFile = pki.rogue + "/client-key.pem"}))
      << "signed by another CA";
  EXPECT_FALSE(served({.caFile = ca, .certificateFile = pki.certs + "/server-cert.pem",
                       .keyFile = pki.certs + "/server-key.pem"}))
      << "the right CA, but a certificate for TLS servers only";
  EXPECT_TRUE(waitForClients(0));
}

TEST_F(NbdTls, WithoutVerifyPeerAClientCertificateIsNotAskedFor) {
  serveMemory(TlsMode::Require, certificates(false));
  auto c = client();
  ASSERT_TRUE(tlsClient(c, {.caFile = pki.certs + "/ca-cert.pem", .certificateFile = pki.rogue + "/client-cert.pem",
                            .keyFile = pki.rogue + "/client-key.pem"}));
  EXPECT_EQ(c.option(kOptGo, RawClient::goData("disk")).back().type, kRepAck);
}

TEST_F(NbdTls, CredentialErrorsAreClear) {
  auto missing = TlsCredentials::loadX509Directory(dir.file("nowhere"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message, dir.file("nowhere") + "/server-cert.pem: No such file or directory");
  // A key that does not belong to the certificate.
  std::string mismatched = dir.file("mismatched");
  std::filesystem::create_directories(mismatched);
  std::filesystem::copy_file(pki.certs + "/server-cert.pem", mismatched + "/server-cert.pem");
  std::filesystem::copy_file(pki.certs + "/ca-key.pem", mismatched + "/server-key.pem");
  auto wrongKey = TlsCredentials::loadX509Directory(mismatched);
  ASSERT_FALSE(wrongKey);
  EXPECT_TRUE(contains(wrongKey.error().message, "do not match")) << wrongKey.error().message;
  std::ofstream(dir.file("bad.psk")) << "alice:not-hex\n";
  auto badPsk = TlsCredentials::loadPskFile(dir.file("bad.psk"));
  ASSERT_FALSE(badPsk);
  EXPECT_EQ(badPsk.error().message, dir.file("bad.psk") + ":1: expected username:hexkey (as psktool writes)");
  std::ofstream(dir.file("empty.psk")).close();
  auto emptyPsk = TlsCredentials::loadPskFile(dir.file("empty.psk"));
  ASSERT_FALSE(emptyPsk);
  EXPECT_EQ(emptyPsk.error().message, dir.file("empty.psk") + ": no keys");
  // verify-peer needs the CA that signs client certificates.
  std::string noCa = dir.file("no-ca");
  std::filesystem::create_directories(noCa);
  for (const char* file : {"server-cert.pem", "server-key.pem"}) {
    std::filesystem::copy_file(pki.certs + "/" + file, noCa + "/" + file);
  }
  EXPECT_TRUE(TlsCredentials::loadX509Directory(noCa, false));
  auto withoutCa = TlsCredentials::loadX509Directory(noCa, true);
  ASSERT_FALSE(withoutCa);
  EXPECT_EQ(withoutCa.error().message, noCa + "/ca-cert.pem: No such file or directory");
  std::ofstream(noCa + "/ca-cert.pem") << "not a certificate\n";
  auto badCa = TlsCredentials::loadX509Directory(noCa, true);
  ASSERT_FALSE(badCa);
  EXPECT_EQ(badCa.error().message, noCa + "/ca-cert.pem: no certificates");
  EXPECT_FALSE(parseTlsMode("maybe"));
  EXPECT_EQ(*parseTlsMode("require"), TlsMode::Require);
}

// ---- real clients -------------------------------------------------------------

class NbdTlsInterop : public NbdTls {
 protected:
  void SetUp() override {
    NbdTls::SetUp();
    if (IsSkipped()) return;
    for (const char* tool : {"nbdinfo", "nbdcopy", "qemu-img", "qemu-io"}) {
      if (!haveTool(tool)) GTEST_SKIP() << tool << " is not installed (Debian: libnbd-bin, qemu-utils)";
    }
  }
};

TEST_F(NbdTlsInterop, NbdinfoAndNbdcopyOverTlsAreByteExact) {
  std::string disk = dir.file("disk.qcow2");
  ASSERT_EQ(run("qemu-img create -f qcow2 " + disk + " 24M").exitCode, 0);
  auto data = pattern(24 << 20, 31);
  std::fill(data.begin() + (8 << 20), data.begin() + (12 << 20), 0);
  writeFile(dir.file("source.raw"), data);
  serveImage(disk, TlsMode::Require);
  auto info = run("nbdinfo '" + tlsUnixUri(pki.certs) + "'");
  ASSERT_EQ(info.exitCode, 0) << info.output;
  EXPECT_TRUE(contains(info.output, "protocol: newstyle-fixed with TLS, using structured packets")) << info.output;
  EXPECT_TRUE(contains(info.output, "export-size: 25165824")) << info.output;
  EXPECT_TRUE(contains(info.output, "base:allocation")) << info.output;
  auto in = run("nbdcopy --connections=4 --requests=16 " + dir.file("source.raw") + " '" + tlsUnixUri(pki.certs) + "'");
  ASSERT_EQ(in.exitCode, 0) << in.output;
  auto out = run("nbdcopy '" + tlsTcpUri(pki.certs) + "' " + dir.file("copy.raw"));
  ASSERT_EQ(out.exitCode, 0) << out.output;
  EXPECT_EQ(run("cmp " + dir.file("source.raw") + " " + dir.file("copy.raw")).exitCode, 0);
  stopServing();
  EXPECT_EQ(run("qemu-img compare -f qcow2 -F raw " + disk + " " + dir.file("source.raw")).exitCode, 0);
}

TEST_F(NbdTlsInterop, QemuIoAndQemuImgWriteThenReadBackOverTls) {
  std::string disk = dir.file("disk.raw");
  writeFile(disk, std::vector<uint8_t>(8 << 20, 0));
  serveImage(disk, TlsMode::Require);
  std::string x509 = "tls-creds-x509,id=tls0,dir=" + pki.certs + ",endpoint=client";
  auto written = run("qemu-io " + qemuTlsArguments(x509) +
                     " -c 'write -P 0x5a 1M 3M' -c 'write -P 0x33 100 7' -c 'write -f -P 0x44 6M 64k' -c flush");
  ASSERT_EQ(written.exitCode, 0) << written.output;
  EXPECT_FALSE(contains(written.output, "error")) << written.output;
  auto readBack = run("qemu-io " + qemuTlsArguments(x509) +
                      " -c 'read -P 0x5a 1M 3M' -c 'read -P 0x33 100 7' -c 'read -P 0 0 100' -c 'read -P 0x44 6M 64k'");
  ASSERT_EQ(readBack.exitCode, 0) << readBack.output;
  EXPECT_FALSE(contains(readBack.output, "Pattern verification failed")) << readBack.output;
  EXPECT_TRUE(contains(readBack.output, "read 7/7 bytes at offset 100")) << readBack.output;
  auto convert = run("qemu-img convert " + qemuTlsArguments(x509) + " -O raw " + dir.file("copy.raw"));
  ASSERT_EQ(convert.exitCode, 0) << convert.output;
  stopServing();
  EXPECT_EQ(run("cmp " + disk + " " + dir.file("copy.raw")).exitCode, 0);
  auto direct = run("qemu-io -f raw -c 'read -P 0x5a 1M 3M' -c 'read -P 0x44 6M 64k' " + disk);
  EXPECT_FALSE(contains(direct.output, "Pattern verification failed")) << direct.output;
}

TEST_F(NbdTlsInterop, PlaintextClientsAreRefusedByARequireServer) {
  std::string disk = dir.file("disk.raw");
  writeFile(disk, std::vector<uint8_t>(1 << 20, 0x11));
  serveImage(disk, TlsMode::Require);
  auto qemu = run("qemu-img info 'nbd+unix:///?socket=" + socketPath + "'");
  EXPECT_NE(qemu.exitCode, 0);
  EXPECT_TRUE(contains(qemu.output, "TLS negotiation required")) << qemu.output;
  EXPECT_TRUE(contains(qemu.output, "server reported: this server requires TLS: send NBD_OPT_STARTTLS first"))
      << qemu.output;
  auto nbdinfo = run("nbdinfo 'nbd://127.0.0.1:" + std::to_string(tcpPort) + "/'");
  EXPECT_NE(nbdinfo.exitCode, 0) << nbdinfo.output;
  auto copy = run("nbdcopy 'nbd+unix:///?socket=" + socketPath + "' " + dir.file("copy.raw"));
  EXPECT_NE(copy.exitCode, 0) << copy.output;
  EXPECT_FALSE(std::filesystem::exists(dir.file("copy.raw")) && std::filesystem::file_size(dir.file("copy.raw")) > 0);
}

TEST_F(NbdTlsInterop, UntrustedCertificateIsRejectedByTheClients) {
  std::string disk = dir.file("disk.raw");
  writeFile(disk, std::vector<uint8_t>(1 << 20, 0x11));
  serveImage(disk, TlsMode::Require);
  auto nbdinfo = run("nbdinfo '" + tlsTcpUri(pki.untrusted) + "'");
  EXPECT_NE(nbdinfo.exitCode, 0);
  EXPECT_TRUE(contains(nbdinfo.output, "certificate verification")) << nbdinfo.output;
  auto qemu = run("qemu-io " + qemuTlsArguments("tls-creds-x509,id=tls0,dir=" + pki.untrusted + ",endpoint=client") +
                  " -c 'read 0 4k'");
  EXPECT_NE(qemu.exitCode, 0);
  EXPECT_TRUE(contains(qemu.output, "The certificate hasn't got a known issuer")) << qemu.output;
  // The server carries on.
  EXPECT_TRUE(waitForClients(0));
  auto good = run("qemu-io " + qemuTlsArguments("tls-creds-x509,id=tls0,dir=" + pki.certs + ",endpoint=client") +
                  " -c 'read -P 0x11 0 1M'");
  EXPECT_EQ(good.exitCode, 0) << good.output;
  EXPECT_FALSE(contains(good.output, "Pattern verification failed")) << good.output;
}

TEST_F(NbdTlsInterop, PreSharedKeysWithNbdinfoAndQemuIo) {
  std::string disk = dir.file("disk.raw");
  writeFile(disk, std::vector<uint8_t>(4 << 20, 0));
  serveImage(disk, TlsMode::Require, preSharedKeys());
  // qemu reads DIR/keys.psk; the test's key file is pki/keys.psk.
  std::string psk = "tls-creds-psk,id=tls0,dir=" + std::filesystem::path(pki.pskFile).parent_path().string() +
                    ",endpoint=client,username=alice";
  auto written = run("qemu-io " + qemuTlsArguments(psk) + " -c 'write -P 0x77 64k 128k'");
  ASSERT_EQ(written.exitCode, 0) << written.output;
  auto info = run("nbdinfo 'nbds+unix://alice@/?socket=" + socketPath + "&tls-psk-file=" + pki.pskFile + "'");
  ASSERT_EQ(info.exitCode, 0) << info.output;
  EXPECT_TRUE(contains(info.output, "with TLS")) << info.output;
  auto copy = run("nbdcopy 'nbds://alice@127.0.0.1:" + std::to_string(tcpPort) + "/?tls-psk-file=" + pki.pskFile +
                  "' " + dir.file("copy.raw"));
  ASSERT_EQ(copy.exitCode, 0) << copy.output;
  auto expected = std::vector<uint8_t>(4 << 20, 0);
  std::fill(expected.begin() + (64 << 10), expected.begin() + (192 << 10), 0x77);
  writeFile(dir.file("expected.raw"), expected);
  EXPECT_EQ(run("cmp " + dir.file("expected.raw") + " " + dir.file("copy.raw")).exitCode, 0);
  auto stranger = run("nbdinfo 'nbds+unix://mallory@/?socket=" + socketPath + "&tls-psk-file=" + pki.pskFile + "'");
  EXPECT_NE(stranger.exitCode, 0) << stranger.output;
}

TEST_F(NbdTlsInterop, VerifyPeerWithNbdinfoNbdcopyAndQemuIo) {
  std::string disk = dir.file("disk.raw");
  writeFile(disk, std::vector<uint8_t>(2 << 20, 0x22));
  serveImage(disk, TlsMode::Require, certificates(true));
  // libnbd and qemu read client-cert.pem and client-key.pem from the same directory as ca-cert.pem.
  auto info = run("nbdinfo '" + tlsUnixUri(pki.client) + "'");
  ASSERT_EQ(info.exitCode, 0) << info.output;
  EXPECT_TRUE(contains(info.output, "with TLS")) << info.output;
  std::string clientCreds = "tls-creds-x509,id=tls0,dir=" + pki.client + ",endpoint=client";
  auto written = run("qemu-io " + qemuTlsArguments(clientCreds) + " -c 'write -P 0x66 64k 64k'");
  ASSERT_EQ(written.exitCode, 0) << written.output;
  EXPECT_FALSE(contains(written.output, "error")) << written.output;
  auto copy = run("nbdcopy '" + tlsTcpUri(pki.client) + "' " + dir.file("copy.raw"));
  ASSERT_EQ(copy.exitCode, 0) << copy.output;
  auto expected = std::vector<uint8_t>(2 << 20, 0x22);
  std::fill(expected.begin() + (64 << 10), expected.begin() + (128 << 10), 0x66);
  writeFile(dir.file("expected.raw"), expected);
  EXPECT_EQ(run("cmp " + dir.file("expected.raw") + " " + dir.file("copy.raw")).exitCode, 0);
  // Without a client certificate, or with one from another CA, both clients are refused.
  for (const auto& creds : {pki.certs, pki.rogue}) {
    auto refused = run("nbdinfo '" + tlsUnixUri(creds) + "'");
    EXPECT_NE(refused.exitCode, 0) << creds << ": " << refused.output;
    auto qemu = run("qemu-io " + qemuTlsArguments("tls-creds-x509,id=tls0,dir=" + creds + ",endpoint=client") +
                    " -c 'read 0 4k'");
    EXPECT_NE(qemu.exitCode, 0) << creds << ": " << qemu.output;
    EXPECT_FALSE(contains(qemu.output, "read 4096/4096")) << qemu.output;
  }
  EXPECT_TRUE(waitForClients(0));
}

TEST_F(NbdTlsInterop, StrataNbdServeWithTls) {
  std::string strata = strataBinary();
  if (strata.empty()) GTEST_SKIP() << "strata binary not built next to the test";
  std::string disk = dir.file("disk.qcow2");
  ASSERT_EQ(run("qemu-img create -f qcow2 " + disk + " 8M").exitCode, 0);
  writeFile(dir.file("source.raw"), pattern(8 << 20, 41));
  {  // credentials alone: TLS required
    ServeProcess serve(strata, {"--socket", socketPath, "--tls-certs", pki.certs, disk});
    ASSERT_EQ(serve.uri(), "nbds+unix:///?socket=" + socketPath);
    std::string uri = serve.uri() + "&tls-certificates=" + pki.certs;
    auto copy = run("nbdcopy " + dir.file("source.raw") + " '" + uri + "'");
    ASSERT_EQ(copy.exitCode, 0) << copy.output;
    auto plain = run("qemu-img info 'nbd+unix:///?socket=" + socketPath + "'");
    EXPECT_TRUE(contains(plain.output, "TLS negotiation required")) << plain.output;
    EXPECT_EQ(serve.stop(SIGTERM), 0);
  }
  {  // --tls=on over TCP: TLS and plaintext clients both served
    ServeProcess serve(strata, {"--port", "0", "--tls=on", "--tls-certs", pki.certs, "--read-only", disk});
    ASSERT_EQ(serve.uri().rfind("nbds://127.0.0.1:", 0), 0u) << serve.uri();
    auto viaNbdcopy = run("nbdcopy '" + serve.uri() + "?tls-certificates=" + pki.certs + "' " + dir.file("copy.raw"));
    ASSERT_EQ(viaNbdcopy.exitCode, 0) << viaNbdcopy.output;
    EXPECT_EQ(run("cmp " + dir.file("source.raw") + " " + dir.file("copy.raw")).exitCode, 0);
    std::string plainUri = "nbd://" + serve.uri().substr(std::string("nbds://").size());
    auto plain = run("qemu-img compare -f raw -F raw '" + plainUri + "' " + dir.file("source.raw"));
    EXPECT_EQ(plain.exitCode, 0) << plain.output;
    EXPECT_EQ(serve.stop(SIGINT), 0);
  }
  auto noCredentials = run(strata + " nbd serve --socket " + socketPath + " --tls=require " + disk);
  EXPECT_EQ(noCredentials.exitCode, 1);
  EXPECT_TRUE(contains(noCredentials.output, "--tls=require needs --tls-certs DIR or --tls-psk FILE"))
      << noCredentials.output;
  auto missing = run(strata + " nbd serve --socket " + socketPath + " --tls-certs " + dir.file("nowhere") + " " + disk);
  EXPECT_EQ(missing.exitCode, 1);
  EXPECT_TRUE(contains(missing.output, "nowhere/server-cert.pem: No such file or directory")) << missing.output;
  auto badMode = run(strata + " nbd serve --socket " + socketPath + " --tls=maybe --tls-certs " + pki.certs + " " + disk);
  EXPECT_EQ(badMode.exitCode, 1);
  EXPECT_TRUE(contains(badMode.output, "TLS mode 'maybe': expected off, on or require")) << badMode.output;
  auto verifyPsk = run(strata + " nbd serve --socket " + socketPath + " --tls-psk " + pki.pskFile +
                       " --tls-verify-peer " + disk);
  EXPECT_EQ(verifyPsk.exitCode, 1);
  EXPECT_TRUE(contains(verifyPsk.output, "--tls-verify-peer checks client certificates: it needs --tls-certs DIR"))
      << verifyPsk.output;
}

TEST_F(NbdTlsInterop, StrataNbdServeHandshakeLimitMaxClientsAndVerifyPeer) {
  std::string strata = strataBinary();
  if (strata.empty()) GTEST_SKIP() << "strata binary not built next to the test";
  std::string disk = dir.file("disk.raw");
  writeFile(disk, pattern(1 << 20, 51));
  std::string log = dir.file("serve.log");
  {
    ServeProcess serve(strata,
                       {"--port", "0", "--handshake-limit", "1", "--max-clients", "2", "--tls-certs", pki.certs,
                        "--tls-verify-peer", "--read-only", disk},
                       log);
    ASSERT_EQ(serve.uri().rfind("nbds://127.0.0.1:", 0), 0u) << serve.uri();
    auto port = static_cast<uint16_t>(std::stoi(serve.uri().substr(std::string("nbds://127.0.0.1:").size())));
    // Two clients that stall take both slots; a third is refused, until the limit drops the two.
    auto silent = RawClient::connectTcp(port);
    auto stalled = RawClient::connectTcp(port);
    stalled.handshake();
    ASSERT_EQ(stalled.option(kOptStartTls, {}).back().type, kRepAck);
    auto refused = RawClient::connectTcp(port);
    uint8_t byte;
    EXPECT_EQ(refused.receiveSome(&byte, 1), 0);
    EXPECT_TRUE(silent.closedByServer());
    EXPECT_TRUE(stalled.closedByServer());
    auto info = run("nbdinfo '" + serve.uri() + "?tls-certificates=" + pki.client + "'");
    EXPECT_EQ(info.exitCode, 0) << info.output;
    auto anonymous = run("nbdinfo '" + serve.uri() + "?tls-certificates=" + pki.certs + "'");
    EXPECT_NE(anonymous.exitCode, 0) << anonymous.output;
    EXPECT_EQ(serve.stop(SIGTERM), 0);
    // The log names each client the server gave up on, and why.
    std::ifstream in(log);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_TRUE(contains(text, fmt::format("client #1 (127.0.0.1:{}): negotiation not finished within the handshake "
                                           "limit of 1 s; disconnecting",
                                           silent.localPort())))
        << text;
    EXPECT_TRUE(contains(text, fmt::format("client #2 (127.0.0.1:{}): TLS handshake not finished within the "
                                           "handshake limit of 1 s; disconnecting",
                                           stalled.localPort())))
        << text;
    EXPECT_TRUE(contains(text, fmt::format("refusing client #3 (127.0.0.1:{}): the connection limit (2) is reached",
                                           refused.localPort())))
        << text;
    EXPECT_TRUE(contains(text, "client #5 (127.0.0.1:")) << text;
    EXPECT_TRUE(contains(text, "TLS handshake failed")) << text;
  }
  auto negative = run(strata + " nbd serve --socket " + socketPath + " --handshake-limit -1 " + disk);
  EXPECT_NE(negative.exitCode, 0);
  EXPECT_TRUE(contains(negative.output, "--handshake-limit")) << negative.output;
}

}  // namespace
}  // namespace strata::storage::nbd
