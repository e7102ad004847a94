// virtio-balloon against a hand-driven guest: pages inflated or reported are
// really gone from the host (they read zero and the memfd shrinks), and every
// hostile input (page frames outside RAM, duplicates, misshapen buffers, lies
// in `actual`) is refused or counted without failing the host.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "virtio/balloon.h"
#include "virtio_test_driver.h"

namespace strata::virtio::testing {
namespace {

using namespace balloon;

constexpr unsigned kInflate = 0, kDeflate = 1, kStats = 2, kReporting = 3;
constexpr uint64_t kAllFeatures = (uint64_t{1} << kFeatureStatsVq) | (uint64_t{1} << kFeatureDeflateOnOom) |
                                  (uint64_t{1} << kFeaturePageReporting);
// Guest pages the tests put in the balloon: 4 MiB into RAM, clear of rings and buffers.
constexpr uint64_t kVictims = kRamBase + (4 << 20);
constexpr uint32_t kVictimPfn = static_cast<uint32_t>(kVictims >> kPfnShift);

class BalloonTest : public ::testing::Test {
 protected:
  explicit BalloonTest(VirtioBalloon::Options options = {.targetBytes = 0, .statsInterval = std::chrono::milliseconds(0)})
      : balloon(d.ram(), options) {
    d.attach(balloon);
  }

  void start(uint64_t features = kAllFeatures) {
    d.start(features, {16, 16, 16, 64});
    // Touch the PFN buffers now, so later page counts of the memfd see only discards.
    std::memset(d.host(kDataArea, 64 * kPageBytes), 0, 64 * kPageBytes);
  }

  // Fills `pages` guest pages from gpa with a non-zero pattern.
  void scribble(uint64_t gpa, unsigned pages) { std::memset(d.host(gpa, pages * kPageBytes), 0xAB, pages * kPageBytes); }
  bool allZero(uint64_t gpa, uint64_t bytes) {
    const uint8_t* p = d.host(gpa, bytes);
    return std::all_of(p, p + bytes, [](uint8_t b) { return b == 0; });
  }
  uint64_t ramBlocks() {
    struct stat st;
    EXPECT_EQ(::fstat(d.ram().fd(), &st), 0);
    return static_cast<uint64_t>(st.st_blocks);
  }

  // Posts `pfns` (le32 array at a fresh data-area spot) on queue q and waits for the device to use it.
  void sendPfns(unsigned q, const std::vector<uint32_t>& pfns) {
    uint64_t at = kDataArea + 0x1000 * (sent_++ % 64);
    d.fill(at, pfns.data(), pfns.size() * 4);
    sendChain(q, {{at, static_cast<uint32_t>(pfns.size() * 4), false}});
  }
  void sendChain(unsigned q, const std::vector<Buffer>& buffers) {
    uint16_t before = d.usedIdx(q);
    d.addChain(q, buffers);
    d.kick(q);
    ASSERT_TRUE(d.waitUsed(q, static_cast<uint16_t>(before + 1)));
  }
  uint32_t config32(uint64_t offset) { return d.reg(mmio::kConfig + offset); }

  TestDriver d;
  VirtioBalloon balloon;
  unsigned sent_ = 0;
};

TEST_F(BalloonTest, OffersStatsDeflateOnOomAndReporting) {
  EXPECT_EQ(d.reg(mmio::kDeviceId), 5u);
  EXPECT_EQ(d.deviceFeatures() & kAllFeatures, kAllFeatures);
}

TEST_F(BalloonTest, TargetReachesTheDriverWithAConfigInterrupt) {
  start();
  EXPECT_EQ(config32(0), 0u);
  balloon.setTargetBytes(4 << 20);
  ASSERT_TRUE(d.runUntil([&] { return (d.reg(mmio::kInterruptStatus) & kInterruptConfigChange) != 0; }));
  EXPECT_EQ(config32(0), 1024u);
  // More than the guest has is clamped to its RAM.
  balloon.setTargetBytes(kRamSize * 4);
  EXPECT_EQ(config32(0), kRamSize / kPageBytes);
  EXPECT_EQ(balloon.status().targetBytes, kRamSize);
}

TEST_F(BalloonTest, InflatedPagesGoBackToTheHostAndReadZero) {
  start();
  scribble(kVictims, 8);
  uint64_t blocksBefore = ramBlocks();
  sendPfns(kInflate, {kVictimPfn + 3, kVictimPfn, kVictimPfn + 1, kVictimPfn + 2});
  EXPECT_EQ(blocksBefore - ramBlocks(), 4 * kPageBytes / 512);  // before reading: a read allocates again
  EXPECT_TRUE(allZero(kVictims, 4 * kPageBytes));
  EXPECT_FALSE(allZero(kVictims + 4 * kPageBytes, kPageBytes));  // the page after was not in the balloon
  EXPECT_EQ(balloon.status().inflatedBytes, 4 * kPageBytes);
  // The driver's claim is shown as it wrote it.
  d.setReg(mmio::kConfig + 4, 4);
  EXPECT_EQ(config32(4), 4u);
  EXPECT_EQ(balloon.status().actualBytes, 4 * kPageBytes);

  sendPfns(kDeflate, {kVictimPfn, kVictimPfn + 1});
  EXPECT_EQ(balloon.status().inflatedBytes, 2 * kPageBytes);
  EXPECT_FALSE(d.needsReset());
}

TEST_F(BalloonTest, PageFramesOutsideRamAreRefusedAndCounted) {
  start();
  scribble(kRamBase + kRamSize - kPageBytes, 1);
  uint32_t first = static_cast<uint32_t>(kRamBase >> kPfnShift);
  uint32_t pastEnd = static_cast<uint32_t>((kRamBase + kRamSize) >> kPfnShift);
  sendPfns(kInflate, {0, first - 1, pastEnd, pastEnd + 1000, 0xFFFFFFFFu});
  sendPfns(kDeflate, {0, pastEnd});
  auto status = balloon.status();
  EXPECT_EQ(status.refusedPfns, 7u);
  EXPECT_EQ(status.inflatedBytes, 0u);
  EXPECT_FALSE(allZero(kRamBase + kRamSize - kPageBytes, kPageBytes));  // the last RAM page is untouched
  EXPECT_FALSE(d.needsReset());
}

TEST_F(BalloonTest, DuplicatesAreHarmless) {
  start();
  sendPfns(kInflate, {kVictimPfn, kVictimPfn, kVictimPfn});
  sendPfns(kInflate, {kVictimPfn});
  EXPECT_EQ(balloon.status().inflatedBytes, kPageBytes);
  sendPfns(kDeflate, {kVictimPfn + 9, kVictimPfn, kVictimPfn});  // never inflated, then twice
  auto status = balloon.status();
  EXPECT_EQ(status.inflatedBytes, 0u);
  EXPECT_EQ(status.duplicatePfns, 5u);
  EXPECT_FALSE(d.needsReset());
}

TEST_F(BalloonTest, MisshapenPageBuffersAreCountedNotFatal) {
  start();
  // 6 bytes: one whole PFN and a stray half.
  uint32_t pfns[2] = {kVictimPfn, kVictimPfn + 1};
  d.fill(kDataArea, pfns, 8);
  sendChain(kInflate, {{kDataArea, 6, false}});
  // Only a writable buffer: no PFNs at all.
  sendChain(kInflate, {{kDataArea, 64, true}});
  // A 1 MiB buffer (262144 PFNs of zeros): capped, all refused as outside RAM.
  sendChain(kDeflate, {{kDataArea + (1 << 20), 1 << 20, false}});
  auto status = balloon.status();
  EXPECT_EQ(status.inflatedBytes, kPageBytes);
  EXPECT_EQ(status.malformedRequests, 3u);
  EXPECT_EQ(status.refusedPfns, 4096u);
  EXPECT_FALSE(d.needsReset());
}

TEST_F(BalloonTest, ReportedPagesAreDiscardedAndReturned) {
  start();
  scribble(kVictims, 16);
  uint64_t blocksBefore = ramBlocks();
  // Two reported ranges, and one that covers only part of a page (kept: it holds other data).
  sendChain(kReporting, {{kVictims, 8 * kPageBytes, true}, {kVictims + 12 * kPageBytes, 2 * kPageBytes, true},
                         {kVictims + 15 * kPageBytes + 100, 200, true}});
  EXPECT_EQ(blocksBefore - ramBlocks(), 10 * kPageBytes / 512);
  EXPECT_TRUE(allZero(kVictims, 8 * kPageBytes));
  EXPECT_TRUE(allZero(kVictims + 12 * kPageBytes, 2 * kPageBytes));
  EXPECT_FALSE(allZero(kVictims + 8 * kPageBytes, kPageBytes));
  EXPECT_FALSE(allZero(kVictims + 15 * kPageBytes, kPageBytes));
  EXPECT_EQ(d.used(kReporting, 0).len, 0u);
  // Reporting the same pages again is harmless.
  sendChain(kReporting, {{kVictims, 8 * kPageBytes, true}});
  EXPECT_GE(balloon.status().reportedBytes, 18 * kPageBytes);
  EXPECT_EQ(balloon.status().inflatedBytes, 0u);  // reported pages stay the guest's
}

TEST_F(BalloonTest, ReportedRangeReachingPastRamFailsOnlyTheDeviceAndDropsNothing) {
  start();
  scribble(kRamBase + kRamSize - 2 * kPageBytes, 2);
  // The last two pages of RAM and one past it: refused whole, not trimmed.
  d.addChain(kReporting, {{kRamBase + kRamSize - 2 * kPageBytes, 3 * kPageBytes, true}});
  d.kick(kReporting);
  ASSERT_TRUE(d.runUntil([&] { return d.needsReset(); }));
  EXPECT_FALSE(allZero(kRamBase + kRamSize - 2 * kPageBytes, 2 * kPageBytes));
  EXPECT_EQ(balloon.status().reportedBytes, 0u);
}

TEST_F(BalloonTest, StatisticsAreShownAsTheGuestClaimsThem) {
  // Nothing in the device acts on them (BalloonPolicy bounds what a policy does with lies).
  start();
  struct [[gnu::packed]] Stat {
    uint16_t tag;
    uint64_t value;
  };
  Stat lies[3] = {{kFreeMemory, UINT64_MAX}, {kTotalMemory, 1}, {kAvailableMemory, UINT64_MAX}};
  d.fill(kDataArea, lies, sizeof lies);
  d.addChain(kStats, {{kDataArea, sizeof lies, false}});
  d.kick(kStats);
  ASSERT_TRUE(d.runUntil([&] { return balloon.status().statistics.updates == 1; }));
  auto status = balloon.status();
  EXPECT_EQ(status.statistics.values[kFreeMemory], UINT64_MAX);
  EXPECT_EQ(status.statistics.values[kTotalMemory], 1u);
  EXPECT_EQ(status.inflatedBytes, 0u);
  EXPECT_EQ(status.targetBytes, 0u);
  EXPECT_FALSE(d.needsReset());
}

TEST_F(BalloonTest, ReportingQueueMovesDownWithoutStatistics) {
  ASSERT_TRUE(d.negotiate((uint64_t{1} << kFeaturePageReporting) | featureBit(kFeatureVersion1)));
  for (unsigned q = 0; q < 3; ++q) d.setupQueue(q, 16);
  d.driverOk();
  scribble(kVictims, 1);
  sendChain(2, {{kVictims, kPageBytes, true}});
  EXPECT_TRUE(allZero(kVictims, kPageBytes));
}

TEST_F(BalloonTest, StatisticsAreParsedAndTheBufferHeldUntilAsked) {
  start();
  struct [[gnu::packed]] Stat {
    uint16_t tag;
    uint64_t value;
  };
  Stat stats[4] = {{kFreeMemory, 5 << 20}, {kTotalMemory, 16 << 20}, {99, 7}, {kMajorFaults, 3}};
  d.fill(kDataArea, stats, sizeof stats);
  d.addChain(kStats, {{kDataArea, sizeof stats + 4, false}});  // plus 4 stray bytes
  d.kick(kStats);
  ASSERT_TRUE(d.runUntil([&] { return balloon.status().statistics.updates == 1; }));
  EXPECT_EQ(d.usedIdx(kStats), 0);  // held: returning it is how the host asks for more
  auto status = balloon.status();
  EXPECT_EQ(status.statistics.values[kFreeMemory], uint64_t{5} << 20);
  EXPECT_EQ(status.statistics.values[kTotalMemory], uint64_t{16} << 20);
  EXPECT_EQ(status.statistics.values[kMajorFaults], 3u);
  EXPECT_FALSE(status.statistics.values[kSwapIn].has_value());
  EXPECT_EQ(status.malformedRequests, 1u);
  balloon.requestStatistics();
  EXPECT_EQ(d.usedIdx(kStats), 1);
  balloon.requestStatistics();  // nothing held: nothing happens
  EXPECT_EQ(d.usedIdx(kStats), 1);
}

class PolledBalloonTest : public BalloonTest {
 protected:
  PolledBalloonTest() : BalloonTest({.targetBytes = 1 << 20, .statsInterval = std::chrono::milliseconds(20)}) {}
};

TEST_F(PolledBalloonTest, TimerAsksForFreshStatistics) {
  EXPECT_EQ(config32(0), 256u);  // the initial target is there before the driver starts
  start();
  uint8_t zeros[10] = {};
  d.fill(kDataArea, zeros, sizeof zeros);
  d.addChain(kStats, {{kDataArea, 10, false}});
  d.kick(kStats);
  EXPECT_TRUE(d.waitUsed(kStats, 1));
}

TEST_F(BalloonTest, ResetEmptiesTheBalloon) {
  start();
  sendPfns(kInflate, {kVictimPfn, kVictimPfn + 1});
  d.setReg(mmio::kConfig + 4, 2);
  ASSERT_EQ(balloon.status().inflatedBytes, 2 * kPageBytes);
  d.setReg(mmio::kStatus, 0);
  d.runLoopBriefly();
  EXPECT_EQ(balloon.status().inflatedBytes, 0u);
  EXPECT_EQ(config32(4), 0u);
  start();
  sendPfns(kInflate, {kVictimPfn});
  EXPECT_EQ(balloon.status().inflatedBytes, kPageBytes);
}

TEST_F(BalloonTest, WritesOutsideActualAreIgnored) {
  start();
  balloon.setTargetBytes(8 * kPageBytes);
  d.setReg(mmio::kConfig + 0, 12345);  // num_pages is the host's
  d.setReg(mmio::kConfig + 8, 1);
  EXPECT_EQ(config32(0), 8u);
  EXPECT_EQ(config32(8), 0u);
}

TEST_F(BalloonTest, MalformedRingFailsOnlyTheDevice) {
  start();
  d.setAvailIdx(kInflate, 100);  // 100 heads on a 16-entry ring
  d.kick(kInflate);
  ASSERT_TRUE(d.runUntil([&] { return d.needsReset(); }));
  EXPECT_EQ(balloon.status().inflatedBytes, 0u);
}

}  // namespace
}  // namespace strata::virtio::testing
