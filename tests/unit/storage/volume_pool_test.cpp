#include "storage/volume_pool.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>

#include "storage/crc32c.h"
#include "storage/sync_io.h"
#include "storage_test_util.h"

namespace strata::storage::volume {
namespace {

using storage::testing::pattern;
using storage::testing::readFile;
using storage::testing::TempDir;

constexpr uint64_t kExtent = 1 << 20;

class VolumePoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    loop = std::move(*EventLoop::create());
    for (int i = 0; i < 3; ++i) {
      paths.push_back(dir.file("pv" + std::to_string(i)));
      // Room for the metadata area plus 8 extents of 1 MiB.
      FILE* f = std::fopen(paths.back().c_str(), "w");
      std::fclose(f);
      ASSERT_EQ(::truncate(paths.back().c_str(), kDataStart + 8 * kExtent), 0);
    }
  }
  std::unique_ptr<VolumePool> makePool() {
    auto pool = VolumePool::create("tank", paths, kExtent, *loop);
    EXPECT_TRUE(pool.ok()) << (pool.ok() ? "" : pool.error().message);
    return pool.ok() ? std::move(*pool) : nullptr;
  }
  void corruptSlot(const std::string& path, int slot) {
    FILE* f = std::fopen(path.c_str(), "r+b");
    std::fseek(f, static_cast<long>(kSlotOffset + slot * kSlotSize + 100), SEEK_SET);
    std::fputc(0x5a, f);
    std::fclose(f);
  }
  TempDir dir;
  std::unique_ptr<EventLoop> loop;
  std::vector<std::string> paths;
};

TEST(Crc32c, KnownVector) {
  // The standard check value of CRC-32C over "123456789".
  EXPECT_EQ(crc32c("123456789", 9), 0xe3069283u);
}

TEST_F(VolumePoolTest, LinearVolumeSpansPhysicalVolumes) {
  auto pool = makePool();
  ASSERT_TRUE(pool);
  EXPECT_EQ(pool->freeExtents(), 24u);
  ASSERT_TRUE(pool->createVolume("big", 10 * kExtent, {}).ok());
  EXPECT_EQ(pool->freeExtents(), 14u);
  auto volume = pool->openVolume("big");
  ASSERT_TRUE(volume.ok());
  EXPECT_EQ((*volume)->sizeBytes(), 10 * kExtent);
  auto data = pattern(3000, 1);
  ASSERT_TRUE(writeSync(**volume, *loop, 8 * kExtent - 1000, data.data(), data.size()).ok());
  ASSERT_TRUE(flushSync(**volume, *loop).ok());
  // Extents 0-7 are PV0's, 8-9 PV1's first two.
  auto pv0 = readFile(paths[0]);
  auto pv1 = readFile(paths[1]);
  EXPECT_EQ(0, std::memcmp(pv0.data() + kDataStart + 8 * kExtent - 1000, data.data(), 1000));
  EXPECT_EQ(0, std::memcmp(pv1.data() + kDataStart, data.data() + 1000, 2000));
  std::vector<uint8_t> back(3000);
  ASSERT_TRUE(readSync(**volume, *loop, 8 * kExtent - 1000, back.data(), back.size()).ok());
  EXPECT_EQ(back, data);
  std::vector<uint8_t> past(512);
  EXPECT_FALSE(readSync(**volume, *loop, 10 * kExtent - 256, past.data(), past.size()).ok());
}

TEST_F(VolumePoolTest, StripedVolumeRotatesChunksOverLegs) {
  auto pool = makePool();
  ASSERT_TRUE(pool);
  ASSERT_TRUE(pool->createVolume("big", 10 * kExtent, {}).ok());
  ASSERT_TRUE(pool->createVolume("fast", 4 * kExtent, VolumeLayout{Layout::Striped, 2, 65536}).ok());
  const auto& lv = pool->metadata().volumes[1];
  ASSERT_EQ(lv.segments.size(), 2u);
  EXPECT_EQ(lv.segments[0].pvIndex, 1u);  // PV0 is full; PV1 has extents 2-7 free
  EXPECT_EQ(lv.segments[0].startExtent, 2u);
  EXPECT_EQ(lv.segments[1].pvIndex, 2u);
  EXPECT_EQ(lv.segments[1].startExtent, 0u);
  auto volume = pool->openVolume("fast");
  ASSERT_TRUE(volume.ok());
  auto data = pattern(131072, 2);
  // Chunks 3 and 4: chunk 3 -> leg 1 (PV2) row 1; chunk 4 -> leg 0 (PV1) row 2.
  ASSERT_TRUE(writeSync(**volume, *loop, 3 * 65536, data.data(), data.size()).ok());
  ASSERT_TRUE(flushSync(**volume, *loop).ok());
  auto pv1 = readFile(paths[1]);
  auto pv2 = readFile(paths[2]);
  EXPECT_EQ(0, std::memcmp(pv2.data() + kDataStart + 65536, data.data(), 65536));
  EXPECT_EQ(0, std::memcmp(pv1.data() + kDataStart + 2 * kExtent + 2 * 65536, data.data() + 65536, 65536));
}

TEST_F(VolumePoolTest, ReopensInAnyOrderAndSurvivesTornMetadata) {
  {
    auto pool = makePool();
    ASSERT_TRUE(pool);
    ASSERT_TRUE(pool->createVolume("a", 2 * kExtent, {}).ok());  // sequence 2
    ASSERT_TRUE(pool->createVolume("b", 2 * kExtent, {}).ok());  // sequence 3, slot 1
    auto volume = pool->openVolume("a");
    auto data = pattern(4096, 3);
    ASSERT_TRUE(writeSync(**volume, *loop, 0, data.data(), data.size()).ok());
  }
  {
    auto pool = VolumePool::open({paths[2], paths[0], paths[1]}, *loop);
    ASSERT_TRUE(pool.ok()) << pool.error().message;
    EXPECT_EQ((*pool)->metadata().sequence, 3u);
    EXPECT_EQ((*pool)->metadata().volumes.size(), 2u);
    auto volume = (*pool)->openVolume("a");
    std::vector<uint8_t> got(4096);
    ASSERT_TRUE(readSync(**volume, *loop, 0, got.data(), got.size()).ok());
    EXPECT_EQ(got, pattern(4096, 3));
  }
  // A torn write of the newest copy on one PV: the pool opens at the newest
  // version from the others and rewrites the stale PV.
  corruptSlot(paths[1], 1);
  {
    auto pool = VolumePool::open(paths, *loop);
    ASSERT_TRUE(pool.ok()) << pool.error().message;
    EXPECT_EQ((*pool)->metadata().volumes.size(), 2u);
    EXPECT_EQ((*pool)->metadata().sequence, 4u);
  }
  // Sequence 4 now sits in slot 0 everywhere; tear it on two PVs: PV1 still has it.
  corruptSlot(paths[0], 0);
  corruptSlot(paths[2], 0);
  {
    auto pool = VolumePool::open(paths, *loop);
    ASSERT_TRUE(pool.ok()) << pool.error().message;
    EXPECT_EQ((*pool)->metadata().sequence, 5u);
    EXPECT_EQ((*pool)->metadata().volumes.size(), 2u);
  }
}

TEST_F(VolumePoolTest, NewestCopyTornEverywhereFallsBackToPreviousVersion) {
  {
    auto pool = makePool();
    ASSERT_TRUE(pool);
    ASSERT_TRUE(pool->createVolume("a", kExtent, {}).ok());  // sequence 2, slot 0
    ASSERT_TRUE(pool->createVolume("b", kExtent, {}).ok());  // sequence 3, slot 1
  }
  for (const auto& path : paths) corruptSlot(path, 1);
  auto pool = VolumePool::open(paths, *loop);
  ASSERT_TRUE(pool.ok()) << pool.error().message;
  EXPECT_EQ((*pool)->metadata().sequence, 2u);
  ASSERT_EQ((*pool)->metadata().volumes.size(), 1u);
  EXPECT_EQ((*pool)->metadata().volumes[0].name, "a");
  // The next commit overwrites the torn slot.
  ASSERT_TRUE((*pool)->createVolume("c", kExtent, {}).ok());
  auto reopened = VolumePool::open(paths, *loop);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->metadata().sequence, 3u);
}

TEST_F(VolumePoolTest, ClearErrors) {
  {
    auto pool = makePool();
    ASSERT_TRUE(pool);
    auto tooBig = pool->createVolume("huge", 25 * kExtent, {});
    ASSERT_FALSE(tooBig.ok());
    EXPECT_EQ(tooBig.error().message, "not enough free space: need 25 extents, 24 free");
    ASSERT_TRUE(pool->createVolume("x", kExtent, {}).ok());
    EXPECT_EQ(pool->createVolume("x", kExtent, {}).error().message, "volume 'x' already exists");
    EXPECT_FALSE(pool->createVolume("s", kExtent, VolumeLayout{Layout::Striped, 4, 65536}).ok());
    ASSERT_TRUE(pool->removeVolume("x").ok());
    EXPECT_EQ(pool->freeExtents(), 24u);
  }
  auto again = VolumePool::create("other", {paths[0]}, kExtent, *loop);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().message, paths[0] + ": already a physical volume of pool 'tank'");
  auto missing = VolumePool::open({paths[0], paths[2]}, *loop);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("physical volume 1"), std::string::npos) << missing.error().message;
  EXPECT_NE(missing.error().message.find("is missing"), std::string::npos);
  std::string blank = dir.file("blank");
  ASSERT_EQ(::truncate(paths[0].c_str(), kDataStart + 8 * kExtent), 0);
  FILE* f = std::fopen(blank.c_str(), "w");
  std::fclose(f);
  ASSERT_EQ(::truncate(blank.c_str(), 4 << 20), 0);
  auto notPv = VolumePool::open({blank}, *loop);
  ASSERT_FALSE(notPv.ok());
  EXPECT_EQ(notPv.error().message, blank + ": no strata physical volume label");
}

}  // namespace
}  // namespace strata::storage::volume
