// Hostile or buggy drivers: every malformed ring must put the device into
// DEVICE_NEEDS_RESET (with a config-change interrupt), process nothing more,
// and recover after the driver resets it. The host never crashes.
#include <gtest/gtest.h>

#include <functional>

#include "virtio/rng.h"
#include "virtio_test_driver.h"

namespace strata::virtio::testing {
namespace {

constexpr uint16_t kQueueSize = 8;

class MalformedQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    d.attach(rng);
    d.start(featureBit(kFeatureIndirectDesc), {kQueueSize});
  }

  // Kicks the queue after the test corrupted it and checks the device gave up cleanly.
  void expectDeviceFailed() {
    d.kick(0);
    ASSERT_TRUE(d.runUntil([&] { return d.needsReset(); }));
    EXPECT_EQ(d.usedIdx(0), 0);
    EXPECT_TRUE(d.irq().level);
    EXPECT_EQ(d.reg(mmio::kInterruptStatus) & kInterruptConfigChange, kInterruptConfigChange);
    // Further work is ignored until reset.
    d.setReg(mmio::kInterruptAck, kInterruptConfigChange);
    d.kick(0);
    d.runLoopBriefly();
    EXPECT_EQ(d.usedIdx(0), 0);
    EXPECT_TRUE(d.needsReset());
  }

  void expectRecoversAfterReset() {
    d.setReg(mmio::kStatus, 0);
    EXPECT_EQ(d.reg(mmio::kStatus), 0u);
    d.start(featureBit(kFeatureIndirectDesc), {kQueueSize});
    EXPECT_FALSE(d.needsReset());
    uint16_t head = d.addChain(0, {{kDataArea, 16, true}});
    d.kick(0);
    ASSERT_TRUE(d.waitUsed(0, 1));
    EXPECT_EQ(d.used(0, 0).id, head);
    EXPECT_EQ(d.used(0, 0).len, 16u);
  }

  TestDriver d;
  VirtioRng rng;
};

TEST_F(MalformedQueueTest, HeadIndexBeyondQueue) {
  d.makeAvailable(0, kQueueSize + 3);
  expectDeviceFailed();
  expectRecoversAfterReset();
}

TEST_F(MalformedQueueTest, NextIndexBeyondQueue) {
  d.writeDescriptor(0, 0, kDataArea, 16, kDescFlagWrite | kDescFlagNext, 200);
  d.makeAvailable(0, 0);
  expectDeviceFailed();
  expectRecoversAfterReset();
}

TEST_F(MalformedQueueTest, LoopInNextPointers) {
  d.writeDescriptor(0, 0, kDataArea, 16, kDescFlagWrite | kDescFlagNext, 1);
  d.writeDescriptor(0, 1, kDataArea, 16, kDescFlagWrite | kDescFlagNext, 2);
  d.writeDescriptor(0, 2, kDataArea, 16, kDescFlagWrite | kDescFlagNext, 0);
  d.makeAvailable(0, 0);
  expectDeviceFailed();
  expectRecoversAfterReset();
}

TEST_F(MalformedQueueTest, SelfLoop) {
  d.writeDescriptor(0, 4, kDataArea, 16, kDescFlagWrite | kDescFlagNext, 4);
  d.makeAvailable(0, 4);
  expectDeviceFailed();
}

TEST_F(MalformedQueueTest, BufferOutsideRam) {
  d.addChain(0, {{kRamBase + kRamSize - 8, 16, true}});
  expectDeviceFailed();
  expectRecoversAfterReset();
}

TEST_F(MalformedQueueTest, BufferBelowRam) {
  d.addChain(0, {{kRamBase - 0x1000, 16, true}});
  expectDeviceFailed();
}

TEST_F(MalformedQueueTest, LengthOverflowsAddressSpace) {
  d.addChain(0, {{0xfffffffffffffff0ull, 0x20, true}});
  expectDeviceFailed();
}

TEST_F(MalformedQueueTest, HugeLength) {
  d.addChain(0, {{kDataArea, 0xffffffffu, true}});
  expectDeviceFailed();
}

TEST_F(MalformedQueueTest, IndirectTableLengthNotMultipleOf16) {
  d.writeDescriptorAt(kDataArea + 0x1000, kDataArea, 16, kDescFlagWrite, 0);
  d.writeDescriptor(0, 0, kDataArea + 0x1000, 24, kDescFlagIndirect, 0);
  d.makeAvailable(0, 0);
  expectDeviceFailed();
  expectRecoversAfterReset();
}

TEST_F(MalformedQueueTest, IndirectTableOutsideRam) {
  d.writeDescriptor(0, 0, kRamBase + kRamSize - 16, 32, kDescFlagIndirect, 0);
  d.makeAvailable(0, 0);
  expectDeviceFailed();
}

TEST_F(MalformedQueueTest, NestedIndirect) {
  uint64_t outer = kDataArea + 0x1000;
  uint64_t inner = kDataArea + 0x2000;
  d.writeDescriptorAt(inner, kDataArea, 16, kDescFlagWrite, 0);
  d.writeDescriptorAt(outer, inner, 16, kDescFlagIndirect, 0);
  d.writeDescriptor(0, 0, outer, 16, kDescFlagIndirect, 0);
  d.makeAvailable(0, 0);
  expectDeviceFailed();
  expectRecoversAfterReset();
}

TEST_F(MalformedQueueTest, IndirectIndexBeyondTable) {
  uint64_t table = kDataArea + 0x1000;
  d.writeDescriptorAt(table, kDataArea, 16, kDescFlagWrite | kDescFlagNext, 2);  // table has 2 entries
  d.writeDescriptorAt(table + 16, kDataArea, 16, kDescFlagWrite, 0);
  d.writeDescriptor(0, 0, table, 32, kDescFlagIndirect, 0);
  d.makeAvailable(0, 0);
  expectDeviceFailed();
}

TEST_F(MalformedQueueTest, LoopInsideIndirectTable) {
  uint64_t table = kDataArea + 0x1000;
  d.writeDescriptorAt(table, kDataArea, 16, kDescFlagWrite | kDescFlagNext, 1);
  d.writeDescriptorAt(table + 16, kDataArea, 16, kDescFlagWrite | kDescFlagNext, 0);
  d.writeDescriptor(0, 0, table, 32, kDescFlagIndirect, 0);
  d.makeAvailable(0, 0);
  expectDeviceFailed();
}

TEST_F(MalformedQueueTest, IndirectWithNextFlag) {
  uint64_t table = kDataArea + 0x1000;
  d.writeDescriptorAt(table, kDataArea, 16, kDescFlagWrite, 0);
  d.writeDescriptor(0, 0, table, 16, kDescFlagIndirect | kDescFlagNext, 1);
  d.writeDescriptor(0, 1, kDataArea, 16, kDescFlagWrite, 0);
  d.makeAvailable(0, 0);
  expectDeviceFailed();
}

TEST_F(MalformedQueueTest, AvailIndexJumpsPastQueueSize) {
  d.addChain(0, {{kDataArea, 16, true}});
  d.setAvailIdx(0, kQueueSize + 1);
  expectDeviceFailed();
  expectRecoversAfterReset();
}

TEST_F(MalformedQueueTest, ReadableAfterWritable) {
  d.addChain(0, {{kDataArea, 16, true}, {kDataArea + 64, 16, false}});
  expectDeviceFailed();
}

// Queue setups the transport must refuse, on a device with one queue of its own.
class MalformedQueueSetup : public ::testing::Test {
 protected:
  MalformedQueueSetup() { d.attach(rng); }

  // Programs queue 0 register by register (TestDriver::setupQueue only makes
  // sane layouts) after negotiating VERSION_1, then sets DRIVER_OK.
  void setUpQueueByHand(uint32_t size, uint64_t descriptors, uint64_t usedRing) {
    ASSERT_TRUE(d.negotiate(featureBit(kFeatureVersion1)));
    d.setReg(mmio::kQueueSel, 0);
    d.setReg(mmio::kQueueNum, size);
    d.setReg(mmio::kQueueDescLow, static_cast<uint32_t>(descriptors));
    d.setReg(mmio::kQueueDriverLow, static_cast<uint32_t>(kRingArea + 0x4000));
    d.setReg(mmio::kQueueDeviceLow, static_cast<uint32_t>(usedRing));
    d.setReg(mmio::kQueueReady, 1);
    d.driverOk();
  }

  TestDriver d;
  VirtioRng rng;
};

TEST_F(MalformedQueueSetup, IndirectWithoutNegotiation) {
  d.start(0, {kQueueSize});
  d.writeDescriptorAt(kDataArea + 0x1000, kDataArea, 16, kDescFlagWrite, 0);
  d.writeDescriptor(0, 0, kDataArea + 0x1000, 16, kDescFlagIndirect, 0);
  d.makeAvailable(0, 0);
  d.kick(0);
  ASSERT_TRUE(d.runUntil([&] { return d.needsReset(); }));
  EXPECT_EQ(d.usedIdx(0), 0);
}

TEST_F(MalformedQueueSetup, QueueSizeNotPowerOfTwo) {
  d.start(0, {6});
  EXPECT_TRUE(d.runUntil([&] { return d.needsReset(); }));
  EXPECT_EQ(d.reg(mmio::kInterruptStatus), kInterruptConfigChange);
}

TEST_F(MalformedQueueSetup, QueueLargerThanMaximum) {
  ASSERT_NO_FATAL_FAILURE(setUpQueueByHand(512, kRingArea, kRingArea + 0x8000));
  EXPECT_TRUE(d.runUntil([&] { return d.needsReset(); }));
}

TEST_F(MalformedQueueSetup, RingOutsideRam) {
  ASSERT_NO_FATAL_FAILURE(setUpQueueByHand(8, 0x1000 /* below RAM */, kRingArea + 0x8000));
  EXPECT_TRUE(d.runUntil([&] { return d.needsReset(); }));
}

TEST_F(MalformedQueueSetup, MisalignedUsedRing) {
  ASSERT_NO_FATAL_FAILURE(setUpQueueByHand(8, kRingArea, kRingArea + 0x8002));
  EXPECT_TRUE(d.runUntil([&] { return d.needsReset(); }));
}

}  // namespace
}  // namespace strata::virtio::testing
