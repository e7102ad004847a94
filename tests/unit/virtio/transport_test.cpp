// The virtio-mmio register interface as a driver sees it, exercised through a VirtioRng.
#include <gtest/gtest.h>

#include "virtio/rng.h"
#include "virtio_test_driver.h"

namespace strata::virtio::testing {
namespace {

TEST(VirtioMmioTransport, IdentifiesAsVersion2Device) {
  TestDriver d;
  VirtioRng rng;
  d.attach(rng);
  EXPECT_EQ(d.reg(mmio::kMagicValue), 0x74726976u);
  EXPECT_EQ(d.reg(mmio::kVersion), 2u);
  EXPECT_EQ(d.reg(mmio::kDeviceId), 4u);
  EXPECT_EQ(d.reg(mmio::kVendorId), mmio::kStrataVendorId);
  // Non-32-bit register accesses are ignored and read as 0.
  EXPECT_EQ(d.transport().read(mmio::kMagicValue, 2), 0u);
}

TEST(VirtioMmioTransport, OffersVersion1AndTransportFeatures) {
  TestDriver d;
  VirtioRng rng;
  d.attach(rng);
  uint64_t features = d.deviceFeatures();
  EXPECT_EQ(features, featureBit(kFeatureVersion1) | featureBit(kFeatureEventIdx) | featureBit(kFeatureIndirectDesc));
  d.setReg(mmio::kDeviceFeaturesSel, 2);
  EXPECT_EQ(d.reg(mmio::kDeviceFeatures), 0u);
}

TEST(VirtioMmioTransport, TransportOptionsWithdrawOptionalFeatures) {
  TestDriver d;
  VirtioRng rng;
  d.attach(rng, {.offerEventIdx = false, .offerIndirectDescriptors = false});
  EXPECT_EQ(d.deviceFeatures(), featureBit(kFeatureVersion1));
}

TEST(VirtioMmioTransport, RejectsLegacyDriverWithoutVersion1) {
  TestDriver d;
  VirtioRng rng;
  d.attach(rng);
  EXPECT_FALSE(d.negotiate(0));
  EXPECT_EQ(d.reg(mmio::kStatus), kStatusAcknowledge | kStatusDriver);
}

TEST(VirtioMmioTransport, RejectsFeaturesNotOffered) {
  TestDriver d;
  VirtioRng rng;
  d.attach(rng);
  EXPECT_FALSE(d.negotiate(featureBit(kFeatureVersion1) | featureBit(5)));
  EXPECT_TRUE(d.negotiate(featureBit(kFeatureVersion1)));
}

TEST(VirtioMmioTransport, FeaturesAreFrozenAfterFeaturesOk) {
  TestDriver d;
  VirtioRng rng;
  d.attach(rng);
  ASSERT_TRUE(d.negotiate(featureBit(kFeatureVersion1)));
  d.setReg(mmio::kDriverFeaturesSel, 1);
  d.setReg(mmio::kDriverFeatures, 0);  // would drop VERSION_1: must be ignored
  d.setupQueue(0, 8);
  d.driverOk();
  EXPECT_EQ(d.reg(mmio::kStatus) & kStatusDeviceNeedsReset, 0u);
  EXPECT_TRUE(d.reg(mmio::kStatus) & kStatusDriverOk);
}

TEST(VirtioMmioTransport, QueueRegisters) {
  TestDriver d;
  VirtioRng rng;
  d.attach(rng);
  d.setReg(mmio::kQueueSel, 0);
  EXPECT_EQ(d.reg(mmio::kQueueNumMax), 256u);
  d.setReg(mmio::kQueueSel, 1);  // rng has a single queue
  EXPECT_EQ(d.reg(mmio::kQueueNumMax), 0u);
  d.setReg(mmio::kQueueSel, 0);
  d.setReg(mmio::kQueueNum, 64);
  d.setReg(mmio::kQueueDescLow, 0x1000);
  d.setReg(mmio::kQueueDescHigh, 0x2);
  EXPECT_EQ(d.reg(mmio::kQueueNum), 64u);
  EXPECT_EQ(d.reg(mmio::kQueueDescLow), 0x1000u);
  EXPECT_EQ(d.reg(mmio::kQueueDescHigh), 0x2u);
  d.setReg(mmio::kQueueReady, 1);
  EXPECT_EQ(d.reg(mmio::kQueueReady), 1u);
  d.setReg(mmio::kQueueNum, 32);  // a live queue's layout cannot change
  EXPECT_EQ(d.reg(mmio::kQueueNum), 64u);
  // No shared memory regions.
  EXPECT_EQ(d.reg(mmio::kShmLenLow), 0xffffffffu);
}

TEST(VirtioMmioTransport, ResetClearsRegisters) {
  TestDriver d;
  VirtioRng rng;
  d.attach(rng);
  d.start(0, {8});
  EXPECT_EQ(d.reg(mmio::kStatus),
            kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
  d.setReg(mmio::kStatus, 0);
  EXPECT_EQ(d.reg(mmio::kStatus), 0u);
  d.setReg(mmio::kQueueSel, 0);
  EXPECT_EQ(d.reg(mmio::kQueueReady), 0u);
  EXPECT_EQ(d.reg(mmio::kQueueNum), 0u);
}

TEST(VirtioMmioTransport, UsedBufferInterruptAndAck) {
  TestDriver d;
  VirtioRng rng;
  d.attach(rng);
  d.start(0, {8});
  d.addChain(0, {{kDataArea, 16, true}});
  d.kick(0);
  ASSERT_TRUE(d.waitUsed(0, 1));
  EXPECT_TRUE(d.irq().level);
  EXPECT_EQ(d.reg(mmio::kInterruptStatus), kInterruptUsedBuffer);
  d.setReg(mmio::kInterruptAck, kInterruptUsedBuffer);
  EXPECT_FALSE(d.irq().level);
  EXPECT_EQ(d.reg(mmio::kInterruptStatus), 0u);
}

TEST(VirtioMmioTransport, NotifyBeforeDriverOkIsIgnored) {
  TestDriver d;
  VirtioRng rng;
  d.attach(rng);
  ASSERT_TRUE(d.negotiate(featureBit(kFeatureVersion1)));
  d.setupQueue(0, 8);
  d.addChain(0, {{kDataArea, 16, true}});
  d.kick(0);
  d.runLoopBriefly();
  EXPECT_EQ(d.usedIdx(0), 0);
  // Buffers posted before DRIVER_OK are picked up on activation.
  d.driverOk();
  EXPECT_TRUE(d.waitUsed(0, 1));
}

TEST(VirtioMmioTransport, NoInterruptFlagSuppressesInterrupt) {
  TestDriver d;
  VirtioRng rng;
  d.attach(rng);
  d.start(0, {8});
  d.setAvailFlags(0, kAvailFlagNoInterrupt);
  d.addChain(0, {{kDataArea, 16, true}});
  d.kick(0);
  ASSERT_TRUE(d.waitUsed(0, 1));
  EXPECT_FALSE(d.irq().level);
  EXPECT_EQ(d.reg(mmio::kInterruptStatus), 0u);
}

TEST(VirtioMmioTransport, EventIdxInterruptsOnlyWhenUsedEventIsCrossed) {
  TestDriver d;
  VirtioRng rng;
  d.attach(rng);
  d.start(featureBit(kFeatureEventIdx), {8});
  d.setUsedEvent(0, 1);  // interrupt when the used index moves past 1, i.e. reaches 2
  d.addChain(0, {{kDataArea, 16, true}});
  d.kick(0);
  ASSERT_TRUE(d.waitUsed(0, 1));
  EXPECT_FALSE(d.irq().level);
  // The device tells the driver where it is, so the driver can suppress kicks.
  EXPECT_EQ(d.availEvent(0), 1);
  d.addChain(0, {{kDataArea + 64, 16, true}});
  d.kick(0);
  ASSERT_TRUE(d.waitUsed(0, 2));
  EXPECT_TRUE(d.irq().level);
  EXPECT_EQ(d.availEvent(0), 2);
}

TEST(VirtioMmioTransport, ConfigSpaceReadsAreLittleEndianAtAnyWidth) {
  TestDriver d;
  VirtioRng rng;  // no config space: reads as zero
  d.attach(rng);
  EXPECT_EQ(d.transport().read(mmio::kConfig, 4), 0u);
  EXPECT_EQ(d.reg(mmio::kConfigGeneration), 0u);
}

}  // namespace
}  // namespace strata::virtio::testing
