// Many requests in flight at once: RAID 5 batching and column locks
// (overlapping and adjacent small writes, healthy and degraded, 3 to 5 legs
// so both read-modify-write and reconstruct-write run), merged per-leg
// requests with odd offsets and scattered buffers, RAID 5, mirror and RAID 10
// rebuilds with writes landing between their steps, thin reads spanning mapped, unmapped and busy
// chunks, RangeLock ordering, and replacement PVs keeping O_DIRECT.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <deque>
#include <random>

#include "storage/volume/io_util.h"
#include "storage/volume/maintenance.h"
#include "storage/volume/pool_format.h"
#include "storage/volume/range_lock.h"
#include "volume_test_util.h"

namespace strata::storage::volume {
namespace {

using testing::kMiB;
using testing::pattern;
using testing::VolumeTest;

// Writes issued without waiting, each from its own buffer (page aligned for
// two in three, which RAID 5 writes without copying, else misaligned); the
// expected image applies them in submission order (RAID 5 keeps that order
// for overlaps).
class InFlight {
 public:
  InFlight(BlockDevice& device, std::vector<uint8_t>& expected) : device_(device), expected_(expected) {}
  void write(uint64_t offset, const std::vector<uint8_t>& data) {
    std::copy(data.begin(), data.end(), expected_.begin() + static_cast<long>(offset));
    size_t skew = buffers_.size() % 3 == 2 ? 8 : 0;
    auto& kept = buffers_.emplace_back(makeAlignedBuffer(data.size() + skew));
    uint8_t* at = kept.get() + skew;
    std::copy(data.begin(), data.end(), at);
    ++pending_;
    device_.writev(offset, {iovec{at, data.size()}}, [this](int result) {
      --pending_;
      if (result < 0) ++failures_;
    });
  }
  void wait(EventLoop& loop) {
    while (pending_ > 0) loop.runOnce(-1);
  }
  int failures() const { return failures_; }

 private:
  BlockDevice& device_;
  std::vector<uint8_t>& expected_;
  std::deque<AlignedBuffer> buffers_;
  int pending_ = 0;
  int failures_ = 0;
};

// Random writes made between the steps of a rebuild.
struct WritesDuringRebuild {
  uint32_t seed;
  int writesPerStep;
  uint64_t maxLength;
  uint32_t patternBase;
};

// Replaces the failed PV #1 with `fresh`; at every progress report (between
// rebuild steps) writes pieces anywhere in the volume, some in rows not
// rebuilt yet, then waits for them. The rebuild must succeed, report more
// than one step and every write complete.
void rebuildWhileWriting(Pool& pool, InFlight& io, const std::string& fresh, uint64_t volumeSize,
                         const WritesDuringRebuild& writes) {
  std::mt19937 rng(writes.seed);
  int progressCalls = 0;
  auto report = replacePhysicalVolume(pool, "#1", fresh, false, [&](const MaintenanceProgress&) {
    ++progressCalls;
    for (int i = 0; i < writes.writesPerStep; ++i) {
      uint64_t length = 1 + rng() % writes.maxLength;
      io.write(rng() % (volumeSize - length), pattern(length, writes.patternBase + progressCalls * 10 + i));
    }
  });
  ASSERT_TRUE(report.ok()) << report.error().message;
  io.wait(pool.loop());
  EXPECT_EQ(io.failures(), 0);
  EXPECT_GT(progressCalls, 1);
}

// Scatters a request over iovecs of odd sizes.
std::vector<iovec> scatter(uint8_t* base, size_t length, std::mt19937& rng) {
  std::vector<iovec> out;
  for (size_t at = 0; at < length;) {
    size_t n = std::min<size_t>(length - at, 1 + rng() % 20000);
    out.push_back({base + at, n});
    at += n;
  }
  return out;
}

class Raid5ConcurrencyTest : public VolumeTest, public ::testing::WithParamInterface<uint32_t> {
 protected:
  static constexpr uint64_t kSize = 3 * kMiB;
  std::shared_ptr<Pool> makeRaid5(std::vector<std::string>& pvs, uint32_t stripeSize = 16 << 10,
                                  uint64_t size = kSize) {
    pvs = makePvs(static_cast<int>(GetParam()) + 1, 12);
    auto pool = createPool(pvs);
    VolumeCreateOptions o;
    o.type = VolumeType::Raid5;
    o.sizeBytes = size;
    o.stripes = GetParam();
    o.stripeSize = stripeSize;
    auto created = pool->createVolume("r", o);
    EXPECT_TRUE(created.ok()) << (created.ok() ? "" : created.error().message);
    return pool;
  }
  // Bursts of small writes: sequential 4 KiB runs, overlapping unaligned ones
  // and adjacent pairs, all in flight together.
  void burst(InFlight& io, std::mt19937& rng, uint32_t seed) {
    uint64_t base = rng() % (kSize - 600000) / 4096 * 4096;  // whole columns for the 4 KiB run
    for (int i = 0; i < 48; ++i) io.write(base + i * 4096, pattern(4096, seed * 1000 + i));
    for (int i = 0; i < 48; ++i) {
      uint64_t length = 1 + rng() % 9000;
      uint64_t offset = base + rng() % 400000;
      io.write(offset, pattern(length, seed * 1000 + 100 + i));
      io.write(offset + length, pattern(1 + rng() % 3000, seed * 1000 + 200 + i));
    }
    // The same bytes three times in one burst: the last must win.
    for (int i = 0; i < 3; ++i) io.write(base + 12345, pattern(20000, seed * 1000 + 300 + i));
  }
  void expectClean(Pool& pool) {
    auto scrub = scrubPool(pool, false, nullptr);
    ASSERT_TRUE(scrub.ok()) << scrub.error().message;
    EXPECT_EQ(scrub->parityMismatches, 0u);
    EXPECT_GT(scrub->bytesChecked, 0u);
  }
};

TEST_P(Raid5ConcurrencyTest, OverlappingAndAdjacentSmallWritesKeepDataAndParity) {
  std::vector<std::string> pvs;
  auto pool = makeRaid5(pvs);
  auto device = openVolume(*pool, "r");
  std::vector<uint8_t> expected(kSize, 0);
  InFlight io(*device, expected);
  std::mt19937 rng(GetParam());
  for (uint32_t round = 0; round < 6; ++round) {
    burst(io, rng, round + 1);
    if (round % 2) io.wait(*loop);  // sometimes the next burst meets batches still running
  }
  io.wait(*loop);
  EXPECT_EQ(io.failures(), 0);
  flush(*device);
  EXPECT_TRUE(readAt(*device, 0, kSize) == expected);
  device.reset();
  expectClean(*pool);
  pool.reset();
  // Parity must carry every write: read with a data PV gone.
  auto degraded = Pool::open({pvs.begin() + 1, pvs.end()}, {.readOnly = true}, *loop);
  ASSERT_TRUE(degraded.ok()) << degraded.error().message;
  auto reader = openVolume(**degraded, "r");
  EXPECT_TRUE(readAt(*reader, 0, kSize) == expected);
}

TEST_P(Raid5ConcurrencyTest, DegradedConcurrentWritesReconstruct) {
  std::vector<std::string> pvs;
  auto pool = makeRaid5(pvs);
  auto device = openVolume(*pool, "r");
  std::vector<uint8_t> expected = pattern(kSize, 77);
  writeAt(*device, 0, expected);
  pool->failPhysicalVolume(1);
  InFlight io(*device, expected);
  std::mt19937 rng(100 + GetParam());
  for (uint32_t round = 0; round < 4; ++round) burst(io, rng, round + 11);
  io.wait(*loop);
  EXPECT_EQ(io.failures(), 0);
  EXPECT_TRUE(readAt(*device, 0, kSize) == expected);
  // Scattered, unaligned reads through the reconstructing path.
  for (int i = 0; i < 20; ++i) {
    uint64_t length = 1 + rng() % 200000, offset = rng() % (kSize - length);
    std::vector<uint8_t> got(length);
    auto iov = scatter(got.data(), length, rng);
    int result = 1;
    device->readv(offset, iov, [&](int r) { result = r; });
    while (result == 1) loop->runOnce(-1);
    ASSERT_EQ(result, 0);
    EXPECT_TRUE(std::equal(got.begin(), got.end(), expected.begin() + static_cast<long>(offset))) << offset;
  }
  // The commit recording the failure may still be in flight (it keeps the
  // pool alive until it completes): let it finish before the loop goes.
  ASSERT_TRUE(pool->commit().ok());
}

TEST_P(Raid5ConcurrencyTest, RebuildWithStepsInFlightWhileWritesContinue) {
  std::vector<std::string> pvs;
  // Legs of 2 MiB and more: several 1 MiB rebuild steps, some in flight together.
  constexpr uint64_t kBig = 8 * kMiB;
  auto pool = makeRaid5(pvs, 64 << 10, kBig);
  auto device = openVolume(*pool, "r");
  std::vector<uint8_t> expected = pattern(kBig, 5);
  writeAt(*device, 0, expected);
  flush(*device);
  pool->failPhysicalVolume(1);
  InFlight io(*device, expected);
  std::string fresh = makePv("new1", 12);
  ASSERT_NO_FATAL_FAILURE(rebuildWhileWriting(
      *pool, io, fresh, kBig, {.seed = 7 + GetParam(), .writesPerStep = 4, .maxLength = 70000, .patternBase = 500}));
  flush(*device);
  EXPECT_TRUE(readAt(*device, 0, kBig) == expected);
  device.reset();
  expectClean(*pool);
  pool.reset();
  pvs[1] = fresh;
  // The rebuilt PV serves its share with another one gone.
  auto without2 = pvs;
  without2.erase(without2.begin() + 2);
  auto degraded = Pool::open(without2, {.readOnly = true}, *loop);
  ASSERT_TRUE(degraded.ok()) << degraded.error().message;
  auto reader = openVolume(**degraded, "r");
  EXPECT_TRUE(readAt(*reader, 0, kBig) == expected);
}

// Mirror and RAID 10 writes racing a rebuild of one copy in the same
// process: while maintenance runs they lock their range, so a rebuild step
// cannot copy old data over a newer write on the replacement.
class MirrorRebuildTest : public VolumeTest, public ::testing::WithParamInterface<VolumeType> {};

TEST_P(MirrorRebuildTest, WritesDuringTheRebuildReachTheNewCopy) {
  constexpr uint64_t kBig = 8 * kMiB;
  bool raid10 = GetParam() == VolumeType::Raid10;
  auto pvs = makePvs(raid10 ? 4 : 2, 16);
  auto pool = createPool(pvs);
  VolumeCreateOptions o;
  o.type = GetParam();
  o.sizeBytes = kBig;
  o.stripes = 2;
  o.stripeSize = 64 << 10;
  ASSERT_TRUE(pool->createVolume("m", o).ok());
  auto device = openVolume(*pool, "m");
  std::vector<uint8_t> expected = pattern(kBig, 31);
  writeAt(*device, 0, expected);
  flush(*device);
  pool->failPhysicalVolume(1);
  InFlight io(*device, expected);
  std::string fresh = makePv("new1", 16);
  ASSERT_NO_FATAL_FAILURE(rebuildWhileWriting(
      *pool, io, fresh, kBig, {.seed = 41, .writesPerStep = 8, .maxLength = 200000, .patternBase = 900}));
  flush(*device);
  auto scrub = scrubPool(*pool, false, nullptr);
  ASSERT_TRUE(scrub.ok()) << scrub.error().message;
  EXPECT_EQ(scrub->mirrorMismatches, 0u) << "the rebuilt copy missed writes made during the rebuild";
  // The rebuilt copy alone serves the data.
  pool->failPhysicalVolume(0);
  EXPECT_TRUE(readAt(*device, 0, kBig) == expected);
  ASSERT_TRUE(pool->commit().ok());  // the failure's commit keeps the pool alive until done
}

INSTANTIATE_TEST_SUITE_P(Copies, MirrorRebuildTest, ::testing::Values(VolumeType::Mirror, VolumeType::Raid10),
                         [](const auto& info) { return std::string(volumeTypeName(info.param)); });

INSTANTIATE_TEST_SUITE_P(DataLegs, Raid5ConcurrencyTest, ::testing::Values(2u, 3u, 4u),
                         [](const auto& info) { return std::to_string(info.param) + "plus1"; });

struct LayoutCase {
  const char* name;
  VolumeType type;
  uint32_t stripes;
  uint32_t stripeSize;
};

class MergedRequestTest : public VolumeTest, public ::testing::WithParamInterface<LayoutCase> {};

TEST_P(MergedRequestTest, ScatteredRequestsOverManyChunksMatchAReference) {
  auto pvs = makePvs(4, 12);
  auto pool = createPool(pvs);
  VolumeCreateOptions o;
  o.type = GetParam().type;
  o.sizeBytes = 4 * kMiB;
  o.stripes = GetParam().stripes;
  o.stripeSize = GetParam().stripeSize;
  o.mirrors = 2;
  ASSERT_TRUE(pool->createVolume("v", o).ok());
  auto device = openVolume(*pool, "v");
  uint64_t size = device->sizeBytes();
  std::vector<uint8_t> reference = pattern(size, 3);
  writeAt(*device, 0, reference);
  std::mt19937 rng(11);
  for (int i = 0; i < 60; ++i) {
    // Several chunks on every leg, odd offset and length, scattered buffers.
    uint64_t length = 1 + rng() % (8 * GetParam().stripeSize * GetParam().stripes);
    length = std::min<uint64_t>(length, size - 1);
    uint64_t offset = rng() % (size - length);
    bool write = i % 2 == 0;
    std::vector<uint8_t> data = write ? pattern(length, 900 + i) : std::vector<uint8_t>(length);
    auto iov = scatter(data.data(), length, rng);
    int result = 1;
    if (write)
      device->writev(offset, iov, [&](int r) { result = r; });
    else
      device->readv(offset, iov, [&](int r) { result = r; });
    while (result == 1) loop->runOnce(-1);
    ASSERT_EQ(result, 0);
    if (write)
      std::copy(data.begin(), data.end(), reference.begin() + static_cast<long>(offset));
    else
      EXPECT_TRUE(std::equal(data.begin(), data.end(), reference.begin() + static_cast<long>(offset)))
          << "read " << length << " at " << offset;
  }
  EXPECT_TRUE(readAt(*device, 0, size) == reference);
}

INSTANTIATE_TEST_SUITE_P(Layouts, MergedRequestTest,
                         ::testing::Values(LayoutCase{"striped2", VolumeType::Striped, 2, 4096},
                                           LayoutCase{"striped3", VolumeType::Striped, 3, 64 << 10},
                                           LayoutCase{"striped4", VolumeType::Striped, 4, 16 << 10},
                                           LayoutCase{"raid10", VolumeType::Raid10, 2, 8192},
                                           LayoutCase{"raid5", VolumeType::Raid5, 3, 4096}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(RangeLockTest, OverlapsWaitInArrivalOrderOthersRunAtOnce) {
  RangeLock lock;
  std::vector<int> order;
  RangeLock::Ticket a = 0, b = 0, c = 0, d = 0;
  lock.acquire(0, 100, [&](RangeLock::Ticket t) { a = t, order.push_back(1); });
  lock.acquire(50, 150, [&](RangeLock::Ticket t) { b = t, order.push_back(2); });    // waits for 1
  lock.acquire(200, 300, [&](RangeLock::Ticket t) { c = t, order.push_back(3); });   // free: runs now
  lock.acquire(140, 210, [&](RangeLock::Ticket t) { d = t, order.push_back(4); });   // waits for 2 and 3
  EXPECT_EQ(order, (std::vector<int>{1, 3}));
  lock.release(c);
  EXPECT_EQ(order, (std::vector<int>{1, 3}));  // 4 still behind 2
  lock.release(a);
  EXPECT_EQ(order, (std::vector<int>{1, 3, 2}));
  lock.release(b);
  EXPECT_EQ(order, (std::vector<int>{1, 3, 2, 4}));
  lock.release(d);
  EXPECT_EQ(lock.entries(), 0u);
  lock.release(12345);  // unknown tickets are ignored
}

TEST(RangeLockTest, GrantedCallbacksMayReleaseWithoutRecursing) {
  RangeLock lock;
  int ran = 0;
  RangeLock::Ticket first = lock.acquire(0, 10, [](RangeLock::Ticket) {});
  for (int i = 0; i < 2000; ++i)
    lock.acquire(0, 10, [&](RangeLock::Ticket t) {
      ++ran;
      lock.release(t);  // the next waiter is granted by the loop, not a nested call
    });
  lock.release(first);
  EXPECT_EQ(ran, 2000);
  EXPECT_EQ(lock.entries(), 0u);
}

class ThinReadTest : public VolumeTest {};

TEST_F(ThinReadTest, ReadsSpanMappedUnmappedAndBusyChunks) {
  constexpr uint64_t kChunk = 64 << 10;
  auto pvs = makePvs(1, 24);
  auto pool = createPool(pvs);
  VolumeCreateOptions tp;
  tp.type = VolumeType::ThinPool;
  tp.sizeBytes = 8 * kMiB;
  tp.chunkSize = kChunk;
  ASSERT_TRUE(pool->createVolume("tp", tp).ok());
  VolumeCreateOptions t;
  t.type = VolumeType::Thin;
  t.sizeBytes = 4 * kMiB;
  t.thinPool = "tp";
  ASSERT_TRUE(pool->createVolume("t", t).ok());
  auto device = openVolume(*pool, "t");
  std::vector<uint8_t> expected(4 * kMiB, 0);
  // Chunks 0-5 mapped in order (adjacent on the data volume), 7 and 9 out of
  // order, 6 and 8 never written.
  for (uint64_t chunk : {0, 1, 2, 3, 4, 5, 9, 7}) {
    auto data = pattern(kChunk, static_cast<uint32_t>(chunk) + 1);
    writeAt(*device, chunk * kChunk, data);
    std::copy(data.begin(), data.end(), expected.begin() + static_cast<long>(chunk * kChunk));
  }
  std::mt19937 rng(4);
  for (int i = 0; i < 30; ++i) {
    uint64_t length = 1 + rng() % (11 * kChunk), offset = rng() % (12 * kChunk - length);
    std::vector<uint8_t> got(length, 0xee);
    auto iov = scatter(got.data(), length, rng);
    int result = 1;
    device->readv(offset, iov, [&](int r) { result = r; });
    while (result == 1) loop->runOnce(-1);
    ASSERT_EQ(result, 0);
    EXPECT_TRUE(std::equal(got.begin(), got.end(), expected.begin() + static_cast<long>(offset))) << offset;
  }
  // A read submitted while the first write to chunk 10 allocates it waits
  // for the mapping and sees the new data, with chunk 11 (unmapped) as zeroes.
  auto data = pattern(kChunk, 99);
  std::vector<uint8_t> got(2 * kChunk, 0xee);
  int wrote = 1, read = 1;
  device->writev(10 * kChunk, {iovec{data.data(), kChunk}}, [&](int r) { wrote = r; });
  device->readv(10 * kChunk, {iovec{got.data(), got.size()}}, [&](int r) { read = r; });
  while (wrote == 1 || read == 1) loop->runOnce(-1);
  ASSERT_EQ(wrote, 0);
  ASSERT_EQ(read, 0);
  EXPECT_TRUE(std::equal(data.begin(), data.end(), got.begin()));
  EXPECT_TRUE(std::all_of(got.begin() + kChunk, got.end(), [](uint8_t b) { return b == 0; }));
}

class ReplacementTest : public VolumeTest {};

TEST_F(ReplacementTest, ReplacementPvIsOpenedWithODirectLikeThePool) {
  auto pvs = makePvs(3, 12);
  {
    auto pool = createPool(pvs);
    VolumeCreateOptions o;
    o.type = VolumeType::Raid5;
    o.sizeBytes = 2 * kMiB;
    ASSERT_TRUE(pool->createVolume("r", o).ok());
    auto device = openVolume(*pool, "r");
    writeAt(*device, 0, pattern(2 * kMiB, 8));
    flush(*device);
  }
  auto opened = Pool::open(pvs, {.direct = true}, *loop);
  if (!opened.ok() && opened.error().message.find("Invalid argument") != std::string::npos)
    GTEST_SKIP() << "the temp directory's file system refuses O_DIRECT: " << opened.error().message;
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  auto pool = *opened;
  ASSERT_NE(::fcntl(pool->pvImage(0)->fd(), F_GETFL) & O_DIRECT, 0);
  pool->failPhysicalVolume(1);
  auto report = replacePhysicalVolume(*pool, "#1", makePv("new1", 12), false, nullptr);
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_NE(::fcntl(pool->pvImage(1)->fd(), F_GETFL) & O_DIRECT, 0);
  // And a healthy PV copied to a new one.
  auto copied = replacePhysicalVolume(*pool, "#2", makePv("new2", 12), false, nullptr);
  ASSERT_TRUE(copied.ok()) << copied.error().message;
  EXPECT_TRUE(copied->copied);
  EXPECT_NE(::fcntl(pool->pvImage(2)->fd(), F_GETFL) & O_DIRECT, 0);
  auto device = openVolume(*pool, "r");
  EXPECT_TRUE(readAt(*device, 0, 2 * kMiB) == pattern(2 * kMiB, 8));
}

}  // namespace
}  // namespace strata::storage::volume
