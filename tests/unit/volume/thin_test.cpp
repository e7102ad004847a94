// Thin provisioning: allocate-on-write, snapshots and clones sharing chunks,
// space accounting, ENOSPC, journal replay and checkpoints, orphan cleanup,
// and corrupted thin metadata.
#include <fmt/core.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <array>

#include "storage/crc32c.h"
#include "storage/volume/byte_codec.h"

#include "storage/volume/pool_format.h"
#include "storage/volume/thin_metadata.h"
#include "storage/volume/thin_pool.h"
#include "volume_test_util.h"

namespace strata::storage::volume {
namespace {

using testing::kMiB;
using testing::pattern;
using testing::VolumeTest;

constexpr uint64_t kChunk = 64 << 10;

class ThinTest : public VolumeTest {
 protected:
  std::shared_ptr<Pool> makeThinPool(uint64_t dataBytes, uint64_t metaBytes = 0, int pvCount = 2, uint64_t pvMiB = 24) {
    pvs = makePvs(pvCount, pvMiB);
    auto pool = createPool(pvs);
    VolumeCreateOptions tp;
    tp.type = VolumeType::ThinPool;
    tp.sizeBytes = dataBytes;
    tp.chunkSize = kChunk;
    tp.metadataSize = metaBytes;
    auto created = pool->createVolume("tp", tp);
    EXPECT_TRUE(created.ok()) << (created.ok() ? "" : created.error().message);
    return pool;
  }
  void makeThin(Pool& pool, const std::string& name, uint64_t bytes) {
    VolumeCreateOptions t;
    t.type = VolumeType::Thin;
    t.sizeBytes = bytes;
    t.thinPool = "tp";
    auto created = pool.createVolume(name, t);
    ASSERT_TRUE(created.ok()) << created.error().message;
  }
  uint64_t used(Pool& pool, const std::string& name) {
    auto u = pool.usage(name);
    EXPECT_TRUE(u.ok()) << (u.ok() ? "" : u.error().message);
    return u.ok() ? u->usedBytes : ~0ull;
  }
  // PV file and offset of a byte of a (hidden) linear volume.
  std::pair<std::string, uint64_t> locate(Pool& pool, const std::string& volume, uint64_t offset) {
    const VolumeRecord* v = pool.record().findVolume(volume);
    uint64_t at = 0;
    for (const auto& run : v->legs[0].runs) {
      if (offset < at + run.count * kMiB)
        return {pvs[run.pv], kPvDataStart + run.start * kMiB + (offset - at)};
      at += run.count * kMiB;
    }
    return {"", 0};
  }
  std::vector<std::string> pvs;
};

TEST_F(ThinTest, AllocatesOnWriteAndPersistsAfterFlush) {
  auto pool = makeThinPool(16 * kMiB);
  makeThin(*pool, "t", 64 * kMiB);  // over-provisioned 4x
  auto data = pattern(100 << 10, 1);
  {
    auto device = openVolume(*pool, "t");
    ASSERT_EQ(device->sizeBytes(), 64 * kMiB);
    EXPECT_TRUE(readAt(*device, 0, kMiB) == std::vector<uint8_t>(kMiB, 0));
    EXPECT_EQ(used(*pool, "t"), 0u);
    writeAt(*device, 10 * kMiB, data);  // chunks 160 and 161
    EXPECT_EQ(used(*pool, "t"), 2 * kChunk);
    EXPECT_EQ(used(*pool, "tp"), 2 * kChunk);
    writeAt(*device, 60 * kMiB + 1, pattern(10, 2));  // one more chunk, partial
    EXPECT_EQ(used(*pool, "t"), 3 * kChunk);
    flush(*device);
  }
  pool.reset();
  pool = openPool(pvs);
  auto device = openVolume(*pool, "t");
  EXPECT_EQ(used(*pool, "t"), 3 * kChunk);
  EXPECT_TRUE(readAt(*device, 10 * kMiB, data.size()) == data);
  auto partial = readAt(*device, 60 * kMiB, kChunk);
  EXPECT_EQ(partial[0], 0);
  EXPECT_TRUE(std::vector<uint8_t>(partial.begin() + 1, partial.begin() + 11) == pattern(10, 2));
  EXPECT_EQ(partial[11], 0);
}

TEST_F(ThinTest, UnflushedMappingsAreNotDurable) {
  auto pool = makeThinPool(16 * kMiB);
  makeThin(*pool, "t", 16 * kMiB);
  {
    auto device = openVolume(*pool, "t");
    writeAt(*device, 0, pattern(kChunk, 3));
    flush(*device);
    writeAt(*device, kChunk, pattern(kChunk, 4));  // acknowledged, never flushed
  }
  pool.reset();
  pool = openPool(pvs);
  auto device = openVolume(*pool, "t");
  EXPECT_TRUE(readAt(*device, 0, kChunk) == pattern(kChunk, 3));
  EXPECT_TRUE(readAt(*device, kChunk, kChunk) == std::vector<uint8_t>(kChunk, 0));
  EXPECT_EQ(used(*pool, "tp"), kChunk);
}

TEST_F(ThinTest, SnapshotIsIsolatedAndCloneIsWritable) {
  auto pool = makeThinPool(16 * kMiB);
  makeThin(*pool, "origin", 8 * kMiB);
  auto a = pattern(4 * kChunk, 5);
  {
    auto device = openVolume(*pool, "origin");
    writeAt(*device, 0, a);
    flush(*device);
  }
  ASSERT_TRUE(pool->snapshotVolume("origin", "snap", false).ok());
  EXPECT_EQ(used(*pool, "tp"), 4 * kChunk);  // shared
  EXPECT_EQ(used(*pool, "snap"), 4 * kChunk);
  auto origin = openVolume(*pool, "origin");
  auto snap = openVolume(*pool, "snap");
  EXPECT_TRUE(snap->readOnly());
  std::vector<uint8_t> one(512, 1);
  EXPECT_FALSE(writeSync(*snap, *loop, 0, one.data(), one.size()).ok());
  // A partial overwrite of a shared chunk copies it first.
  auto b = pattern(1000, 6);
  writeAt(*origin, kChunk + 100, b);
  flush(*origin);
  EXPECT_EQ(used(*pool, "tp"), 5 * kChunk);
  auto expected = a;
  std::copy(b.begin(), b.end(), expected.begin() + kChunk + 100);
  EXPECT_TRUE(readAt(*origin, 0, 4 * kChunk) == expected);
  EXPECT_TRUE(readAt(*snap, 0, 4 * kChunk) == a);

  ASSERT_TRUE(pool->snapshotVolume("origin", "clone", true).ok());
  auto clone = openVolume(*pool, "clone");
  EXPECT_FALSE(clone->readOnly());
  auto c = pattern(kChunk, 7);
  writeAt(*clone, 0, c);  // full-chunk overwrite: no copy needed
  writeAt(*clone, 5 * kChunk, c);  // fresh chunk
  flush(*clone);
  EXPECT_TRUE(readAt(*origin, 0, 4 * kChunk) == expected);
  EXPECT_TRUE(readAt(*snap, 0, 4 * kChunk) == a);
  EXPECT_TRUE(readAt(*clone, 0, kChunk) == c);
  EXPECT_EQ(used(*pool, "clone"), 5 * kChunk);
  EXPECT_EQ(used(*pool, "tp"), 7 * kChunk);

  // Everything survives a reopen.
  origin.reset();
  snap.reset();
  clone.reset();
  pool.reset();
  pool = openPool(pvs);
  EXPECT_EQ(used(*pool, "tp"), 7 * kChunk);
  EXPECT_TRUE(readAt(*openVolume(*pool, "snap"), 0, 4 * kChunk) == a);
  EXPECT_TRUE(readAt(*openVolume(*pool, "origin"), 0, 4 * kChunk) == expected);
  EXPECT_TRUE(readAt(*openVolume(*pool, "clone"), 5 * kChunk, kChunk) == c);

  // Removing the origin keeps what the others share: its copied chunk 1 is
  // also the clone's.
  ASSERT_TRUE(pool->removeVolume("origin").ok());
  EXPECT_EQ(used(*pool, "tp"), 7 * kChunk);
  EXPECT_TRUE(readAt(*openVolume(*pool, "snap"), 0, 4 * kChunk) == a);
  // The snapshot alone held the original chunks 0 and 1.
  ASSERT_TRUE(pool->removeVolume("snap").ok());
  EXPECT_EQ(used(*pool, "tp"), 5 * kChunk);
  ASSERT_TRUE(pool->removeVolume("clone").ok());
  EXPECT_EQ(used(*pool, "tp"), 0u);
  EXPECT_FALSE(pool->snapshotVolume("tp", "x", false).ok());
}

TEST_F(ThinTest, OutOfSpaceIsEnospcAndNeverCorrupts) {
  auto pool = makeThinPool(4 * kMiB);  // 64 chunks
  makeThin(*pool, "t", 16 * kMiB);
  auto device = openVolume(*pool, "t");
  auto full = pattern(4 * kMiB, 8);
  writeAt(*device, 0, full);
  flush(*device);
  EXPECT_EQ(used(*pool, "tp"), 4 * kMiB);
  std::vector<uint8_t> more(4096, 0xab);
  int r = runUntilComplete(*loop, [&](IoCompletion done) {
    device->writev(8 * kMiB, {iovec{more.data(), more.size()}}, std::move(done));
  });
  EXPECT_EQ(r, -ENOSPC);
  // Mapped chunks are still writable in place.
  writeAt(*device, 4096, more);
  std::copy(more.begin(), more.end(), full.begin() + 4096);
  EXPECT_TRUE(readAt(*device, 0, 4 * kMiB) == full);
  EXPECT_TRUE(readAt(*device, 8 * kMiB, 4096) == std::vector<uint8_t>(4096, 0));
  // A snapshot's copy-on-write needs space too.
  flush(*device);
  device.reset();
  ASSERT_TRUE(pool->snapshotVolume("t", "s", false).ok());
  device = openVolume(*pool, "t");
  r = runUntilComplete(*loop, [&](IoCompletion done) {
    device->writev(0, {iovec{more.data(), more.size()}}, std::move(done));
  });
  EXPECT_EQ(r, -ENOSPC);
  EXPECT_TRUE(readAt(*device, 0, 4 * kMiB) == full);
  // Growing the pool makes room.
  ASSERT_TRUE(pool->resizeVolume("tp", 8 * kMiB, false).ok());
  writeAt(*device, 8 * kMiB, more);
  EXPECT_TRUE(readAt(*device, 8 * kMiB, 4096) == more);
  EXPECT_TRUE(readAt(*openVolume(*pool, "s"), 0, 4 * kMiB) == full);
}

TEST_F(ThinTest, DiscardFreesChunksAfterTheNextFlush) {
  auto pool = makeThinPool(4 * kMiB);
  makeThin(*pool, "t", 8 * kMiB);
  auto device = openVolume(*pool, "t");
  writeAt(*device, 0, pattern(4 * kMiB, 9));
  flush(*device);
  ASSERT_TRUE(discardSync(*device, *loop, kMiB, kMiB).ok());
  EXPECT_TRUE(readAt(*device, kMiB, kMiB) == std::vector<uint8_t>(kMiB, 0));
  EXPECT_EQ(used(*pool, "t"), 3 * kMiB);
  // Not reusable until the discard is durable.
  std::vector<uint8_t> more(kChunk, 0xcd);
  int r = runUntilComplete(*loop, [&](IoCompletion done) {
    device->writev(6 * kMiB, {iovec{more.data(), more.size()}}, std::move(done));
  });
  EXPECT_EQ(r, -ENOSPC);
  flush(*device);
  writeAt(*device, 6 * kMiB, more);
  EXPECT_TRUE(readAt(*device, 6 * kMiB, kChunk) == more);
  // write-zeroes of whole chunks unmaps; of part of a chunk writes zeroes.
  ASSERT_TRUE(writeZeroesSync(*device, *loop, 0, kChunk + 10).ok());
  auto head = readAt(*device, 0, 2 * kChunk);
  EXPECT_TRUE(std::vector<uint8_t>(head.begin(), head.begin() + kChunk + 10) == std::vector<uint8_t>(kChunk + 10, 0));
  EXPECT_EQ(head[kChunk + 10], pattern(4 * kMiB, 9)[kChunk + 10]);
}

// A guest may discard or zero its whole disk in one request: the host must
// walk the mapping in ranges, not hold an object per chunk of the request.
TEST_F(ThinTest, DiscardAndWriteZeroesOfAHugeVolumeUseBoundedMemory) {
  constexpr uint64_t kTiB = 1ull << 40;
  constexpr uint64_t kBound = 4 * kMiB;
  auto pool = makeThinPool(16 * kMiB);
  makeThin(*pool, "t", kTiB);  // 16 Mi chunks of 64 KiB
  const std::vector<uint64_t> offsets = {0, 3 * kChunk, kTiB / 2 + kChunk - 100, kTiB - kChunk};
  auto device = openVolume(*pool, "t");
  auto fill = [&] {
    for (size_t i = 0; i < offsets.size(); ++i) writeAt(*device, offsets[i], pattern(kChunk / 2, 60 + i));
    flush(*device);
  };
  fill();
  ASSERT_EQ(used(*pool, "t"), 5 * kChunk);  // the one at 512 GiB + 100 spans two chunks

  auto discarded = testing::runMeasuringHeap(*loop, [&](IoCompletion done) { device->discard(0, kTiB, std::move(done)); });
  EXPECT_EQ(discarded.result, 0);
  std::cout << "discard of 1 TiB: peak heap growth " << discarded.peakHeapGrowth << " bytes\n";
  EXPECT_LT(discarded.peakHeapGrowth, kBound);
  EXPECT_EQ(used(*pool, "t"), 0u);
  for (uint64_t offset : offsets) EXPECT_TRUE(readAt(*device, offset, kChunk / 2) == std::vector<uint8_t>(kChunk / 2, 0));
  flush(*device);

  // Write-zeroes with partial chunks at both ends: those keep their other bytes.
  fill();
  auto zeroed = testing::runMeasuringHeap(
      *loop, [&](IoCompletion done) { device->writeZeroes(4096, kTiB - 8192, std::move(done)); });
  EXPECT_EQ(zeroed.result, 0);
  std::cout << "write-zeroes of 1 TiB: peak heap growth " << zeroed.peakHeapGrowth << " bytes\n";
  EXPECT_LT(zeroed.peakHeapGrowth, kBound);
  EXPECT_EQ(used(*pool, "t"), 2 * kChunk);  // the partial first and last chunks stay mapped
  auto first = readAt(*device, 0, kChunk);
  auto firstWritten = pattern(kChunk / 2, 60);
  EXPECT_TRUE(std::equal(first.begin(), first.begin() + 4096, firstWritten.begin()));
  EXPECT_TRUE(std::all_of(first.begin() + 4096, first.end(), [](uint8_t b) { return b == 0; }));
  for (uint64_t offset : {offsets[1], offsets[2]})
    EXPECT_TRUE(readAt(*device, offset, kChunk / 2) == std::vector<uint8_t>(kChunk / 2, 0));
  flush(*device);
  device.reset();

  // The unmapping was journaled: it survives a reopen.
  pool.reset();
  pool = openPool(pvs);
  EXPECT_EQ(used(*pool, "t"), 2 * kChunk);
  device = openVolume(*pool, "t");
  EXPECT_TRUE(readAt(*device, offsets[2], kChunk / 2) == std::vector<uint8_t>(kChunk / 2, 0));
  auto last = readAt(*device, kTiB - kChunk, kChunk);
  EXPECT_TRUE(std::all_of(last.begin(), last.end() - 4096, [](uint8_t b) { return b == 0; }));
}

// A discard that meets a chunk whose allocation is still in flight waits for
// it and unmaps it after, like a per-chunk discard would.
TEST_F(ThinTest, RangeDiscardWaitsForAChunkBeingAllocated) {
  auto pool = makeThinPool(16 * kMiB);
  makeThin(*pool, "t", 64 * kMiB);
  auto device = openVolume(*pool, "t");
  writeAt(*device, 0, pattern(kChunk, 70));
  auto data = pattern(kChunk, 71);
  int written = 1, discarded = 1;
  device->writev(5 * kChunk, {iovec{data.data(), data.size()}}, [&](int r) { written = r; });
  device->discard(0, 64 * kMiB, [&](int r) { discarded = r; });
  while (written > 0 || discarded > 0) loop->runOnce(-1);
  EXPECT_EQ(written, 0);
  EXPECT_EQ(discarded, 0);
  EXPECT_EQ(used(*pool, "t"), 0u);
  EXPECT_TRUE(readAt(*device, 5 * kChunk, kChunk) == std::vector<uint8_t>(kChunk, 0));
}

TEST_F(ThinTest, JournalRollsOverIntoCheckpoints) {
  auto pool = makeThinPool(16 * kMiB, kMiB);  // a 1 MiB metadata volume: 256 KiB journal
  makeThin(*pool, "t", 16 * kMiB);
  std::vector<uint8_t> expected(16 * kMiB, 0);
  {
    auto device = openVolume(*pool, "t");
    // 200 flushes of one new chunk each: 200 journal records of 4 KiB > 256 KiB.
    for (int i = 0; i < 200; ++i) {
      uint64_t offset = static_cast<uint64_t>((i * 37) % 256) * kChunk + 512;
      auto data = pattern(1000, 500 + i);
      writeAt(*device, offset, data);
      std::copy(data.begin(), data.end(), expected.begin() + offset);
      flush(*device);
    }
    EXPECT_TRUE(readAt(*device, 0, 16 * kMiB) == expected);
  }
  pool.reset();
  pool = openPool(pvs);
  EXPECT_TRUE(readAt(*openVolume(*pool, "t"), 0, 16 * kMiB) == expected);
  EXPECT_EQ(used(*pool, "t"), 200 * kChunk);
  auto usage = pool->usage("tp");
  ASSERT_TRUE(usage.ok());
  EXPECT_GT(usage->metadataUsedBytes, 0u);
  EXPECT_LE(usage->metadataUsedBytes, usage->metadataSizeBytes);
}

TEST_F(ThinTest, OrphanedDeviceIsDroppedOnOpen) {
  auto pool = makeThinPool(8 * kMiB);
  makeThin(*pool, "t", 8 * kMiB);
  {
    auto device = openVolume(*pool, "t");
    writeAt(*device, 0, pattern(2 * kChunk, 10));
    flush(*device);
    // A snapshot whose pool-record commit never happened (crash in between).
    auto engine = pool->thinEngine(pool->record().findVolume("tp")->id);
    ASSERT_TRUE(engine.ok());
    ASSERT_TRUE((*engine)->snapshotDevice(999, pool->record().findVolume("t")->id).ok());
    auto privateWrite = (*engine)->openThin(999, 8 * kMiB, false);
    writeAt(*privateWrite, 4 * kChunk, pattern(kChunk, 11));
    flush(*privateWrite);
    EXPECT_EQ((*engine)->usedChunks(), 3u);
  }
  pool.reset();
  pool = openPool(pvs);
  EXPECT_EQ(used(*pool, "tp"), 2 * kChunk);
  EXPECT_TRUE(readAt(*openVolume(*pool, "t"), 0, 2 * kChunk) == pattern(2 * kChunk, 10));
}

TEST_F(ThinTest, CorruptThinMetadataIsAClearErrorOrFallsBack) {
  auto pool = makeThinPool(8 * kMiB);
  makeThin(*pool, "t", 8 * kMiB);
  {
    auto device = openVolume(*pool, "t");
    writeAt(*device, 0, pattern(kChunk, 12));
    flush(*device);
    writeAt(*device, kChunk, pattern(kChunk, 13));
    flush(*device);
  }
  pool.reset();
  pool = openPool(pvs);
  auto layout = ThinMetaLayout::compute(pool->record().findVolume("tp_tmeta")->sizeBytes);
  ASSERT_TRUE(layout.ok());
  // Tear the second journal record: the first still applies.
  auto [pv, journal] = locate(*pool, "tp_tmeta", layout->journalOffset + 4096 + 40);
  pool.reset();
  pokeFile(pv, journal, {0xff, 0xff});
  pool = openPool(pvs);
  auto device = openVolume(*pool, "t");
  EXPECT_TRUE(readAt(*device, 0, kChunk) == pattern(kChunk, 12));
  EXPECT_TRUE(readAt(*device, kChunk, kChunk) == std::vector<uint8_t>(kChunk, 0));
  device.reset();
  // Both superblocks gone: refuse with a reason, do not guess.
  auto [pv0, super0] = locate(*pool, "tp_tmeta", 0);
  pool.reset();
  pokeFile(pv0, super0 + 20, {1, 2, 3, 4});
  pokeFile(pv0, super0 + 4096 + 20, {1, 2, 3, 4});
  pool = openPool(pvs);
  auto refused = pool->openVolume("t");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("no valid superblock"), std::string::npos) << refused.error().message;
}

TEST(ThinMetadataFormatTest, HostileCheckpointsAndRecordsAreRejected) {
  ThinDevices devices;
  devices[1].set(5, 7);
  devices[1].set(6, 8);
  devices[2].set(0, 100);
  auto bytes = encodeThinCheckpoint(3, devices);
  auto decoded = decodeThinCheckpoint(bytes.data(), bytes.size(), 3, 101);
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ((*decoded)[1].get(6), 8u);
  EXPECT_EQ((*decoded)[2].get(0), 100u);
  // A data volume too small for chunk 100.
  auto small = decodeThinCheckpoint(bytes.data(), bytes.size(), 3, 50);
  ASSERT_FALSE(small.ok());
  EXPECT_NE(small.error().message.find("outside the data volume"), std::string::npos);
  EXPECT_FALSE(decodeThinCheckpoint(bytes.data(), bytes.size(), 4, 101).ok());  // wrong generation
  EXPECT_FALSE(decodeThinCheckpoint(bytes.data(), 20, 3, 101).ok());            // truncated

  auto record = encodeThinJournalRecord(3, 1, {{ThinOp::Map, 1, 9, 12}});
  EXPECT_TRUE(decodeThinJournalRecord(record.data(), record.size(), 3, 1).ok());
  EXPECT_FALSE(decodeThinJournalRecord(record.data(), record.size(), 3, 2).ok());  // out of sequence
  EXPECT_FALSE(decodeThinJournalRecord(record.data(), record.size(), 2, 1).ok());  // stale generation
  record[40] ^= 1;
  EXPECT_FALSE(decodeThinJournalRecord(record.data(), record.size(), 3, 1).ok());
  ThinDevices applied;
  EXPECT_FALSE(applyThinOp(applied, {ThinOp::Map, 1, 0, 5000}, 100).ok());
  EXPECT_FALSE(applyThinOp(applied, {static_cast<ThinOp::Kind>(77), 1, 0, 0}, 100).ok());
}

// Checkpoint bytes as encodeThinCheckpoint lays them out, but with any runs:
// per device its id and (vchunk, data chunk, count) runs.
std::vector<uint8_t> craftCheckpoint(uint64_t generation,
                                     const std::vector<std::pair<uint32_t, std::vector<std::array<uint64_t, 3>>>>& devices) {
  ByteWriter w;
  w.raw("STRATACP", 8);
  w.u64(generation);
  w.u32(static_cast<uint32_t>(devices.size()));
  for (const auto& [id, runs] : devices) {
    w.u32(id);
    w.u32(static_cast<uint32_t>(runs.size()));
    for (const auto& run : runs) {
      w.u64(run[0]);
      w.u32(static_cast<uint32_t>(run[1]));
      w.u32(static_cast<uint32_t>(run[2]));
    }
  }
  auto bytes = std::move(w.bytes());
  bytes.resize((bytes.size() + 4095) / 4096 * 4096, 0);
  return bytes;
}

// Crafted metadata must not make the loader allocate more than the pool's
// data volume can justify: a run of 16 bytes may name up to every data chunk,
// and a journal op of 17 bytes may copy a whole device.
TEST(ThinMetadataFormatTest, CraftedMetadataCannotExpandBeyondTheDataVolume) {
  constexpr uint64_t kChunks = 256;
  // Every run maps the whole data volume again, at another virtual offset.
  std::vector<std::array<uint64_t, 3>> repeated;
  for (uint64_t i = 0; i < 64; ++i) repeated.push_back({i * kChunks, 0, kChunks});
  auto bytes = craftCheckpoint(3, {{1, repeated}});
  auto decoded = decodeThinCheckpoint(bytes.data(), bytes.size(), 3, kChunks);
  ASSERT_FALSE(decoded.ok());
  EXPECT_NE(decoded.error().message.find("device 1 maps more than the 256 chunks"), std::string::npos)
      << decoded.error().message;
  // The same device twice, and runs out of order, are not what the encoder writes.
  bytes = craftCheckpoint(3, {{1, {{0, 0, 1}}}, {1, {{1, 1, 1}}}});
  EXPECT_FALSE(decodeThinCheckpoint(bytes.data(), bytes.size(), 3, kChunks).ok());
  bytes = craftCheckpoint(3, {{1, {{10, 0, 5}, {12, 5, 1}}}});
  EXPECT_FALSE(decodeThinCheckpoint(bytes.data(), bytes.size(), 3, kChunks).ok());
  bytes = craftCheckpoint(3, {{1, {{0, 0, kChunks}}}, {2, {{0, 0, kChunks}}}});  // a snapshot: fine
  EXPECT_TRUE(decodeThinCheckpoint(bytes.data(), bytes.size(), 3, kChunks).ok());

  // The journal: fresh virtual chunks beyond the data volume's count, and
  // snapshots beyond the devices a pool can have.
  ThinDevices devices;
  for (uint64_t v = 0; v < kChunks; ++v) ASSERT_TRUE(applyThinOp(devices, {ThinOp::Map, 1, v, 0}, kChunks).ok());
  EXPECT_TRUE(applyThinOp(devices, {ThinOp::Map, 1, 0, 5}, kChunks).ok());  // a remap (copy-on-write) is fine
  auto tooMany = applyThinOp(devices, {ThinOp::Map, 1, 1 << 20, 0}, kChunks);
  ASSERT_FALSE(tooMany.ok());
  EXPECT_NE(tooMany.error().message.find("more than the 256 chunks"), std::string::npos) << tooMany.error().message;
  uint32_t made = 0;
  for (uint32_t id = 2; id < 10000; ++id, ++made)
    if (!applyThinOp(devices, {ThinOp::Snapshot, id, 1, kNoChunk}, kChunks).ok()) break;
  EXPECT_EQ(devices.size(), kMaxThinDevices);
  EXPECT_EQ(made, kMaxThinDevices - 1);
  EXPECT_FALSE(applyThinOp(devices, {ThinOp::UnmapRange, 1, (1ull << 40) - 1, 2}, kChunks).ok());
}

// The same through a pool: checkpoint and superblock rewritten with valid
// checksums, the open refuses and names the pool and what is wrong.
TEST_F(ThinTest, CraftedCheckpointIsRefusedAtOpen) {
  auto pool = makeThinPool(16 * kMiB);
  makeThin(*pool, "t", 64 * kMiB);
  {
    auto device = openVolume(*pool, "t");
    writeAt(*device, 0, pattern(kChunk, 80));
    flush(*device);
  }
  auto layout = ThinMetaLayout::compute(pool->record().findVolume("tp_tmeta")->sizeBytes);
  ASSERT_TRUE(layout.ok());
  uint32_t id = pool->record().findVolume("t")->id;
  auto [superPv, superAt] = locate(*pool, "tp_tmeta", 0);
  ThinSuperblock super;
  for (int slot = 0; slot < 2; ++slot) {
    auto bytes = peekFile(superPv, superAt + slot * kThinSuperblockSize, kThinSuperblockSize);
    auto decoded = decodeThinSuperblock(bytes.data(), bytes.size());
    if (decoded.ok() && decoded->sequence >= super.sequence) super = *decoded;
  }
  ASSERT_GT(super.sequence, 0u);
  std::vector<std::array<uint64_t, 3>> repeated;
  for (uint64_t i = 0; i < 1000; ++i) repeated.push_back({i * 256, 0, 256});  // 1000x the 256 data chunks
  auto checkpoint = craftCheckpoint(super.generation, {{id, repeated}});
  ThinSuperblock next = super;
  next.sequence++;
  next.checkpointArea = 1 - super.checkpointArea;
  next.checkpointLength = checkpoint.size();
  next.checkpointCrc = crc32c(checkpoint.data(), checkpoint.size());
  std::vector<std::pair<std::string, uint64_t>> places;
  for (uint64_t at = 0; at < checkpoint.size(); at += 4096)
    places.push_back(locate(*pool, "tp_tmeta", layout->checkpointOffset[next.checkpointArea] + at));
  pool.reset();
  for (size_t i = 0; i < places.size(); ++i)
    pokeFile(places[i].first, places[i].second,
             std::vector<uint8_t>(checkpoint.begin() + i * 4096, checkpoint.begin() + (i + 1) * 4096));
  pokeFile(superPv, superAt + (next.sequence % 2) * kThinSuperblockSize, encodeThinSuperblock(next));
  pool = openPool(pvs);
  auto refused = pool->openVolume("t");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("thin pool tp"), std::string::npos) << refused.error().message;
  EXPECT_NE(refused.error().message.find(fmt::format("device {} maps more than the 256 chunks", id)), std::string::npos)
      << refused.error().message;
}

TEST_F(ThinTest, ThinResizeAndRemoveRules) {
  auto pool = makeThinPool(8 * kMiB);
  makeThin(*pool, "t", 8 * kMiB);
  {
    auto device = openVolume(*pool, "t");
    writeAt(*device, 0, pattern(8 * kMiB, 14));
    flush(*device);
  }
  auto busy = pool->removeVolume("tp");
  ASSERT_FALSE(busy.ok());
  EXPECT_NE(busy.error().message.find("still holds thin volumes: t"), std::string::npos);
  EXPECT_FALSE(pool->removeVolume("tp_tdata").ok());
  EXPECT_FALSE(pool->resizeVolume("t", 4 * kMiB, false).ok());
  ASSERT_TRUE(pool->resizeVolume("t", 4 * kMiB, true).ok());
  EXPECT_EQ(used(*pool, "tp"), 4 * kMiB);
  ASSERT_TRUE(pool->resizeVolume("t", 12 * kMiB, false).ok());
  auto device = openVolume(*pool, "t");
  EXPECT_EQ(device->sizeBytes(), 12 * kMiB);
  auto written = pattern(8 * kMiB, 14);
  written.resize(4 * kMiB);
  EXPECT_TRUE(readAt(*device, 0, 4 * kMiB) == written);
  EXPECT_TRUE(readAt(*device, 4 * kMiB, 8 * kMiB) == std::vector<uint8_t>(8 * kMiB, 0));
  device.reset();
  uint64_t freeBefore = pool->freeExtents();
  ASSERT_TRUE(pool->removeVolume("t").ok());
  ASSERT_TRUE(pool->removeVolume("tp").ok());
  EXPECT_GT(pool->freeExtents(), freeBefore);
  EXPECT_EQ(pool->record().volumes.size(), 0u);
}

}  // namespace
}  // namespace strata::storage::volume
