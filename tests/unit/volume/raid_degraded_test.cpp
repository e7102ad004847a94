// RAID 1, 5 and 10 with a PV missing or failing mid-write: reads and writes
// continue degraded, status reports it, `replace` rebuilds onto a new PV and
// the rebuilt copy alone serves the data; scrub finds and repairs injected
// mismatches.
#include <gtest/gtest.h>

#include <pthread.h>
#include <sys/sysinfo.h>

#include <atomic>
#include <iostream>
#include <random>
#include <thread>

#include "storage/volume/io_util.h"
#include "storage/volume/maintenance.h"
#include "storage/volume/pool_format.h"
#include "volume_test_util.h"

namespace strata::storage::volume {
namespace {

using testing::kMiB;
using testing::pattern;
using testing::VolumeTest;

constexpr uint64_t kData = kPvDataStart;

struct RaidCase {
  VolumeType type;
  int pvs;
  uint32_t stripes;
  uint32_t mirrors;
};

class RaidDegradedTest : public VolumeTest, public ::testing::WithParamInterface<RaidCase> {
 protected:
  VolumeCreateOptions spec() const {
    VolumeCreateOptions o;
    o.type = GetParam().type;
    o.sizeBytes = 4 * kMiB;
    o.stripes = GetParam().stripes;
    o.mirrors = GetParam().mirrors;
    o.stripeSize = 64 << 10;
    return o;
  }
  static std::vector<std::string> without(std::vector<std::string> paths, size_t index) {
    paths.erase(paths.begin() + static_cast<long>(index));
    return paths;
  }
};

TEST_P(RaidDegradedTest, MissingPvThenReplaceRebuilds) {
  auto pvs = makePvs(GetParam().pvs, 12);
  auto first = pattern(4 * kMiB, 21);
  {
    auto pool = createPool(pvs);
    ASSERT_TRUE(pool->createVolume("r", spec()).ok());
    auto device = openVolume(*pool, "r");
    ASSERT_EQ(device->sizeBytes(), 4 * kMiB);
    writeAt(*device, 0, first);
    flush(*device);
  }
  // PV 1 disappears.
  ASSERT_EQ(::unlink(pvs[1].c_str()), 0);
  auto second = first;
  {
    auto pool = openPool(pvs);  // its path is still listed, like a registry would
    ASSERT_TRUE(pool);
    EXPECT_EQ(pool->record().pvs[1].state, PvState::Failed);
    auto health = pool->health(*pool->record().findVolume("r"));
    EXPECT_TRUE(health.degraded);
    EXPECT_FALSE(health.failed);
    auto device = openVolume(*pool, "r");
    EXPECT_TRUE(readAt(*device, 0, 4 * kMiB) == first);
    // Degraded writes: unaligned, spanning stripes.
    auto patch = pattern(300000, 22);
    writeAt(*device, 100001, patch);
    std::copy(patch.begin(), patch.end(), second.begin() + 100001);
    auto patch2 = pattern(5000, 23);
    writeAt(*device, 3 * kMiB + 7, patch2);
    std::copy(patch2.begin(), patch2.end(), second.begin() + 3 * kMiB + 7);
    flush(*device);
    EXPECT_TRUE(readAt(*device, 0, 4 * kMiB) == second);
    device.reset();

    std::string fresh = makePv("new1", 12);
    uint64_t lastDone = 0;
    auto report = replacePhysicalVolume(*pool, "#1", fresh, false,
                                        [&](const MaintenanceProgress& p) { lastDone = p.doneBytes; });
    ASSERT_TRUE(report.ok()) << report.error().message;
    EXPECT_FALSE(report->copied);
    EXPECT_EQ(report->bytes, lastDone);
    EXPECT_GT(report->bytes, 0u);
    EXPECT_EQ(pool->record().pvs[1].state, PvState::Active);
    EXPECT_FALSE(pool->health(*pool->record().findVolume("r")).degraded);
    pvs[1] = fresh;
  }
  // The rebuilt PV must carry its share: drop a different PV and read everything.
  size_t other = GetParam().type == VolumeType::Raid10 ? 0 : 2;
  {
    auto pool = Pool::open(without(pvs, other), {.readOnly = true}, *loop);
    ASSERT_TRUE(pool.ok()) << pool.error().message;
    auto device = openVolume(**pool, "r");
    EXPECT_TRUE(readAt(*device, 0, 4 * kMiB) == second);
  }
  auto pool = openPool(pvs);
  auto scrub = scrubPool(*pool, false, nullptr);
  ASSERT_TRUE(scrub.ok());
  EXPECT_EQ(scrub->mirrorMismatches + scrub->parityMismatches, 0u);
}

TEST_P(RaidDegradedTest, PvFailsMidWriteAndStaysFailedUntilReplaced) {
  auto pvs = makePvs(GetParam().pvs, 12);
  auto expected = std::vector<uint8_t>(4 * kMiB, 0);
  {
    auto pool = createPool(pvs);
    ASSERT_TRUE(pool->createVolume("r", spec()).ok());
    auto device = openVolume(*pool, "r");
    std::mt19937 rng(5);
    for (int i = 0; i < 40; ++i) {
      if (i == 20) pool->failPhysicalVolume(1);  // like mdadm --fail, between writes
      uint64_t length = 1 + rng() % 200000;
      uint64_t offset = rng() % (4 * kMiB - length);
      auto data = pattern(length, 300 + i);
      // Keep a few requests in flight when the failure hits.
      writeAt(*device, offset, data);
      std::copy(data.begin(), data.end(), expected.begin() + offset);
    }
    flush(*device);
    EXPECT_TRUE(readAt(*device, 0, 4 * kMiB) == expected);
    EXPECT_EQ(pool->record().pvs[1].state, PvState::Failed);
  }
  {
    // PV 1 is back but stale: it must not be trusted.
    auto pool = openPool(pvs);
    EXPECT_EQ(pool->record().pvs[1].state, PvState::Failed);
    EXPECT_TRUE(pool->health(*pool->record().findVolume("r")).degraded);
    auto device = openVolume(*pool, "r");
    EXPECT_TRUE(readAt(*device, 0, 4 * kMiB) == expected);
    device.reset();
    // Re-adding the same device rebuilds it in place.
    auto report = replacePhysicalVolume(*pool, pvs[1], pvs[1], false, nullptr);
    ASSERT_TRUE(report.ok()) << report.error().message;
    EXPECT_EQ(pool->record().pvs[1].state, PvState::Active);
  }
  size_t other = GetParam().type == VolumeType::Raid10 ? 0 : 2;
  auto pool = Pool::open(without(pvs, other), {.readOnly = true}, *loop);
  ASSERT_TRUE(pool.ok()) << pool.error().message;
  auto device = openVolume(**pool, "r");
  EXPECT_TRUE(readAt(*device, 0, 4 * kMiB) == expected);
}

TEST_P(RaidDegradedTest, TwoMissingPvsFailCleanly) {
  auto pvs = makePvs(GetParam().pvs + 1, 12);  // a spare so the pool still opens
  {
    auto pool = createPool(pvs);
    ASSERT_TRUE(pool->createVolume("r", spec()).ok());
  }
  // Lose both copies of RAID 10's first set / two legs of the others.
  std::vector<std::string> remaining;
  for (size_t i = 2; i < pvs.size(); ++i) remaining.push_back(pvs[i]);
  auto pool = openPool(remaining);
  ASSERT_TRUE(pool);
  EXPECT_TRUE(pool->health(*pool->record().findVolume("r")).failed);
  auto device = openVolume(*pool, "r");
  std::vector<uint8_t> buffer(4096);
  EXPECT_FALSE(readSync(*device, *loop, 0, buffer.data(), buffer.size()).ok());
  auto replaced = replacePhysicalVolume(*pool, "#0", makePv("new0", 12), false, nullptr);
  ASSERT_FALSE(replaced.ok());
  EXPECT_NE(replaced.error().message.find("cannot be rebuilt"), std::string::npos) << replaced.error().message;
}

INSTANTIATE_TEST_SUITE_P(Redundant, RaidDegradedTest,
                         ::testing::Values(RaidCase{VolumeType::Mirror, 2, 0, 2}, RaidCase{VolumeType::Raid5, 3, 2, 2},
                                           RaidCase{VolumeType::Raid10, 4, 2, 2}),
                         [](const auto& info) { return std::string(volumeTypeName(info.param.type)); });

class MaintenanceTest : public VolumeTest {};

TEST_F(MaintenanceTest, ReplaceHealthyPvCopiesEveryVolume) {
  auto pvs = makePvs(2, 12);
  auto pool = createPool(pvs);
  VolumeCreateOptions lin;
  lin.sizeBytes = 10 * kMiB;  // spans both PVs
  ASSERT_TRUE(pool->createVolume("lin", lin).ok());
  auto data = pattern(10 * kMiB, 31);
  {
    auto device = openVolume(*pool, "lin");
    writeAt(*device, 0, data);
    flush(*device);
  }
  std::string fresh = makePv("bigger", 20);
  auto report = replacePhysicalVolume(*pool, pvs[1], fresh, false, nullptr);
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_TRUE(report->copied);
  EXPECT_EQ(report->bytes, 2 * kMiB);
  pool.reset();
  // The old PV is no longer part of the pool; the new one is.
  auto reopened = openPool({pvs[0], fresh});
  ASSERT_TRUE(reopened);
  auto device = openVolume(*reopened, "lin");
  EXPECT_TRUE(readAt(*device, 0, 10 * kMiB) == data);
}

TEST_F(MaintenanceTest, ReplacingAMissingPvUnderLinearDataNeedsForce) {
  auto pvs = makePvs(2, 12);
  {
    auto pool = createPool(pvs);
    VolumeCreateOptions lin;
    lin.sizeBytes = 10 * kMiB;
    ASSERT_TRUE(pool->createVolume("lin", lin).ok());
  }
  ASSERT_EQ(::unlink(pvs[1].c_str()), 0);
  auto pool = openPool(pvs);
  EXPECT_TRUE(pool->health(*pool->record().findVolume("lin")).failed);
  auto refused = replacePhysicalVolume(*pool, "#1", makePv("n", 12), false, nullptr);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("--force"), std::string::npos);
  auto forced = replacePhysicalVolume(*pool, "#1", dir + "/n", true, nullptr);
  ASSERT_TRUE(forced.ok()) << forced.error().message;
  ASSERT_EQ(forced->zeroedVolumes.size(), 1u);
  auto device = openVolume(*pool, "lin");
  EXPECT_TRUE(readAt(*device, 8 * kMiB, 2 * kMiB) == std::vector<uint8_t>(2 * kMiB, 0));
}

TEST_F(MaintenanceTest, ScrubRepairsMirrorAndParityMismatches) {
  auto pvs = makePvs(3, 12);
  auto pool = createPool(pvs);
  VolumeCreateOptions m;
  m.type = VolumeType::Mirror;
  m.sizeBytes = 2 * kMiB;
  ASSERT_TRUE(pool->createVolume("m", m).ok());  // legs on PV0 and PV1, extents 0-1
  VolumeCreateOptions r5;
  r5.type = VolumeType::Raid5;
  r5.sizeBytes = 4 * kMiB;
  r5.stripes = 2;
  ASSERT_TRUE(pool->createVolume("r5", r5).ok());  // legs on the PVs with most free space
  auto mirrorData = pattern(2 * kMiB, 41), raidData = pattern(4 * kMiB, 42);
  {
    auto device = openVolume(*pool, "m");
    writeAt(*device, 0, mirrorData);
    device = openVolume(*pool, "r5");
    writeAt(*device, 0, raidData);
  }
  auto clean = scrubPool(*pool, false, nullptr);
  ASSERT_TRUE(clean.ok());
  EXPECT_EQ(clean->mirrorMismatches, 0u);
  EXPECT_EQ(clean->parityMismatches, 0u);
  EXPECT_EQ(clean->bytesChecked, 2 * 2 * kMiB + 3 * 2 * kMiB);

  // Corrupt the second mirror copy in two 4 KiB blocks, and one raid5 leg in three.
  const VolumeRecord* mr = pool->record().findVolume("m");
  uint32_t mirrorPv = mr->legs[1].runs[0].pv;
  uint64_t mirrorBase = kData + mr->legs[1].runs[0].start * kMiB;
  pokeFile(pvs[mirrorPv], mirrorBase + 10, {1, 2, 3});
  pokeFile(pvs[mirrorPv], mirrorBase + kMiB + 4096 * 7, {4});
  const VolumeRecord* rr = pool->record().findVolume("r5");
  uint32_t raidPv = rr->legs[2].runs[0].pv;
  uint64_t raidBase = kData + rr->legs[2].runs[0].start * kMiB;
  pokeFile(pvs[raidPv], raidBase + 5, {9});
  pokeFile(pvs[raidPv], raidBase + 65536 * 3 + 9000, {9});
  pokeFile(pvs[raidPv], raidBase + kMiB + 100, {9});

  auto found = scrubPool(*pool, false, nullptr);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->mirrorMismatches, 2u);
  EXPECT_EQ(found->parityMismatches, 3u);
  EXPECT_EQ(found->repaired, 0u);
  auto repaired = scrubPool(*pool, true, nullptr);
  ASSERT_TRUE(repaired.ok());
  EXPECT_EQ(repaired->repaired, 5u);
  auto after = scrubPool(*pool, false, nullptr);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->mirrorMismatches + after->parityMismatches, 0u);
  auto device = openVolume(*pool, "m");
  EXPECT_TRUE(readAt(*device, 0, 2 * kMiB) == mirrorData);
}

VolumeCreateOptions raid5Options(uint64_t sizeBytes) {
  VolumeCreateOptions r5;
  r5.type = VolumeType::Raid5;
  r5.sizeBytes = sizeBytes;
  r5.stripes = 2;
  r5.stripeSize = 64 << 10;
  return r5;
}

// A guest may change a buffer while its write is in flight (the I/O thread
// reads guest memory that vCPUs keep writing). Parity must match the data
// that reaches the legs whatever the buffer held at any moment, or a later
// reconstruction returns bytes that were never written.
TEST_F(MaintenanceTest, Raid5ParityMatchesTheWrittenDataWhileTheGuestChangesItsBuffer) {
  constexpr uint64_t kRow = 2 * (64 << 10);
  constexpr uint64_t kSize = 4 * kMiB;
  auto pvs = makePvs(3, 12);
  ASSERT_TRUE(createPool(pvs)->createVolume("r5", raid5Options(kSize)).ok());
  // O_DIRECT, as VMs open pools: the PV reads the buffer while the write is
  // in flight, not when it is submitted, as a disk DMAs guest memory.
  auto opened = Pool::open(pvs, {.direct = true}, *loop);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  auto pool = std::move(*opened);
  auto buffer = makeAlignedBuffer(kRow);  // page-aligned, like guest RAM
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> rounds{0};
  // On different CPUs where there are several, so the two really overlap.
  auto pinTo = [](pthread_t thread, int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu % std::max(1, get_nprocs()), &set);
    pthread_setaffinity_np(thread, sizeof set, &set);
  };
  cpu_set_t original;
  pthread_getaffinity_np(pthread_self(), sizeof original, &original);
  pinTo(pthread_self(), 0);
  std::thread guest([&] {
    auto* words = reinterpret_cast<uint64_t*>(buffer.get());
    for (uint64_t round = 1; !stop.load(std::memory_order_relaxed); ++round) {
      for (size_t i = 0; i < kRow / 8; ++i) __atomic_store_n(&words[i], round * 0x9e3779b97f4a7c15ull + i, __ATOMIC_RELAXED);
      rounds.store(round, std::memory_order_relaxed);
    }
  });
  pinTo(guest.native_handle(), 1);
  while (rounds.load() == 0) std::this_thread::yield();
  int failures = 0;
  std::vector<uint8_t> written;
  {
    auto device = openVolume(*pool, "r5");
    // Every row at once, so parity passes and data writes interleave; on a
    // busy host, until the other thread has really run alongside for a while.
    const uint64_t roundsBefore = rounds.load();
    for (int pass = 0; pass < 64 || (rounds.load() - roundsBefore < 20000 && pass < 2000); ++pass) {
      int pending = 0;
      for (uint64_t row = 0; row < kSize / kRow; ++row, ++pending)
        device->writev(row * kRow, {iovec{buffer.get(), kRow}}, [&](int result) {
          failures += result != 0;
          --pending;
        });
      while (pending > 0) loop->runOnce(-1);
    }
    stop = true;
    guest.join();
    pthread_setaffinity_np(pthread_self(), sizeof original, &original);
    flush(*device);
    written = readAt(*device, 0, kSize);
  }
  EXPECT_EQ(failures, 0);
  auto scrub = scrubPool(*pool, false, nullptr);
  ASSERT_TRUE(scrub.ok());
  EXPECT_EQ(scrub->parityMismatches, 0u);
  // Reconstructed from parity, the lost leg's data is what the healthy read returned.
  pool.reset();
  ASSERT_EQ(::unlink(pvs[0].c_str()), 0);
  pool = openPool(pvs);
  ASSERT_TRUE(pool);
  auto device = openVolume(*pool, "r5");
  EXPECT_TRUE(readAt(*device, 0, kSize) == written);
}

// Write-zeroes of a whole RAID 5 volume in one request: a few pieces in
// flight, not a parity batch (and its scratch) per row of the request at once.
TEST_F(MaintenanceTest, Raid5WriteZeroesHoldsBoundedMemory) {
  constexpr uint64_t kSize = 128 * kMiB;
  auto pvs = makePvs(3, 80);
  auto pool = createPool(pvs);
  ASSERT_TRUE(pool->createVolume("r5", raid5Options(kSize)).ok());
  auto device = openVolume(*pool, "r5");
  for (uint64_t offset : {uint64_t{0}, kSize / 2 + 12345, kSize - kMiB}) writeAt(*device, offset, pattern(kMiB, 90));
  auto zeroed = testing::runMeasuringHeap(*loop, [&](IoCompletion done) { device->writeZeroes(0, kSize, std::move(done)); });
  EXPECT_EQ(zeroed.result, 0);
  std::cout << "RAID 5 write-zeroes of 128 MiB: peak heap growth " << zeroed.peakHeapGrowth << " bytes\n";
  EXPECT_LT(zeroed.peakHeapGrowth, 16 * kMiB);
  for (uint64_t offset : {uint64_t{0}, kSize / 2 + 12345, kSize - kMiB})
    EXPECT_TRUE(readAt(*device, offset, kMiB) == std::vector<uint8_t>(kMiB, 0));
  device.reset();
  auto scrub = scrubPool(*pool, false, nullptr);
  ASSERT_TRUE(scrub.ok());
  EXPECT_EQ(scrub->parityMismatches, 0u);
}

}  // namespace
}  // namespace strata::storage::volume
