#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <vector>

#include "virtio/net.h"
#include "network/packet_port.h"
#include "virtio_test_driver.h"
#include "../network/tcp_packets.h"

namespace strata::virtio::testing {
namespace {

class TestPort : public PacketPort {
 public:
  void send(std::span<const uint8_t> frame, const FrameOffload& offload) override {
    sent.emplace_back(frame.begin(), frame.end());
    offloads.push_back(offload);
  }
  OffloadCaps acceptedOffloads() const override { return accepts; }
  void setReceiveHandler(ReceiveHandler h) override { handler = std::move(h); }
  void setReceiveEnabled(bool enabled) override { receiveEnabled = enabled; }
  void deliver(const std::vector<uint8_t>& frame, const FrameOffload& offload = {}) { handler(frame, offload); }

  std::vector<std::vector<uint8_t>> sent;
  std::vector<FrameOffload> offloads;
  OffloadCaps accepts;
  ReceiveHandler handler;
  bool receiveEnabled = true;
};

constexpr std::array<uint8_t, 6> kMac{0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

std::vector<uint8_t> frameOf(size_t len, uint8_t seed) {
  std::vector<uint8_t> f(len);
  for (size_t i = 0; i < len; ++i) f[i] = static_cast<uint8_t>(seed ^ i);
  return f;
}

class VirtioNetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    d.attach(net);
    d.start(featureBit(net::kFeatureMac) | featureBit(net::kFeatureStatus), {16, 16});
  }
  TestPort port;
  TestDriver d;
  VirtioNet net{port, kMac};
};

TEST_F(VirtioNetTest, ConfigSpaceHasMacAndLinkUp) {
  EXPECT_EQ(d.reg(mmio::kDeviceId), 1u);
  for (unsigned i = 0; i < 6; ++i) EXPECT_EQ(d.transport().read(mmio::kConfig + i, 1), kMac[i]);
  EXPECT_EQ(d.transport().read(mmio::kConfig + 6, 2), net::kStatusLinkUp);
  uint64_t f = d.deviceFeatures();
  EXPECT_TRUE(f & featureBit(net::kFeatureMac));
  EXPECT_TRUE(f & featureBit(net::kFeatureStatus));
}

TEST_F(VirtioNetTest, TransmitStripsHeader) {
  auto frame = frameOf(60, 0x33);
  std::vector<uint8_t> header(net::kHeaderBytes, 0);
  d.fill(kDataArea, header.data(), header.size());
  d.fill(kDataArea + 0x100, frame.data(), frame.size());
  // Header and frame in separate descriptors, as Linux does without ANY_LAYOUT tricks.
  d.addChain(1, {{kDataArea, 12, false}, {kDataArea + 0x100, 60, false}});
  // And a second frame with header and payload in one descriptor.
  auto frame2 = frameOf(42, 0x77);
  d.fill(kDataArea + 0x200, header.data(), header.size());
  d.fill(kDataArea + 0x200 + 12, frame2.data(), frame2.size());
  d.addChain(1, {{kDataArea + 0x200, 54, false}});
  d.kick(1);
  ASSERT_TRUE(d.waitUsed(1, 2));
  ASSERT_EQ(port.sent.size(), 2u);
  EXPECT_EQ(port.sent[0], frame);
  EXPECT_EQ(port.sent[1], frame2);
  EXPECT_EQ(net.counters().txFrames, 2u);
}

TEST_F(VirtioNetTest, TransmitWithoutFullHeaderIsDropped) {
  d.addChain(1, {{kDataArea, 8, false}});
  d.kick(1);
  ASSERT_TRUE(d.waitUsed(1, 1));
  EXPECT_TRUE(port.sent.empty());
  EXPECT_EQ(net.counters().txDropped, 1u);
}

TEST_F(VirtioNetTest, ReceivedFrameLandsWithPlainHeader) {
  std::memset(d.host(kDataArea, 2048), 0xcc, 2048);
  uint16_t head = d.addChain(0, {{kDataArea, 1526, true}});
  d.kick(0);
  d.runLoopBriefly();
  auto frame = frameOf(98, 0x5a);
  port.deliver(frame);
  ASSERT_EQ(d.usedIdx(0), 1);
  EXPECT_EQ(d.used(0, 0).id, head);
  EXPECT_EQ(d.used(0, 0).len, 12u + 98u);
  // flags, gso_type, hdr_len, gso_size, csum_start, csum_offset all zero; num_buffers = 1.
  const uint8_t expectedHeader[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0};
  EXPECT_EQ(std::memcmp(d.host(kDataArea, 12), expectedHeader, 12), 0);
  EXPECT_EQ(std::memcmp(d.host(kDataArea + 12, 98), frame.data(), 98), 0);
  EXPECT_EQ(*d.host(kDataArea + 110, 1), 0xcc);
  EXPECT_TRUE(d.irq().level);
}

TEST_F(VirtioNetTest, FramesWaitForBuffersInOrder) {
  port.deliver(frameOf(60, 1));
  port.deliver(frameOf(70, 2));
  EXPECT_EQ(d.usedIdx(0), 0);
  d.addChain(0, {{kDataArea, 1526, true}});
  d.addChain(0, {{kDataArea + 0x1000, 1526, true}});
  d.kick(0);
  ASSERT_TRUE(d.waitUsed(0, 2));
  EXPECT_EQ(d.used(0, 0).len, 72u);
  EXPECT_EQ(d.used(0, 1).len, 82u);
  EXPECT_EQ(std::memcmp(d.host(kDataArea + 0x1000 + 12, 70), frameOf(70, 2).data(), 70), 0);
}

TEST_F(VirtioNetTest, FullBacklogPausesThePort) {
  for (size_t i = 0; i < net::kBacklogFrames; ++i) port.deliver(frameOf(60, static_cast<uint8_t>(i)));
  EXPECT_FALSE(port.receiveEnabled);
  port.deliver(frameOf(60, 0));  // a port that ignores the pause loses frames
  EXPECT_EQ(net.counters().rxDropped, 1u);
  for (int i = 0; i < 16; ++i) d.addChain(0, {{kDataArea + 0x1000ull * i, 1526, true}});
  d.kick(0);
  ASSERT_TRUE(d.waitUsed(0, 16));
  EXPECT_FALSE(port.receiveEnabled);  // 240 still waiting: above the resume mark
}

// A reboot destroys the device, maybe with the port paused; the port is the VM's and
// the next boot's device must get frames from it.
TEST(VirtioNetPort, APortPausedByADestroyedDeviceReceivesAgain) {
  TestPort port;
  {
    TestDriver driver;
    VirtioNet device{port, kMac};
    driver.attach(device);
    driver.start(featureBit(net::kFeatureMac) | featureBit(net::kFeatureStatus), {16, 16});
    for (size_t i = 0; i < net::kBacklogFrames; ++i) port.deliver(frameOf(60, static_cast<uint8_t>(i)));
    ASSERT_FALSE(port.receiveEnabled);
  }
  EXPECT_TRUE(port.receiveEnabled);
  EXPECT_FALSE(port.handler);
  VirtioNet next{port, kMac};
  EXPECT_TRUE(port.handler);
}

TEST_F(VirtioNetTest, FrameTooBigForBufferIsDroppedAndBufferKept) {
  d.addChain(0, {{kDataArea, 64, true}});
  d.kick(0);
  d.runLoopBriefly();
  port.deliver(frameOf(100, 1));  // 12 + 100 > 64
  EXPECT_EQ(d.usedIdx(0), 0);
  EXPECT_EQ(net.counters().rxDropped, 1u);
  port.deliver(frameOf(40, 2));
  ASSERT_EQ(d.usedIdx(0), 1);
  EXPECT_EQ(d.used(0, 0).len, 52u);
}

TEST(VirtioNetInactive, FramesBeforeActivationAreDropped) {
  TestPort port;
  TestDriver d;
  VirtioNet net(port, kMac);
  d.attach(net);
  port.deliver(frameOf(60, 1));
  EXPECT_EQ(net.counters().rxDropped, 1u);
}

}  // namespace
}  // namespace strata::virtio::testing

namespace strata::virtio::testing {
namespace {

TEST(MacAddress, ParsesAndFormats) {
  auto mac = net::parseMacAddress("52:54:00:AB:cd:0f");
  ASSERT_TRUE(mac.ok()) << mac.error().message;
  EXPECT_EQ(*mac, (net::MacAddress{0x52, 0x54, 0x00, 0xab, 0xcd, 0x0f}));
  EXPECT_EQ(network::formatMac(*mac), "52:54:00:ab:cd:0f");
  EXPECT_TRUE(net::parseMacAddress("02-00-00-00-00-01").ok());
}

TEST(MacAddress, RejectsMalformedAndMulticast) {
  EXPECT_FALSE(net::parseMacAddress("52:54:00:ab:cd").ok());
  EXPECT_FALSE(net::parseMacAddress("52:54:00:ab:cd:0g").ok());
  EXPECT_FALSE(net::parseMacAddress("52:54:00:ab:cd:0f:").ok());
  EXPECT_FALSE(net::parseMacAddress("5254.00ab.cd0f.00").ok());
  auto multicast = net::parseMacAddress("01:00:5e:00:00:01");
  ASSERT_FALSE(multicast.ok());
  EXPECT_NE(multicast.error().message.find("multicast"), std::string::npos);
}

TEST(MacAddress, DefaultsAreDistinctUnicast) {
  EXPECT_EQ(network::formatMac(net::defaultMacAddress(0)), "52:54:00:12:34:56");
  EXPECT_EQ(network::formatMac(net::defaultMacAddress(1)), "52:54:00:12:34:57");
  EXPECT_EQ(net::defaultMacAddress(0)[0] & 1, 0);
}


// ------------------------------------------------------------ offloads

using network::testing::checksumOffload;
using network::testing::tcpChecksumVerifies;
using network::testing::tcpFrame;
using network::testing::tsoOffload;

constexpr uint64_t kOffloadFeatures =
    featureBit(net::kFeatureChecksum) | featureBit(net::kFeatureGuestChecksum) | featureBit(net::kFeatureGuestTso4) |
    featureBit(net::kFeatureGuestTso6) | featureBit(net::kFeatureHostTso4) | featureBit(net::kFeatureHostTso6);

class VirtioNetOffloadTest : public ::testing::Test {
 protected:
  void start(uint64_t features) {
    d.attach(net);
    d.start(featureBit(net::kFeatureMac) | features, {64, 64});
  }
  // Puts header + frame in the TX queue as one chain and waits for it to be consumed.
  void transmit(const std::vector<uint8_t>& header, const std::vector<uint8_t>& frame) {
    d.fill(kDataArea, header.data(), header.size());
    d.fill(kDataArea + 0x100, frame.data(), frame.size());
    d.addChain(1, {{kDataArea, static_cast<uint32_t>(header.size()), false},
                   {kDataArea + 0x100, static_cast<uint32_t>(frame.size()), false}});
    d.kick(1);
    ASSERT_TRUE(d.waitUsed(1, ++txDone));
  }
  static std::vector<uint8_t> header(const FrameOffload& offload) {
    std::vector<uint8_t> h(net::kHeaderBytes, 0);
    network::encodeVirtioNetHeader(offload, std::span<uint8_t, network::kVirtioNetHeaderBytes>(h.data(), 10));
    return h;
  }
  TestPort port;
  TestDriver d;
  VirtioNet net{port, kMac};
  uint16_t txDone = 0;
};

TEST_F(VirtioNetOffloadTest, OffersChecksumTsoAndMergedBuffers) {
  start(0);
  uint64_t f = d.deviceFeatures();
  EXPECT_EQ(f & kOffloadFeatures, kOffloadFeatures);
  EXPECT_TRUE(f & featureBit(net::kFeatureMergeRxBuffers));
}

TEST_F(VirtioNetOffloadTest, TsoFrameLeavesWithItsOffloadWhereThePortTakesIt) {
  start(kOffloadFeatures);
  port.accepts = OffloadCaps::all();
  auto frame = tcpFrame(false, 30000);
  transmit(header(tsoOffload(false, 1448)), frame);
  ASSERT_EQ(port.sent.size(), 1u);
  EXPECT_EQ(port.sent[0], frame);
  EXPECT_EQ(port.offloads[0], tsoOffload(false, 1448));
}

TEST_F(VirtioNetOffloadTest, TsoFrameIsSegmentedForAPortThatTakesOnlyPlainFrames) {
  start(kOffloadFeatures);
  transmit(header(tsoOffload(true, 1400)), tcpFrame(true, 4000));
  ASSERT_EQ(port.sent.size(), 3u);
  for (const auto& segment : port.sent) EXPECT_TRUE(tcpChecksumVerifies(segment));
  EXPECT_EQ(net.counters().txFrames, 1u);
}

TEST_F(VirtioNetOffloadTest, HostileTransmitHeadersAreDroppedAndCounted) {
  start(kOffloadFeatures);
  auto frame = tcpFrame(false, 100);
  FrameOffload pastEnd = checksumOffload(false);
  pastEnd.checksumOffset = 0xfff0;
  transmit(header(pastEnd), frame);
  transmit({1, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, frame);  // unknown gso_type
  auto notTcp = tcpFrame(false, 5000);
  notTcp[14 + 9] = 17;
  transmit(header(tsoOffload(false, 1000)), notTcp);  // the plain port makes the device segment it
  EXPECT_TRUE(port.sent.empty());
  EXPECT_EQ(net.counters().txDropped, 3u);
  EXPECT_FALSE(d.needsReset());
  transmit(header(checksumOffload(false)), frame);  // still working
  EXPECT_EQ(port.sent.size(), 1u);
}

TEST_F(VirtioNetOffloadTest, OffloadsTheDriverDidNotNegotiateAreRefused) {
  start(featureBit(net::kFeatureChecksum));  // checksum yes, TSO no
  transmit(header(tsoOffload(false, 1448)), tcpFrame(false, 3000));
  EXPECT_TRUE(port.sent.empty());
  EXPECT_EQ(net.counters().txDropped, 1u);
}

TEST_F(VirtioNetOffloadTest, GuestWithOffloadsReceivesTheTsoFrameWhole) {
  start(kOffloadFeatures);
  d.addChain(0, {{kDataArea, 65562, true}});
  d.kick(0);
  d.runLoopBriefly();
  auto frame = tcpFrame(false, 20000);
  port.deliver(frame, tsoOffload(false, 1448));
  ASSERT_EQ(d.usedIdx(0), 1);
  EXPECT_EQ(d.used(0, 0).len, 12 + frame.size());
  EXPECT_EQ(std::memcmp(d.host(kDataArea, 10), header(tsoOffload(false, 1448)).data(), 10), 0);
  EXPECT_EQ(std::memcmp(d.host(kDataArea + 12, frame.size()), frame.data(), frame.size()), 0);
}

TEST_F(VirtioNetOffloadTest, GuestWithoutOffloadsGetsSegmentsWithChecksums) {
  start(0);
  for (int i = 0; i < 4; ++i) d.addChain(0, {{kDataArea + 0x1000ull * i, 1526, true}});
  d.kick(0);
  d.runLoopBriefly();
  port.deliver(tcpFrame(false, 4000), tsoOffload(false, 1448));
  ASSERT_EQ(d.usedIdx(0), 3);
  for (uint16_t i = 0; i < 3; ++i) {
    uint32_t len = d.used(0, i).len;
    const uint8_t* data = d.host(kDataArea + 0x1000ull * i, len);
    EXPECT_EQ(data[0], 0) << "no NEEDS_CSUM for a driver that did not negotiate GUEST_CSUM";
    EXPECT_TRUE(tcpChecksumVerifies(std::vector<uint8_t>(data + 12, data + len)));
  }
}

TEST_F(VirtioNetOffloadTest, MergedBuffersCarryALargeFrameAcrossSeveralChains) {
  start(kOffloadFeatures | featureBit(net::kFeatureMergeRxBuffers));
  for (int i = 0; i < 8; ++i) d.addChain(0, {{kDataArea + 0x1000ull * i, 1536, true}});
  d.kick(0);
  d.runLoopBriefly();
  auto frame = tcpFrame(false, 4000);  // 4054 bytes + 12: three 1536-byte buffers
  port.deliver(frame, checksumOffload(false));
  ASSERT_EQ(d.usedIdx(0), 3);
  EXPECT_EQ(d.used(0, 0).len, 1536u);
  EXPECT_EQ(d.used(0, 1).len, 1536u);
  EXPECT_EQ(d.used(0, 2).len, 12 + frame.size() - 2 * 1536);
  uint16_t numBuffers;
  std::memcpy(&numBuffers, d.host(kDataArea + 10, 2), 2);
  EXPECT_EQ(numBuffers, 3);
  EXPECT_EQ(*d.host(kDataArea, 1), 1) << "NEEDS_CSUM passed through";
  std::vector<uint8_t> got(d.host(kDataArea + 12, 1536 - 12), d.host(kDataArea + 12, 1536 - 12) + 1536 - 12);
  for (int i = 1; i < 3; ++i) {
    const uint8_t* part = d.host(kDataArea + 0x1000ull * i, d.used(0, static_cast<uint16_t>(i)).len);
    got.insert(got.end(), part, part + d.used(0, static_cast<uint16_t>(i)).len);
  }
  EXPECT_EQ(got, frame);
}

TEST_F(VirtioNetOffloadTest, MergedFrameWaitsUntilEnoughBuffersArePosted) {
  start(featureBit(net::kFeatureMergeRxBuffers));
  d.addChain(0, {{kDataArea, 1536, true}});
  d.kick(0);
  d.runLoopBriefly();
  port.deliver(frameOf(3000, 1));
  EXPECT_EQ(d.usedIdx(0), 0) << "one buffer is not enough: it stays posted";
  d.addChain(0, {{kDataArea + 0x1000, 1536, true}});
  d.kick(0);
  ASSERT_TRUE(d.waitUsed(0, 2));
  EXPECT_EQ(d.used(0, 0).len + d.used(0, 1).len, 3012u);
  EXPECT_EQ(net.counters().rxDropped, 0u);
}

}  // namespace
}  // namespace strata::virtio::testing
