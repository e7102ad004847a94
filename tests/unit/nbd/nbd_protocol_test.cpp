// The NBD server against a raw-protocol client: negotiation, every command,
// error replies, and hostile input (bad lengths, garbage, truncation, abrupt
// disconnects), with the export on an in-memory device.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "../../fuzz/memory_block_device.h"
#include "nbd_test_support.h"

namespace strata::storage::nbd {
namespace {

using storage::testing::MemoryBlockDevice;
using testing::LoopThread;
using testing::OptionReply;
using testing::pattern;
using testing::RawClient;
using testing::Reply;
using testing::TempDir;

constexpr size_t kDeviceSize = 1 << 20;
constexpr uint16_t kReadWriteFlags = kTransHasFlags | kTransSendFlush | kTransSendFua | kTransSendTrim |
                                     kTransSendWriteZeroes | kTransCanMultiConn;  // 365
static_assert(kReadWriteFlags == 365);

class NbdProtocol : public ::testing::Test {
 protected:
  void serve(bool readOnly = false, NbdLimits limits = {}, BlockStatusSource blockStatus = {}) {
    device = std::make_unique<MemoryBlockDevice>(thread.loop(), kDeviceSize);
    NbdExport exported;
    exported.name = "disk";
    exported.description = "test disk";
    exported.device = device.get();
    exported.readOnly = readOnly;
    exported.blockStatus = std::move(blockStatus);
    server = std::make_unique<NbdServer>(thread.loop(), std::vector{exported}, limits);
    auto listening = server->listenUnix(socketPath);
    ASSERT_TRUE(listening) << listening.error().message;
    thread.start();
  }
  void TearDown() override {
    if (server) thread.call([&] { server->shutdown(); });
    thread.stop();
    for (int i = 0; server && !server->idle() && i < 1000; ++i) thread.loop().runOnce(10);
    if (server) {
      EXPECT_TRUE(server->idle());
    }
    server.reset();
    device.reset();
  }
  RawClient client() {
    auto connection = RawClient::connectUnix(socketPath);
    EXPECT_TRUE(connection.connected());
    return connection;
  }
  size_t connections() {
    return thread.call([&] { return server->connectionCount(); });
  }
  // Waits until the server has dropped every client (it notices closes asynchronously).
  bool waitForNoClients() {
    for (int i = 0; i < 500; ++i) {
      if (connections() == 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  // A fresh client can still negotiate and read: the server survived whatever came before.
  void expectServerHealthy() {
    auto probe = client();
    ASSERT_EQ(probe.connectExport("disk"), kReadWriteFlags);
    uint32_t error;
    auto data = probe.read(77, 0, 512, error);
    EXPECT_EQ(error, 0u);
    EXPECT_EQ(data.size(), 512u);
  }

  TempDir dir;
  std::string socketPath = dir.file("nbd.sock");
  LoopThread thread;
  std::unique_ptr<MemoryBlockDevice> device;
  std::unique_ptr<NbdServer> server;
};

TEST_F(NbdProtocol, GreetingAdvertisesFixedNewstyleAndNoZeroes) {
  serve();
  auto c = client();
  std::vector<uint8_t> greeting;
  ASSERT_TRUE(c.receive(kHandshakeSize, greeting));
  std::string text(greeting.begin(), greeting.begin() + 16);
  EXPECT_EQ(text, "NBDMAGICIHAVEOPT");
  EXPECT_EQ(greeting[16], 0);
  EXPECT_EQ(greeting[17], 3);  // FIXED_NEWSTYLE | NO_ZEROES
}

TEST_F(NbdProtocol, UnknownClientFlagsDisconnect) {
  serve();
  auto c = client();
  c.handshake(0x80);
  EXPECT_TRUE(c.closedByServer());
  expectServerHealthy();
}

TEST_F(NbdProtocol, UnknownOptionGetsErrUnsupAndHagglingContinues) {
  serve();
  auto c = client();
  c.handshake();
  auto replies = c.option(99, {1, 2, 3, 4, 5});
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].option, 99u);
  EXPECT_EQ(replies[0].type, kRepErrUnsup);
  EXPECT_EQ(c.option(kOptStartTls, {}).back().type, kRepErrPolicy);  // no TLS configured
  EXPECT_EQ(c.option(kOptGo, RawClient::goData("disk")).back().type, kRepAck);
}

TEST_F(NbdProtocol, ListNamesTheExportWithItsDescription) {
  serve();
  auto c = client();
  c.handshake();
  auto replies = c.option(kOptList, {});
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[0].type, kRepServer);
  ASSERT_EQ(replies[0].data.size(), 4u + 4 + 9);
  EXPECT_EQ(loadBe32(replies[0].data.data()), 4u);
  EXPECT_EQ(std::string(replies[0].data.begin() + 4, replies[0].data.end()), "disktest disk");
  EXPECT_EQ(replies[1].type, kRepAck);
  EXPECT_EQ(c.option(kOptList, {0}).back().type, kRepErrInvalid);  // LIST takes no data
}

TEST_F(NbdProtocol, InfoReportsSizeFlagsBlockSizesNameAndDescription) {
  serve();
  auto c = client();
  c.handshake();
  auto replies = c.option(kOptInfo, RawClient::goData("disk", {kInfoName, kInfoDescription, kInfoBlockSize}));
  ASSERT_EQ(replies.size(), 5u);
  EXPECT_EQ(replies[0].type, kRepInfo);
  ASSERT_EQ(replies[0].data.size(), 12u);
  EXPECT_EQ(loadBe16(replies[0].data.data()), kInfoExport);
  EXPECT_EQ(loadBe64(replies[0].data.data() + 2), kDeviceSize);
  EXPECT_EQ(loadBe16(replies[0].data.data() + 10), kReadWriteFlags);
  ASSERT_EQ(replies[1].data.size(), 14u);
  EXPECT_EQ(loadBe16(replies[1].data.data()), kInfoBlockSize);
  EXPECT_EQ(loadBe32(replies[1].data.data() + 2), 1u);
  EXPECT_EQ(loadBe32(replies[1].data.data() + 6), 4096u);
  EXPECT_EQ(loadBe32(replies[1].data.data() + 10), 32u << 20);
  EXPECT_EQ(std::string(replies[2].data.begin() + 2, replies[2].data.end()), "disk");
  EXPECT_EQ(std::string(replies[3].data.begin() + 2, replies[3].data.end()), "test disk");
  EXPECT_EQ(replies[4].type, kRepAck);

  // The default export "" is the first export.
  EXPECT_EQ(c.option(kOptInfo, RawClient::goData("")).back().type, kRepAck);
  // Errors do not end haggling.
  auto unknown = c.option(kOptGo, RawClient::goData("nope"));
  ASSERT_EQ(unknown.size(), 1u);
  EXPECT_EQ(unknown[0].type, kRepErrUnknown);
  EXPECT_NE(std::string(unknown[0].data.begin(), unknown[0].data.end()).find("no export named 'nope'"),
            std::string::npos);
  std::vector<uint8_t> lying;  // name length past the end of the data
  WireWriter(lying).u32(1000).bytes("disk").u16(0);
  EXPECT_EQ(c.option(kOptGo, lying).back().type, kRepErrInvalid);
  auto trailing = RawClient::goData("disk");
  trailing.push_back(0);
  EXPECT_EQ(c.option(kOptGo, trailing).back().type, kRepErrInvalid);
  std::vector<uint8_t> infoCountTooLarge;
  WireWriter(infoCountTooLarge).u32(4).bytes("disk").u16(3).u16(kInfoName);
  EXPECT_EQ(c.option(kOptGo, infoCountTooLarge).back().type, kRepErrInvalid);
  EXPECT_EQ(c.option(kOptGo, RawClient::goData("disk")).back().type, kRepAck);
  uint32_t error;
  c.read(1, 0, 16, error);
  EXPECT_EQ(error, 0u);
}

TEST_F(NbdProtocol, ExportNameWithAndWithoutZeroes) {
  serve();
  for (bool noZeroes : {true, false}) {
    auto c = client();
    c.handshake(kClientFlagFixedNewstyle | (noZeroes ? kClientFlagNoZeroes : 0));
    ASSERT_TRUE(c.sendOption(kOptExportName, {'d', 'i', 's', 'k'}));
    std::vector<uint8_t> reply;
    ASSERT_TRUE(c.receive(noZeroes ? 10 : 134, reply));
    EXPECT_EQ(loadBe64(reply.data()), kDeviceSize);
    EXPECT_EQ(loadBe16(reply.data() + 8), kReadWriteFlags);
    EXPECT_TRUE(c.quiet());  // nothing more: exactly 10 or 134 bytes
    EXPECT_EQ(c.write(5, 4096, pattern(100, 1)), 0u);
  }
}

TEST_F(NbdProtocol, ExportNameOfUnknownExportDisconnects) {
  serve();
  auto c = client();
  c.handshake();
  ASSERT_TRUE(c.sendOption(kOptExportName, {'x'}));
  EXPECT_TRUE(c.closedByServer());
}

TEST_F(NbdProtocol, OldNewstyleClientMayOnlyUseExportName) {
  serve();
  auto plain = client();
  plain.handshake(0);
  ASSERT_TRUE(plain.sendOption(kOptExportName, {}));
  std::vector<uint8_t> reply;
  ASSERT_TRUE(plain.receive(134, reply));
  EXPECT_EQ(loadBe64(reply.data()), kDeviceSize);

  auto other = client();
  other.handshake(0);
  ASSERT_TRUE(other.sendOption(kOptList, {}));
  EXPECT_TRUE(other.closedByServer());
}

TEST_F(NbdProtocol, WriteReadFlushTrimWriteZeroesWithSimpleReplies) {
  serve();
  auto c = client();
  ASSERT_EQ(c.connectExport("disk"), kReadWriteFlags);
  auto data = pattern(8192, 7);
  EXPECT_EQ(c.write(1, 12345, data), 0u);
  uint32_t error;
  EXPECT_EQ(c.read(2, 12345, 8192, error), data);
  EXPECT_EQ(error, 0u);
  EXPECT_EQ(c.command(kCmdFlush, 3, 0, 0), 0u);
  EXPECT_EQ(c.command(kCmdTrim, 4, 12345, 100), 0u);
  EXPECT_EQ(c.command(kCmdWriteZeroes, 5, 12445 + 100, 50), 0u);
  auto expected = data;
  std::fill(expected.begin(), expected.begin() + 100, 0);
  std::fill(expected.begin() + 200, expected.begin() + 250, 0);
  EXPECT_EQ(c.read(6, 12345, 8192, error), expected);
  auto stored = thread.call([&] { return std::vector<uint8_t>(device->bytes().begin() + 12345,
                                                               device->bytes().begin() + 12345 + 8192); });
  EXPECT_EQ(stored, expected);
  EXPECT_EQ(thread.call([&] { return device->flushes; }), 1u);
}

TEST_F(NbdProtocol, FuaWriteIsFlushedBeforeItsReply) {
  serve();
  auto c = client();
  ASSERT_EQ(c.connectExport("disk"), kReadWriteFlags);
  EXPECT_EQ(c.write(1, 0, pattern(512, 1)), 0u);
  EXPECT_EQ(thread.call([&] { return device->flushes; }), 0u);
  EXPECT_EQ(c.write(2, 0, pattern(512, 2), kCmdFlagFua), 0u);
  EXPECT_EQ(thread.call([&] { return device->flushes; }), 1u);
  EXPECT_EQ(c.command(kCmdWriteZeroes, 3, 0, 512, kCmdFlagFua), 0u);
  EXPECT_EQ(thread.call([&] { return device->flushes; }), 2u);
}

TEST_F(NbdProtocol, StructuredReadsAndErrorMessages) {
  serve();
  auto c = client();
  ASSERT_EQ(c.connectExport("disk", true), kReadWriteFlags | kTransSendDf);
  auto data = pattern(4096, 3);
  EXPECT_EQ(c.write(1, 65536, data), 0u);
  ASSERT_TRUE(c.request(kCmdRead, 2, 65536, 4096));
  Reply reply;
  ASSERT_TRUE(c.readReply(reply));
  EXPECT_TRUE(reply.structured);
  EXPECT_EQ(reply.type, kReplyTypeOffsetData);
  EXPECT_EQ(reply.flags, kReplyFlagDone);
  EXPECT_EQ(reply.handle, 2u);
  ASSERT_EQ(reply.payload.size(), 8u + 4096);
  EXPECT_EQ(loadBe64(reply.payload.data()), 65536u);
  EXPECT_TRUE(std::equal(data.begin(), data.end(), reply.payload.begin() + 8));

  ASSERT_TRUE(c.request(kCmdRead, 3, kDeviceSize - 10, 20));
  ASSERT_TRUE(c.readReply(reply));
  EXPECT_EQ(reply.type, kReplyTypeError);
  EXPECT_EQ(reply.flags, kReplyFlagDone);
  EXPECT_EQ(reply.error, kErrInval);
  EXPECT_NE(reply.message.find("past the end"), std::string::npos) << reply.message;
}

TEST_F(NbdProtocol, ReadOnlyExportRefusesWritesWithEperm) {
  serve(true);
  auto c = client();
  ASSERT_EQ(c.connectExport("disk"), kTransHasFlags | kTransReadOnly | kTransSendFlush | kTransCanMultiConn);
  EXPECT_EQ(c.write(1, 0, pattern(4096, 1)), kErrPerm);
  EXPECT_EQ(c.command(kCmdTrim, 2, 0, 4096), kErrPerm);
  EXPECT_EQ(c.command(kCmdWriteZeroes, 3, 0, 4096), kErrPerm);
  uint32_t error;
  EXPECT_EQ(c.read(4, 0, 4096, error), std::vector<uint8_t>(4096, 0));  // the refused payload was skipped
  EXPECT_EQ(error, 0u);
  EXPECT_EQ(thread.call([&] { return device->writes; }), 0u);
}

TEST_F(NbdProtocol, OversizedRequestsGetEoverflowWithoutLosingSync) {
  serve();
  auto c = client();
  ASSERT_EQ(c.connectExport("disk"), kReadWriteFlags);
  const uint32_t tooBig = (32u << 20) + 1;
  uint32_t error;
  c.read(1, 0, tooBig, error);
  EXPECT_EQ(error, kErrOverflow);
  // The payload of an oversized write is consumed without being stored anywhere.
  EXPECT_EQ(c.write(2, 0, std::vector<uint8_t>(tooBig, 0xAB)), kErrOverflow);
  EXPECT_EQ(c.read(3, 0, 16, error), std::vector<uint8_t>(16, 0));
  EXPECT_EQ(error, 0u);
  // A header that claims 4 GiB of write payload and then stops: the server waits for
  // the data without allocating it, and the client leaving ends the session.
  ASSERT_TRUE(c.request(kCmdWrite, 4, 0, 0xFFFFFFFFu));
  Reply reply;
  ASSERT_TRUE(c.readReply(reply));
  EXPECT_EQ(reply.error, kErrOverflow);
  c.close();
  EXPECT_TRUE(waitForNoClients());
  expectServerHealthy();
}

TEST_F(NbdProtocol, RequestsPastTheEnd) {
  serve();
  auto c = client();
  ASSERT_EQ(c.connectExport("disk"), kReadWriteFlags);
  uint32_t error;
  c.read(1, kDeviceSize - 511, 512, error);
  EXPECT_EQ(error, kErrInval);
  c.read(2, ~0ull - 10, 512, error);  // offset + length wraps around
  EXPECT_EQ(error, kErrInval);
  EXPECT_EQ(c.write(3, kDeviceSize, pattern(1, 1)), kErrNoSpc);
  EXPECT_EQ(c.write(4, ~0ull, pattern(2, 1)), kErrNoSpc);
  EXPECT_EQ(c.command(kCmdWriteZeroes, 5, kDeviceSize - 1, 2), kErrNoSpc);
  EXPECT_EQ(c.command(kCmdTrim, 6, kDeviceSize + 4096, 1), kErrInval);
  c.read(7, kDeviceSize - 512, 512, error);  // the last sector is fine
  EXPECT_EQ(error, 0u);
  c.read(8, 0, 0, error);
  EXPECT_EQ(error, kErrInval);
  EXPECT_EQ(thread.call([&] { return device->writes; }), 0u);
}

TEST_F(NbdProtocol, UnknownCommandsAndFlagsGetEinval) {
  serve();
  auto c = client();
  ASSERT_EQ(c.connectExport("disk"), kReadWriteFlags);
  EXPECT_EQ(c.command(42, 1, 0, 512), kErrInval);
  EXPECT_EQ(c.command(kCmdCache, 2, 0, 512), kErrInval);
  EXPECT_EQ(c.command(kCmdRead, 3, 0, 512, 0x8000), kErrInval);
  EXPECT_EQ(c.command(kCmdWriteZeroes, 4, 0, 512, kCmdFlagFastZero), kErrInval);  // not advertised
  EXPECT_EQ(c.command(kCmdBlockStatus, 5, 0, 512), kErrInval);  // no metadata context negotiated
  uint32_t error;
  c.read(6, 0, 512, error);
  EXPECT_EQ(error, 0u);
}

TEST_F(NbdProtocol, BadRequestMagicDisconnectsOnlyThatClient) {
  serve();
  auto good = client();
  ASSERT_EQ(good.connectExport("disk"), kReadWriteFlags);
  auto bad = client();
  ASSERT_EQ(bad.connectExport("disk"), kReadWriteFlags);
  ASSERT_TRUE(bad.send(std::vector<uint8_t>(28, 0x41)));
  EXPECT_TRUE(bad.closedByServer());
  EXPECT_EQ(good.write(1, 0, pattern(512, 9)), 0u);
}

TEST_F(NbdProtocol, BadOptionMagicDisconnects) {
  serve();
  auto c = client();
  c.handshake();
  ASSERT_TRUE(c.send(std::vector<uint8_t>(16, 0xFF)));
  EXPECT_TRUE(c.closedByServer());
}

TEST_F(NbdProtocol, OptionLengthTooLargeGetsErrTooBigThenDisconnect) {
  serve();
  auto c = client();
  c.handshake();
  std::vector<uint8_t> header;
  WireWriter(header).u64(kOptionMagic).u32(kOptGo).u32(0xFFFFFFF0u);
  ASSERT_TRUE(c.send(header));
  OptionReply reply;
  ASSERT_TRUE(c.readOptionReply(reply));
  EXPECT_EQ(reply.type, kRepErrTooBig);
  EXPECT_NE(std::string(reply.data.begin(), reply.data.end()).find("exceeds"), std::string::npos);
  EXPECT_TRUE(c.closedByServer());
  // An EXPORT_NAME that long cannot even be answered: just a disconnect.
  auto d = client();
  d.handshake();
  header.clear();
  WireWriter(header).u64(kOptionMagic).u32(kOptExportName).u32(1u << 20);
  ASSERT_TRUE(d.send(header));
  EXPECT_TRUE(d.closedByServer());
  expectServerHealthy();
}

TEST_F(NbdProtocol, TruncatedMessagesAndAbruptDisconnects) {
  serve();
  std::vector<std::vector<uint8_t>> prefixes;
  {
    std::vector<uint8_t> bytes;
    WireWriter(bytes).u32(kClientFlagFixedNewstyle).u64(kOptionMagic).u32(kOptGo);  // option header cut short
    prefixes.push_back(bytes);
    bytes.clear();
    WireWriter(bytes).u32(kClientFlagFixedNewstyle).u64(kOptionMagic).u32(kOptGo).u32(100).bytes("abc");
    prefixes.push_back(bytes);  // option data cut short
    prefixes.push_back({0x00, 0x00});  // client flags cut short
  }
  for (const auto& prefix : prefixes) {
    auto c = client();
    std::vector<uint8_t> greeting;
    ASSERT_TRUE(c.receive(kHandshakeSize, greeting));
    ASSERT_TRUE(c.send(prefix));
    c.close();
  }
  {  // a request header cut short, and a write whose payload stops halfway
    auto c = client();
    ASSERT_EQ(c.connectExport("disk"), kReadWriteFlags);
    ASSERT_TRUE(c.send({0x25, 0x60, 0x95}));
    c.close();
    auto d = client();
    ASSERT_EQ(d.connectExport("disk"), kReadWriteFlags);
    std::vector<uint8_t> bytes;
    WireWriter(bytes).u32(kRequestMagic).u16(0).u16(kCmdWrite).u64(1).u64(0).u32(65536);
    bytes.resize(bytes.size() + 1000, 0xEE);
    ASSERT_TRUE(d.send(bytes));
    d.close();
  }
  EXPECT_TRUE(waitForNoClients());
  EXPECT_EQ(thread.call([&] { return device->writes; }), 0u);
  expectServerHealthy();
}

TEST_F(NbdProtocol, ClientVanishingWithRequestsInFlight) {
  serve();
  thread.call([&] { device->holdCompletions = true; });
  auto c = client();
  ASSERT_EQ(c.connectExport("disk"), kReadWriteFlags);
  for (uint64_t handle = 0; handle < 8; ++handle) ASSERT_TRUE(c.request(kCmdRead, handle, handle * 4096, 4096));
  ASSERT_TRUE(c.request(kCmdWrite, 8, 0, 512, 0, pattern(512, 4)));
  for (int i = 0; i < 500 && thread.call([&] { return device->heldCount(); }) < 9; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(thread.call([&] { return device->heldCount(); }), 9u);
  c.close();
  EXPECT_TRUE(waitForNoClients());
  EXPECT_FALSE(thread.call([&] { return server->idle(); }));  // the device still holds the requests
  thread.call([&] {
    device->holdCompletions = false;
    device->releaseHeld();
  });
  EXPECT_TRUE(thread.call([&] { return server->idle(); }));
  expectServerHealthy();
}

TEST_F(NbdProtocol, RepliesFollowCompletionOrderWithTheirOwnHandles) {
  serve();
  auto c = client();
  ASSERT_EQ(c.connectExport("disk"), kReadWriteFlags);
  std::vector<std::vector<uint8_t>> blocks;
  for (uint32_t i = 0; i < 4; ++i) {
    blocks.push_back(pattern(1024, 100 + i));
    ASSERT_EQ(c.write(i, i * 1024, blocks.back()), 0u);
  }
  thread.call([&] { device->holdCompletions = true; });
  for (uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(c.request(kCmdRead, 0xABCD0000 + i, i * 1024, 1024));
  for (int i = 0; i < 500 && thread.call([&] { return device->heldCount(); }) < 4; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  thread.call([&] { device->releaseHeld({2, 0, 3, 1}); });
  for (uint64_t expected : {2, 0, 3, 1}) {
    Reply reply;
    ASSERT_TRUE(c.readReply(reply, 1024));
    EXPECT_EQ(reply.handle, 0xABCD0000 + expected);
    EXPECT_EQ(reply.error, 0u);
    EXPECT_EQ(reply.payload, blocks[expected]);
  }
  thread.call([&] { device->holdCompletions = false; });
}

TEST_F(NbdProtocol, ManyRequestsWithoutReadingRepliesAreBoundedAndAllAnswered) {
  NbdLimits limits;
  limits.maxInflightRequests = 4;
  limits.maxBufferedBytes = 256 * 1024;
  serve(false, limits);
  auto c = client();
  ASSERT_EQ(c.connectExport("disk"), kReadWriteFlags);
  ASSERT_EQ(c.write(1, 0, pattern(65536, 5)), 0u);
  // 300 reads of 64 KiB (19 MiB of replies): far more than the server may hold,
  // so it must stop reading requests while the client is not reading replies.
  std::thread sender([&] {
    for (uint64_t handle = 0; handle < 300; ++handle) c.request(kCmdRead, handle, 0, 65536);
  });
  struct JoinOnExit {
    std::thread& thread;
    RawClient& client;
    ~JoinOnExit() {
      ::shutdown(client.fd(), SHUT_RDWR);  // unblocks the sender if an assertion ended the test early
      thread.join();
    }
  } joinOnExit{sender, c};
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  // Another client is served meanwhile.
  auto other = client();
  ASSERT_EQ(other.connectExport("disk"), kReadWriteFlags);
  uint32_t error;
  other.read(1, 0, 512, error);
  EXPECT_EQ(error, 0u);
  auto expected = pattern(65536, 5);
  for (uint64_t handle = 0; handle < 300; ++handle) {
    Reply reply;
    ASSERT_TRUE(c.readReply(reply, 65536)) << handle;
    EXPECT_EQ(reply.handle, handle);
    ASSERT_EQ(reply.payload, expected);
  }
}

TEST_F(NbdProtocol, BlockStatusReportsBaseAllocation) {
  // First 64 KiB data, the next 64 KiB a zero hole, then data again, in 16 KiB answers.
  BlockStatusSource source = [](uint64_t offset, uint64_t length) -> Result<AllocationExtent> {
    uint64_t step = std::min<uint64_t>(length, 16384 - offset % 16384);
    bool hole = offset >= 65536 && offset < 131072;
    return AllocationExtent{step, hole ? (kStateHole | kStateZero) : 0u};
  };
  serve(false, {}, source);
  auto c = client();
  c.handshake();
  auto setWithout = c.option(kOptSetMetaContext, RawClient::metaData("disk", {"base:allocation"}));
  EXPECT_EQ(setWithout.back().type, kRepErrInvalid);  // needs structured replies first
  ASSERT_EQ(c.option(kOptStructuredReply, {}).back().type, kRepAck);
  auto list = c.option(kOptListMetaContext, RawClient::metaData("disk", {}));
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].type, kRepMetaContext);
  EXPECT_EQ(std::string(list[0].data.begin() + 4, list[0].data.end()), "base:allocation");
  auto none = c.option(kOptSetMetaContext, RawClient::metaData("disk", {"qemu:dirty-bitmap:x"}));
  ASSERT_EQ(none.size(), 1u);
  EXPECT_EQ(none[0].type, kRepAck);
  auto set = c.option(kOptSetMetaContext, RawClient::metaData("disk", {"base:allocation"}));
  ASSERT_EQ(set.size(), 2u);
  EXPECT_EQ(loadBe32(set[0].data.data()), kBaseAllocationId);
  EXPECT_EQ(c.option(kOptSetMetaContext, {0, 0, 0}).back().type, kRepErrInvalid);  // truncated
  ASSERT_EQ(c.option(kOptSetMetaContext, RawClient::metaData("disk", {"base:allocation"})).back().type, kRepAck);
  ASSERT_EQ(c.option(kOptGo, RawClient::goData("disk")).back().type, kRepAck);

  ASSERT_TRUE(c.request(kCmdBlockStatus, 9, 32768, 163840));
  Reply reply;
  ASSERT_TRUE(c.readReply(reply));
  EXPECT_EQ(reply.type, kReplyTypeBlockStatus);
  EXPECT_EQ(reply.flags, kReplyFlagDone);
  ASSERT_EQ(reply.payload.size(), 4u + 3 * 8);
  EXPECT_EQ(loadBe32(reply.payload.data()), kBaseAllocationId);
  uint32_t expected[3][2] = {{32768, 0}, {65536, kStateHole | kStateZero}, {65536, 0}};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(loadBe32(reply.payload.data() + 4 + 8 * i), expected[i][0]);
    EXPECT_EQ(loadBe32(reply.payload.data() + 8 + 8 * i), expected[i][1]);
  }
  ASSERT_TRUE(c.request(kCmdBlockStatus, 10, 0, 163840, kCmdFlagReqOne));
  ASSERT_TRUE(c.readReply(reply));
  ASSERT_EQ(reply.payload.size(), 12u);
  EXPECT_EQ(loadBe32(reply.payload.data() + 4), 65536u);
  ASSERT_TRUE(c.request(kCmdBlockStatus, 11, kDeviceSize, 1));
  ASSERT_TRUE(c.readReply(reply));
  EXPECT_EQ(reply.error, kErrInval);
}

TEST_F(NbdProtocol, DeviceErrorsBecomeEio) {
  serve();
  thread.call([&] {
    device->failOffset = 8192;
    device->failLength = 4096;
  });
  auto c = client();
  ASSERT_EQ(c.connectExport("disk", true), kReadWriteFlags | kTransSendDf);
  uint32_t error;
  c.read(1, 8192 + 100, 100, error);
  EXPECT_EQ(error, kErrIo);
  EXPECT_EQ(c.write(2, 4096, pattern(8192, 1)), kErrIo);
  c.read(3, 0, 4096, error);
  EXPECT_EQ(error, 0u);
}

TEST_F(NbdProtocol, DiscAnswersOutstandingRequestsThenCloses) {
  serve();
  auto c = client();
  ASSERT_EQ(c.connectExport("disk"), kReadWriteFlags);
  ASSERT_TRUE(c.request(kCmdWrite, 1, 0, 4, 0, {1, 2, 3, 4}));
  ASSERT_TRUE(c.request(kCmdDisc, 2, 0, 0));
  Reply reply;
  ASSERT_TRUE(c.readReply(reply));
  EXPECT_EQ(reply.handle, 1u);
  EXPECT_TRUE(c.closedByServer());
  EXPECT_EQ(thread.call([&] { return device->bytes()[3]; }), 4);
}

TEST_F(NbdProtocol, AbortIsAcknowledgedThenCloses) {
  serve();
  auto c = client();
  c.handshake();
  auto replies = c.option(kOptAbort, {});
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].type, kRepAck);
  EXPECT_TRUE(c.closedByServer());
}

TEST_F(NbdProtocol, ConnectionLimitRefusesExtraClients) {
  NbdLimits limits;
  limits.maxConnections = 2;
  serve(false, limits);
  auto a = client();
  auto b = client();
  a.handshake();
  b.handshake();
  auto c = client();
  EXPECT_TRUE(c.closedByServer());
  a.close();
  for (int i = 0; i < 500 && connections() != 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  expectServerHealthy();
}

TEST_F(NbdProtocol, RefusedClientGetsNoGreeting) {
  NbdLimits limits;
  limits.maxConnections = 1;
  serve(false, limits);
  auto a = client();
  ASSERT_EQ(a.connectExport("disk"), kReadWriteFlags);
  auto b = client();
  uint8_t byte;
  EXPECT_EQ(b.receiveSome(&byte, 1), 0);  // closed at once, before the greeting, not left waiting
  EXPECT_EQ(a.write(1, 0, pattern(512, 1)), 0u);  // the client served is undisturbed
}

// ---- handshake time limit ------------------------------------------------------

TEST_F(NbdProtocol, ClientsStallingInNegotiationAreDroppedAtTheHandshakeLimit) {
  NbdLimits limits;
  limits.handshakeLimit = std::chrono::seconds(1);
  serve(false, limits);
  // One client sends nothing at all; one stops after its flags; one in the middle of an option header.
  auto silent = client();
  auto flagsOnly = client();
  flagsOnly.handshake();
  auto partial = client();
  partial.handshake();
  std::vector<uint8_t> half;
  WireWriter(half).u64(kOptionMagic).u16(0);
  ASSERT_TRUE(partial.send(half));
  // Meanwhile a well-behaved client is served.
  auto good = client();
  ASSERT_EQ(good.connectExport("disk", true), kReadWriteFlags | kTransSendDf);
  good.setStructured(true);
  EXPECT_EQ(good.write(1, 4096, pattern(4096, 9)), 0u);
  EXPECT_TRUE(silent.closedByServer());
  EXPECT_TRUE(flagsOnly.closedByServer());
  EXPECT_TRUE(partial.closedByServer());
  // The limit covers negotiation only: a client in transmission stays however idle it is.
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  uint32_t error;
  EXPECT_EQ(good.read(2, 4096, 4096, error), pattern(4096, 9));
  EXPECT_EQ(error, 0u);
  EXPECT_EQ(connections(), 1u);
}

TEST_F(NbdProtocol, HandshakeLimitFreesTheSlotsStalledClientsHold) {
  NbdLimits limits;
  limits.maxConnections = 2;
  limits.handshakeLimit = std::chrono::seconds(1);
  serve(false, limits);
  auto a = client();
  auto b = client();
  a.handshake();
  b.handshake();
  EXPECT_TRUE(client().closedByServer());  // every slot taken
  // Without the limit the stalled pair would lock everyone out for good.
  EXPECT_TRUE(a.closedByServer());
  EXPECT_TRUE(b.closedByServer());
  EXPECT_TRUE(waitForNoClients());
  expectServerHealthy();
}

TEST_F(NbdProtocol, ClientThatKeepsHagglingIsDroppedAtTheHandshakeLimit) {
  NbdLimits limits;
  limits.handshakeLimit = std::chrono::seconds(1);
  serve(false, limits);
  // Valid options, answered, but never NBD_OPT_GO: activity does not extend the limit.
  auto c = client();
  c.handshake();
  bool dropped = false;
  for (int i = 0; i < 200 && !dropped; ++i) {
    auto replies = c.option(kOptList, {});
    dropped = replies.empty();
    if (!dropped) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(dropped);
  EXPECT_TRUE(waitForNoClients());
}

TEST_F(NbdProtocol, ConcurrentClientsEachSeeTheirOwnWrites) {
  serve();
  std::vector<std::thread> workers;
  std::atomic<int> failures{0};
  for (uint32_t id = 0; id < 4; ++id) {
    workers.emplace_back([&, id] {
      auto c = RawClient::connectUnix(socketPath);
      if (c.connectExport("disk", id % 2 == 0) == 0) {
        ++failures;
        return;
      }
      for (uint32_t round = 0; round < 20; ++round) {
        auto data = pattern(4096, id * 100 + round);
        uint64_t offset = id * 65536 + round * 4096;
        uint32_t error;
        if (c.write(round, offset, data) != 0 || c.read(1000 + round, offset, 4096, error) != data || error != 0) {
          ++failures;
        }
      }
    });
  }
  for (auto& worker : workers) worker.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace strata::storage::nbd
