// Every non-thin volume type: where bytes land on the PVs (hand-computed),
// byte-exact random I/O across extent and stripe boundaries, resize, rename
// and remove.
#include <gtest/gtest.h>

#include <random>

#include "storage/volume/pool_format.h"
#include "volume_test_util.h"

namespace strata::storage::volume {
namespace {

using testing::kMiB;
using testing::pattern;
using testing::VolumeTest;

constexpr uint64_t kData = kPvDataStart;  // where extent 0 starts in a PV file

class VolumeLayoutTest : public VolumeTest {};

VolumeCreateOptions spec(VolumeType type, uint64_t bytes, uint32_t stripes = 0, uint32_t mirrors = 2) {
  VolumeCreateOptions o;
  o.type = type;
  o.sizeBytes = bytes;
  o.stripes = stripes;
  o.mirrors = mirrors;
  o.stripeSize = 64 << 10;
  return o;
}

TEST_F(VolumeLayoutTest, LinearConcatenatesAcrossPvs) {
  auto pvs = makePvs(3, 12);  // 8 extents each
  auto pool = createPool(pvs);
  auto created = pool->createVolume("lin", spec(VolumeType::Linear, 10 * kMiB));
  ASSERT_TRUE(created.ok()) << created.error().message;
  // PV0 gives extents 0-7, PV1 extents 0-1.
  ASSERT_EQ((*created)->legs[0].runs.size(), 2u);
  auto device = openVolume(*pool, "lin");
  EXPECT_EQ(device->sizeBytes(), 10 * kMiB);
  auto data = pattern(3000, 1);
  writeAt(*device, 8 * kMiB - 1000, data);
  flush(*device);
  EXPECT_EQ(readAt(*device, 8 * kMiB - 1000, 3000), data);
  EXPECT_EQ(peekFile(pvs[0], kData + 8 * kMiB - 1000, 1000), std::vector<uint8_t>(data.begin(), data.begin() + 1000));
  EXPECT_EQ(peekFile(pvs[1], kData, 2000), std::vector<uint8_t>(data.begin() + 1000, data.end()));
  // Past the end is refused.
  std::vector<uint8_t> tail(4096);
  EXPECT_FALSE(readSync(*device, *loop, 10 * kMiB - 2048, tail.data(), tail.size()).ok());
}

TEST_F(VolumeLayoutTest, StripedRotatesChunksOverLegs) {
  auto pvs = makePvs(3, 12);
  auto pool = createPool(pvs);
  ASSERT_TRUE(pool->createVolume("st", spec(VolumeType::Striped, 6 * kMiB)).ok());
  auto device = openVolume(*pool, "st");
  EXPECT_EQ(device->sizeBytes(), 6 * kMiB);
  auto data = pattern(200000, 2);
  writeAt(*device, 4 * 65536 + 100, data);  // chunk 4 = leg 1, row 1
  EXPECT_EQ(readAt(*device, 4 * 65536 + 100, data.size()), data);
  EXPECT_EQ(peekFile(pvs[1], kData + 65536 + 100, 1000), std::vector<uint8_t>(data.begin(), data.begin() + 1000));
  // Chunk 5 (leg 2, row 1) starts 65436 bytes into the write.
  EXPECT_EQ(peekFile(pvs[2], kData + 65536, 500), std::vector<uint8_t>(data.begin() + 65436, data.begin() + 65936));
  // Chunk 6 (leg 0, row 2).
  EXPECT_EQ(peekFile(pvs[0], kData + 2 * 65536, 500),
            std::vector<uint8_t>(data.begin() + 65436 + 65536, data.begin() + 65436 + 65536 + 500));
}

TEST_F(VolumeLayoutTest, MirrorWritesEveryCopy) {
  auto pvs = makePvs(3, 12);
  auto pool = createPool(pvs);
  ASSERT_TRUE(pool->createVolume("m", spec(VolumeType::Mirror, 2 * kMiB, 0, 3)).ok());
  auto device = openVolume(*pool, "m");
  auto data = pattern(100000, 3);
  writeAt(*device, 12345, data);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(peekFile(pvs[i], kData + 12345, data.size()), data) << "copy " << i;
  for (int i = 0; i < 6; ++i) EXPECT_EQ(readAt(*device, 12345, data.size()), data);  // reads rotate over copies
}

TEST_F(VolumeLayoutTest, Raid5PlacesDataAndParityLeftSymmetric) {
  auto pvs = makePvs(3, 12);
  auto pool = createPool(pvs);
  ASSERT_TRUE(pool->createVolume("r5", spec(VolumeType::Raid5, 4 * kMiB)).ok());
  auto device = openVolume(*pool, "r5");
  EXPECT_EQ(device->sizeBytes(), 4 * kMiB);
  auto data = pattern(4 * kMiB, 4);
  writeAt(*device, 0, data);
  // Row 1: parity on leg 1, data chunk 0 on leg 2, chunk 1 on leg 0.
  EXPECT_EQ(peekFile(pvs[2], kData + 65536, 65536),
            std::vector<uint8_t>(data.begin() + 2 * 65536, data.begin() + 3 * 65536));
  EXPECT_EQ(peekFile(pvs[0], kData + 65536, 65536),
            std::vector<uint8_t>(data.begin() + 3 * 65536, data.begin() + 4 * 65536));
  // Parity: the three legs XOR to zero everywhere.
  auto a = peekFile(pvs[0], kData, 2 * kMiB), b = peekFile(pvs[1], kData, 2 * kMiB), c = peekFile(pvs[2], kData, 2 * kMiB);
  size_t bad = 0;
  for (size_t i = 0; i < a.size(); ++i) bad += (a[i] ^ b[i] ^ c[i]) != 0;
  EXPECT_EQ(bad, 0u);
  // Small unaligned writes keep parity.
  auto small = pattern(777, 5);
  writeAt(*device, 3 * 65536 + 4000, small);
  a = peekFile(pvs[0], kData, 2 * kMiB), b = peekFile(pvs[1], kData, 2 * kMiB), c = peekFile(pvs[2], kData, 2 * kMiB);
  for (size_t i = 0; i < a.size(); ++i) bad += (a[i] ^ b[i] ^ c[i]) != 0;
  EXPECT_EQ(bad, 0u);
  std::copy(small.begin(), small.end(), data.begin() + 3 * 65536 + 4000);
  EXPECT_EQ(readAt(*device, 0, data.size()), data);
}

TEST_F(VolumeLayoutTest, Raid10StripesOverMirrorPairs) {
  auto pvs = makePvs(4, 12);
  auto pool = createPool(pvs);
  ASSERT_TRUE(pool->createVolume("r10", spec(VolumeType::Raid10, 4 * kMiB, 2, 2)).ok());
  auto device = openVolume(*pool, "r10");
  EXPECT_EQ(device->sizeBytes(), 4 * kMiB);
  auto data = pattern(1000, 6);
  writeAt(*device, 3 * 65536 + 5, data);  // chunk 3: set 1 (legs 2, 3), row 1
  EXPECT_EQ(peekFile(pvs[2], kData + 65536 + 5, 1000), data);
  EXPECT_EQ(peekFile(pvs[3], kData + 65536 + 5, 1000), data);
  EXPECT_EQ(peekFile(pvs[0], kData + 65536 + 5, 1000), std::vector<uint8_t>(1000, 0));
  EXPECT_EQ(readAt(*device, 3 * 65536 + 5, 1000), data);
}

// Random writes of random sizes against a shadow copy, then a full compare.
class RandomIoTest : public VolumeLayoutTest, public ::testing::WithParamInterface<VolumeType> {};

TEST_P(RandomIoTest, ByteExactAcrossBoundaries) {
  auto pvs = makePvs(4, 12);
  auto pool = createPool(pvs);
  VolumeType type = GetParam();
  uint32_t stripes = type == VolumeType::Raid10 ? 2 : (type == VolumeType::Raid5 ? 3 : 0);
  ASSERT_TRUE(pool->createVolume("v", spec(type, 6 * kMiB, stripes, 2)).ok());
  auto device = openVolume(*pool, "v");
  uint64_t size = device->sizeBytes();
  std::vector<uint8_t> shadow(size, 0);
  std::mt19937 rng(static_cast<uint32_t>(type) + 77);
  for (int i = 0; i < 60; ++i) {
    uint64_t length = 1 + rng() % (300 << 10);
    uint64_t offset = rng() % (size - length);
    if (i % 3 == 0) offset = (1 + rng() % (size / kMiB - 1)) * kMiB - rng() % 4096;  // straddle an extent boundary
    if (offset + length > size) offset = size - length;
    auto data = pattern(length, i + 100);
    // Issue in two iovecs to exercise splitting.
    size_t cut = length / 3;
    int r = runUntilComplete(*loop, [&](IoCompletion done) {
      device->writev(offset, {iovec{data.data(), cut}, iovec{data.data() + cut, length - cut}}, std::move(done));
    });
    ASSERT_EQ(r, 0);
    std::copy(data.begin(), data.end(), shadow.begin() + offset);
  }
  flush(*device);
  EXPECT_TRUE(readAt(*device, 0, size) == shadow);
  // Reopen from disk and compare again.
  device.reset();
  pool.reset();
  pool = openPool(pvs);
  device = openVolume(*pool, "v");
  EXPECT_TRUE(readAt(*device, 0, size) == shadow);
}

INSTANTIATE_TEST_SUITE_P(AllLayouts, RandomIoTest,
                         ::testing::Values(VolumeType::Linear, VolumeType::Striped, VolumeType::Mirror,
                                           VolumeType::Raid5, VolumeType::Raid10),
                         [](const auto& info) { return std::string(volumeTypeName(info.param)); });

TEST_F(VolumeLayoutTest, ResizeGrowKeepsDataAndZeroesNewSpace) {
  auto pvs = makePvs(3, 12);
  auto pool = createPool(pvs);
  for (auto type : {VolumeType::Linear, VolumeType::Striped, VolumeType::Raid5}) {
    std::string name = volumeTypeName(type);
    uint32_t stripes = type == VolumeType::Raid5 ? 2 : 3;
    ASSERT_TRUE(pool->createVolume(name, spec(type, 1, stripes)).ok());
    auto device = openVolume(*pool, name);
    uint64_t before = device->sizeBytes();
    auto data = pattern(before, 9);
    writeAt(*device, 0, data);
    ASSERT_TRUE(pool->resizeVolume(name, before * 2, false).ok());
    device = openVolume(*pool, name);
    ASSERT_EQ(device->sizeBytes(), before * 2) << name;
    EXPECT_TRUE(readAt(*device, 0, before) == data) << name;
    EXPECT_TRUE(readAt(*device, before, before) == std::vector<uint8_t>(before, 0)) << name;
    auto more = pattern(before, 10);
    writeAt(*device, before, more);
    EXPECT_TRUE(readAt(*device, before, before) == more) << name;
  }
}

TEST_F(VolumeLayoutTest, ShrinkNeedsForceAndFreesExtents) {
  auto pvs = makePvs(2, 12);
  auto pool = createPool(pvs);
  ASSERT_TRUE(pool->createVolume("v", spec(VolumeType::Linear, 6 * kMiB)).ok());
  auto data = pattern(2 * kMiB, 11);
  {
    auto device = openVolume(*pool, "v");
    writeAt(*device, 0, data);
  }
  auto refused = pool->resizeVolume("v", 2 * kMiB, false);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("--force"), std::string::npos);
  EXPECT_EQ(pool->freeExtents(), 10u);
  ASSERT_TRUE(pool->resizeVolume("v", 2 * kMiB, true).ok());
  EXPECT_EQ(pool->freeExtents(), 14u);
  pool.reset();
  pool = openPool(pvs);
  auto device = openVolume(*pool, "v");
  EXPECT_EQ(device->sizeBytes(), 2 * kMiB);
  EXPECT_TRUE(readAt(*device, 0, 2 * kMiB) == data);
}

TEST_F(VolumeLayoutTest, RenameRemoveAndBadRequests) {
  auto pvs = makePvs(2, 12);
  auto pool = createPool(pvs);
  ASSERT_TRUE(pool->createVolume("a", spec(VolumeType::Linear, 3 * kMiB)).ok());
  ASSERT_TRUE(pool->createVolume("b", spec(VolumeType::Linear, 3 * kMiB)).ok());
  EXPECT_FALSE(pool->renameVolume("a", "b").ok());
  EXPECT_FALSE(pool->renameVolume("a", "bad/name").ok());
  ASSERT_TRUE(pool->renameVolume("a", "c").ok());
  EXPECT_EQ(pool->record().findVolume("a"), nullptr);
  ASSERT_TRUE(pool->removeVolume("c").ok());
  EXPECT_EQ(pool->freeExtents(), 13u);
  EXPECT_FALSE(pool->removeVolume("c").ok());
  // Impossible layouts get reasons.
  auto tooBig = pool->createVolume("huge", spec(VolumeType::Linear, 100 * kMiB));
  ASSERT_FALSE(tooBig.ok());
  EXPECT_NE(tooBig.error().message.find("free extents"), std::string::npos) << tooBig.error().message;
  auto raid5 = pool->createVolume("r5", spec(VolumeType::Raid5, kMiB, 2));
  ASSERT_FALSE(raid5.ok());
  EXPECT_NE(raid5.error().message.find("one PV each"), std::string::npos) << raid5.error().message;
  auto mirror = pool->createVolume("m", spec(VolumeType::Mirror, kMiB, 0, 1));
  ASSERT_FALSE(mirror.ok());
  EXPECT_FALSE(pool->createVolume("", spec(VolumeType::Linear, kMiB)).ok());
  EXPECT_FALSE(pool->createVolume("z", spec(VolumeType::Linear, 0)).ok());
  auto stripe = spec(VolumeType::Striped, kMiB, 2);
  stripe.stripeSize = 3000;
  EXPECT_FALSE(pool->createVolume("s", stripe).ok());
}

}  // namespace
}  // namespace strata::storage::volume
