// Pool labels and the double-copy metadata: reopen in any order, fallback to
// the other copy, torn updates, corrupted copies and hostile contents.
#include <gtest/gtest.h>

#include <random>

#include "storage/crc32c.h"
#include "storage/volume/byte_codec.h"
#include "storage/volume/pool_format.h"
#include "volume_test_util.h"

namespace strata::storage::volume {
namespace {

using testing::kMiB;
using testing::VolumeTest;

class PoolMetadataTest : public VolumeTest {};

VolumeCreateOptions linear(uint64_t bytes) {
  VolumeCreateOptions o;
  o.sizeBytes = bytes;
  return o;
}

TEST_F(PoolMetadataTest, CreateThenReopenInAnyOrder) {
  auto pvs = makePvs(3, 12);
  {
    auto pool = createPool(pvs);
    ASSERT_TRUE(pool);
    EXPECT_EQ(pool->record().pvs.size(), 3u);
    // (12 MiB - 4 MiB metadata area) / 1 MiB extents
    EXPECT_EQ(pool->record().pvs[0].extentCount, 8u);
    EXPECT_EQ(pool->freeExtents(), 24u);
    ASSERT_TRUE(pool->createVolume("a", linear(3 * kMiB)).ok());
  }
  auto pool = openPool({pvs[2], pvs[0], pvs[1]});
  ASSERT_TRUE(pool);
  EXPECT_EQ(pool->name(), "tank");
  ASSERT_NE(pool->record().findVolume("a"), nullptr);
  EXPECT_EQ(pool->record().findVolume("a")->sizeBytes, 3 * kMiB);
  EXPECT_EQ(pool->freeExtents(), 21u);
  // create (1) + volume (2)
  EXPECT_EQ(pool->record().sequence, 2u);
}

TEST_F(PoolMetadataTest, CommitsAlternateSlotsAndLabelsIdentifyPvs) {
  auto pvs = makePvs(2, 12);
  auto pool = createPool(pvs);
  ASSERT_TRUE(pool);
  // Sequence 1 went to slot B (1 % 2); slot A is still zeroed.
  auto slotA = peekFile(pvs[0], kPvSlotOffset[0], 4096);
  auto slotB = peekFile(pvs[0], kPvSlotOffset[1], 4096);
  EXPECT_FALSE(decodeMetadataSlot(slotA.data(), slotA.size()).ok());
  auto b = decodeMetadataSlot(slotB.data(), slotB.size());
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(b->sequence, 1u);
  ASSERT_TRUE(pool->createVolume("a", linear(kMiB)).ok());
  slotA = peekFile(pvs[1], kPvSlotOffset[0], kPvSlotSize);
  auto a = decodeMetadataSlot(slotA.data(), slotA.size());
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->sequence, 2u);

  auto labelBytes = peekFile(pvs[1], 0, 4096);
  auto label = decodeLabel(labelBytes.data(), labelBytes.size());
  ASSERT_TRUE(label.ok());
  EXPECT_EQ(label->pvIndex, 1u);
  EXPECT_EQ(label->poolUuid, pool->record().uuid);
  EXPECT_EQ(label->pvUuid, pool->record().pvs[1].uuid);
}

TEST_F(PoolMetadataTest, CorruptNewestCopyOnEveryPvOpensPreviousState) {
  auto pvs = makePvs(2, 12);
  {
    auto pool = createPool(pvs);
    ASSERT_TRUE(pool->createVolume("a", linear(kMiB)).ok());  // sequence 2, slot A
  }
  for (const auto& pv : pvs) pokeFile(pv, kPvSlotOffset[0] + 100, {0xde, 0xad, 0xbe, 0xef});
  auto pool = openPool(pvs);
  ASSERT_TRUE(pool);
  EXPECT_EQ(pool->record().findVolume("a"), nullptr);  // state of sequence 1
  // Reopening rewrote the metadata as sequence 2 again (stale PVs are refreshed).
  EXPECT_GE(pool->record().sequence, 1u);
}

TEST_F(PoolMetadataTest, CorruptCopyOnOnePvUsesTheOthersAndRepairs) {
  auto pvs = makePvs(2, 12);
  {
    auto pool = createPool(pvs);
    ASSERT_TRUE(pool->createVolume("a", linear(kMiB)).ok());
  }
  pokeFile(pvs[0], kPvSlotOffset[0] + 70, {1, 2, 3});
  {
    auto pool = openPool(pvs);
    ASSERT_TRUE(pool);
    EXPECT_NE(pool->record().findVolume("a"), nullptr);
    EXPECT_EQ(pool->record().sequence, 3u);  // rewritten to refresh the stale PV
  }
  // PV 0 alone now opens the newest state.
  auto pool = Pool::open({pvs[0]}, {.readOnly = true}, *loop);
  ASSERT_TRUE(pool.ok()) << pool.error().message;
  EXPECT_NE((*pool)->record().findVolume("a"), nullptr);
}

TEST_F(PoolMetadataTest, BothCopiesCorruptIsAClearError) {
  auto pvs = makePvs(2, 12);
  { createPool(pvs); }
  for (const auto& pv : pvs) {
    pokeFile(pv, kPvSlotOffset[0] + 10, {9, 9, 9, 9});
    pokeFile(pv, kPvSlotOffset[1] + 10, {9, 9, 9, 9});
  }
  auto pool = Pool::open(pvs, {}, *loop);
  ASSERT_FALSE(pool.ok());
  EXPECT_NE(pool.error().message.find("no valid copy of the pool metadata"), std::string::npos)
      << pool.error().message;
  EXPECT_NE(pool.error().message.find("checksum"), std::string::npos) << pool.error().message;
}

TEST_F(PoolMetadataTest, TornUpdateOpensOldOrNewState) {
  auto pvs = makePvs(2, 12);
  std::vector<uint8_t> newSlot;
  {
    auto pool = createPool(pvs);
    ASSERT_TRUE(pool->createVolume("old", linear(kMiB)).ok());  // sequence 2 in slot A
    ASSERT_TRUE(pool->createVolume("new", linear(kMiB)).ok());  // sequence 3 in slot B
    newSlot = peekFile(pvs[0], kPvSlotOffset[1], 4096);
  }
  // Simulate the commit of sequence 3 tearing on both PVs: only the first
  // half of it landed over what slot B held before (sequence 1).
  size_t used = 64 + loadLe32(&newSlot[24]);
  ASSERT_LT(used, 4096u);
  for (const auto& pv : pvs) {
    std::vector<uint8_t> garbage(4096, 0x5a);
    pokeFile(pv, kPvSlotOffset[1], garbage);
    pokeFile(pv, kPvSlotOffset[1], std::vector<uint8_t>(newSlot.begin(), newSlot.begin() + used / 2));
  }
  auto pool = openPool(pvs);
  ASSERT_TRUE(pool);
  EXPECT_NE(pool->record().findVolume("old"), nullptr);
  EXPECT_EQ(pool->record().findVolume("new"), nullptr);
  // Sequence 2's extents: exactly one volume allocated.
  EXPECT_EQ(pool->freeExtents(), 15u);
}

TEST_F(PoolMetadataTest, NotAPvAndMixedPoolsAreRefused) {
  auto pvs = makePvs(2, 12);
  auto other = makePvs(1, 12, "other");
  {
    auto a = createPool({pvs[0]});
    auto b = Pool::create("other", other, {.extentSize = kMiB}, *loop);
    ASSERT_TRUE(b.ok());
  }
  auto notPv = Pool::open({pvs[1]}, {}, *loop);
  ASSERT_FALSE(notPv.ok());
  EXPECT_NE(notPv.error().message.find("not a strata physical volume"), std::string::npos) << notPv.error().message;
  auto mixed = Pool::open({pvs[0], other[0]}, {}, *loop);
  ASSERT_FALSE(mixed.ok());
  EXPECT_NE(mixed.error().message.find("belongs to pool"), std::string::npos) << mixed.error().message;
  // Relabeling needs --force.
  auto again = Pool::create("again", {pvs[0]}, {.extentSize = kMiB}, *loop);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message.find("--force"), std::string::npos);
}

TEST_F(PoolMetadataTest, SecondWriterIsLockedOut) {
  auto pvs = makePvs(1, 12);
  auto pool = createPool(pvs);
  ASSERT_TRUE(pool);
  // flock conflicts between open file descriptions, even in one process.
  auto second = Pool::open(pvs, {.lockWaitMs = 100}, *loop);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message.find("in use"), std::string::npos) << second.error().message;
  auto reader = Pool::open(pvs, {.readOnly = true}, *loop);
  EXPECT_TRUE(reader.ok());
}

TEST_F(PoolMetadataTest, TooSmallPvIsRefused) {
  auto pvs = makePvs(1, 4);
  auto pool = Pool::create("tank", pvs, {.extentSize = kMiB}, *loop);
  ASSERT_FALSE(pool.ok());
  EXPECT_NE(pool.error().message.find("too small"), std::string::npos) << pool.error().message;
}

// --- hostile metadata contents with valid checksums

PoolRecord sampleRecord() {
  PoolRecord r;
  r.uuid = randomUuid();
  r.name = "tank";
  r.extentSize = kMiB;
  r.sequence = 5;
  r.nextVolumeId = 3;
  for (int i = 0; i < 2; ++i) {
    PvRecord pv;
    pv.uuid = randomUuid();
    pv.sizeBytes = 12 * kMiB;
    pv.extentCount = 8;
    r.pvs.push_back(pv);
  }
  VolumeRecord a;
  a.id = 1;
  a.name = "a";
  a.legExtents = 4;
  a.sizeBytes = 4 * kMiB;
  a.legs = {Leg{{{0, 0, 2}, {1, 0, 2}}}};
  r.volumes.push_back(a);
  VolumeRecord b = a;
  b.id = 2;
  b.name = "b";
  b.legs = {Leg{{{0, 2, 4}}}};
  r.volumes.push_back(b);
  return r;
}

std::string decodeError(const PoolRecord& r) {
  auto bytes = encodeMetadataSlot(r);
  if (!bytes) return "encode: " + bytes.error().message;
  auto decoded = decodeMetadataSlot(bytes->data(), bytes->size());
  return decoded.ok() ? "" : decoded.error().message;
}

TEST(PoolFormatTest, ValidRecordRoundTrips) {
  PoolRecord r = sampleRecord();
  auto bytes = encodeMetadataSlot(r);
  ASSERT_TRUE(bytes.ok());
  auto decoded = decodeMetadataSlot(bytes->data(), bytes->size());
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(decoded->volumes.size(), 2u);
  EXPECT_EQ(decoded->volumes[0].legs[0].runs[1].pv, 1u);
  EXPECT_EQ(decoded->sequence, 5u);
}

TEST(PoolFormatTest, OutOfRangeExtentsAreRejected) {
  PoolRecord r = sampleRecord();
  r.volumes[1].legs[0].runs[0] = {0, 6, 4};  // extents 6..9 of an 8-extent PV
  EXPECT_NE(decodeError(r).find("past the end of PV"), std::string::npos) << decodeError(r);
  r = sampleRecord();
  r.volumes[1].legs[0].runs[0] = {0, ~0ull, 4};  // overflowing start
  EXPECT_NE(decodeError(r).find("past the end"), std::string::npos) << decodeError(r);
  r = sampleRecord();
  r.volumes[1].legs[0].runs[0].pv = 7;
  EXPECT_NE(decodeError(r).find("names PV #7"), std::string::npos) << decodeError(r);
}

TEST(PoolFormatTest, OverlappingSegmentsAreRejected) {
  PoolRecord r = sampleRecord();
  r.volumes[1].legs[0].runs[0] = {0, 1, 4};  // overlaps a's extent 1 on PV 0
  EXPECT_NE(decodeError(r).find("overlap"), std::string::npos) << decodeError(r);
}

TEST(PoolFormatTest, InconsistentSizesAndNamesAreRejected) {
  PoolRecord r = sampleRecord();
  r.volumes[0].sizeBytes = 100 * kMiB;
  EXPECT_NE(decodeError(r).find("does not match"), std::string::npos) << decodeError(r);
  r = sampleRecord();
  r.volumes[1].name = "a";
  EXPECT_NE(decodeError(r).find("appears twice"), std::string::npos) << decodeError(r);
  r = sampleRecord();
  r.volumes[1].name = "../etc";
  EXPECT_NE(decodeError(r).find("may hold only"), std::string::npos) << decodeError(r);
  r = sampleRecord();
  r.pvs[0].extentCount = 1000;
  EXPECT_NE(decodeError(r).find("claims 1000 extents"), std::string::npos) << decodeError(r);
  r = sampleRecord();
  r.volumes[0].type = VolumeType::Raid5;  // one leg cannot be raid5
  EXPECT_NE(decodeError(r).find("raid5"), std::string::npos) << decodeError(r);
}

TEST(PoolFormatTest, AbsurdCountsAreRejectedWithoutAllocating) {
  PoolRecord r = sampleRecord();
  auto bytes = encodeMetadataSlot(r);
  ASSERT_TRUE(bytes.ok());
  // The PV count is the u32 after the name (4+4 bytes), extent size (8) and next id (4).
  size_t pvCountAt = 64 + 4 + 4 + 8 + 4;
  (*bytes)[pvCountAt] = 0xff;
  (*bytes)[pvCountAt + 1] = 0xff;
  (*bytes)[pvCountAt + 2] = 0xff;
  (*bytes)[pvCountAt + 3] = 0x7f;
  storeLe32(&(*bytes)[12], 0);
  storeLe32(&(*bytes)[12], crc32c(bytes->data(), bytes->size()));
  auto decoded = decodeMetadataSlot(bytes->data(), bytes->size());
  ASSERT_FALSE(decoded.ok());
  EXPECT_NE(decoded.error().message.find("physical volumes"), std::string::npos) << decoded.error().message;
}

TEST(PoolFormatTest, RandomMutationsWithValidChecksumNeverCrash) {
  PoolRecord r = sampleRecord();
  auto original = encodeMetadataSlot(r);
  ASSERT_TRUE(original.ok());
  std::mt19937 rng(1234);
  int accepted = 0;
  for (int round = 0; round < 5000; ++round) {
    std::vector<uint8_t> bytes = *original;
    int flips = 1 + rng() % 4;
    for (int f = 0; f < flips; ++f) bytes[64 + rng() % (bytes.size() - 64)] = static_cast<uint8_t>(rng());
    storeLe32(&bytes[12], 0);
    storeLe32(&bytes[12], crc32c(bytes.data(), bytes.size()));
    auto decoded = decodeMetadataSlot(bytes.data(), bytes.size());
    if (decoded.ok()) {
      ++accepted;
      EXPECT_TRUE(validatePoolRecord(*decoded).ok());
    } else {
      EXPECT_FALSE(decoded.error().message.empty());
    }
  }
  EXPECT_LT(accepted, 5000);
}

TEST(PoolFormatTest, LabelChecksumAndMagic) {
  PvLabel label{randomUuid(), randomUuid(), 3, 64 * kMiB, kMiB};
  auto bytes = encodeLabel(label);
  auto decoded = decodeLabel(bytes.data(), bytes.size());
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->pvIndex, 3u);
  bytes[40] ^= 1;
  auto bad = decodeLabel(bytes.data(), bytes.size());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("checksum"), std::string::npos);
}

}  // namespace
}  // namespace strata::storage::volume
