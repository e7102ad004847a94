// The write-intent bitmaps that close the RAID write hole: a RAID 5 row or a
// mirror range torn by a crash (a child process SIGKILLed after part of a
// write reached the disks) is resynced at the next open, so a PV failing
// afterwards reconstructs the right data; without the bitmap the same
// scenario leaves parity wrong. Degraded and dirty RAID 5 rows refuse to be
// reconstructed (EIO) until a replace; damaged headers mean "resync all";
// bits are set only on clean regions and cleared lazily after a flush; a data
// write goes out only once its bitmap block is on disk, and none of it needs /proc.
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>

#include "storage/crc32c.h"
#include "storage/volume/byte_codec.h"
#include "storage/volume/leg_io.h"
#include "storage/volume/maintenance.h"
#include "storage/volume/parity_volume.h"
#include "storage/volume/pool_format.h"
#include "storage/volume/pool_report.h"
#include "storage/volume/write_intent.h"
#include "volume_test_util.h"

namespace strata::storage::volume {
namespace {

using testing::kMiB;
using testing::pattern;
using testing::VolumeTest;

constexpr uint64_t kStripe = 64 << 10;

class WriteIntentTest : public VolumeTest {
 protected:
  // A RAID 5 of 3 data legs + parity (legs of 8 MiB: two 4 MiB bitmap regions)
  // or a 2-way mirror of 8 MiB, filled with `fill` and closed cleanly.
  void makeVolume(VolumeType type, const std::vector<uint8_t>& fill) {
    pvs = makePvs(type == VolumeType::Raid5 ? 4 : 2, 40);
    auto pool = createPool(pvs);
    ASSERT_TRUE(pool);
    VolumeCreateOptions o;
    o.type = type;
    o.sizeBytes = fill.size();
    o.stripes = 3;
    o.stripeSize = kStripe;
    auto created = pool->createVolume("r", o);
    ASSERT_TRUE(created.ok()) << created.error().message;
    auto device = openVolume(*pool, "r");
    writeAt(*device, 0, fill);
    flush(*device);
  }

  // In a child process: open the pool, run body, then die by SIGKILL (no clean close).
  void crashAfter(const std::function<bool(Pool&, BlockDevice&, EventLoop&)>& body) {
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      auto childLoop = EventLoop::create();
      if (!childLoop) ::_exit(10);
      auto pool = Pool::open(pvs, {}, **childLoop);
      if (!pool) ::_exit(11);
      auto device = (*pool)->openVolume("r");
      if (!device) ::_exit(12);
      if (!body(**pool, **device, **childLoop)) ::_exit(13);
      ::raise(SIGKILL);
      ::_exit(14);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "child exited with " << WEXITSTATUS(status);
  }

  // Where leg `leg` of the volume keeps byte legOffset: (PV index, offset in the PV file).
  static std::pair<uint32_t, uint64_t> placeOf(const Pool& pool, uint32_t leg, uint64_t legOffset) {
    std::vector<PvRange> pieces;
    legPvRanges(pool.record().findVolume("r")->legs[leg], pool.extentSize(), legOffset, 1, pieces);
    return {pieces.at(0).pv, pieces.at(0).offset};
  }

  // Zeroes every PV's bitmap bits: the state a pool without write intent would be in.
  void wipeBitmaps() {
    for (const auto& pv : pvs) pokeFile(pv, kPvIntentOffset + kIntentBlockSize, std::vector<uint8_t>(4096, 0));
  }

  bool dirtyOnDisk() {
    auto pool = Pool::open(pvs, {.readOnly = true}, *loop);
    EXPECT_TRUE(pool.ok());
    return pool.ok() && (*pool)->writeIntent().anyDirty();
  }

  std::vector<std::string> pvs;
};

// Row 5 of the RAID 5: chunk 0 rewritten through the volume (bitmap marked
// as the real path does), chunk 1 changed on its PV without parity (a write
// whose parity update never landed), then the process is killed. Returns
// the scrub after reopening and what the volume reads with chunk 2's PV failed.
struct TornOutcome {
  uint64_t parityMismatches = 0;
  std::vector<uint8_t> expected;
  std::vector<uint8_t> read;
  uint64_t chunk2 = 0;
};

class TornRaid5Test : public WriteIntentTest {
 protected:
  TornOutcome tear(bool wipe) {
    TornOutcome out;
    constexpr uint64_t kSize = 24 * kMiB, kRow = 5, kRowBytes = 3 * kStripe;
    out.expected = pattern(kSize, 1);
    makeVolume(VolumeType::Raid5, out.expected);
    EXPECT_FALSE(dirtyOnDisk()) << "a clean close leaves the bitmaps clean";
    auto b = pattern(kStripe, 2), c = pattern(kStripe, 3);
    crashAfter([&](Pool& pool, BlockDevice& device, EventLoop& childLoop) {
      if (!writeSync(device, childLoop, kRow * kRowBytes, b.data(), kStripe).ok()) return false;
      auto [pv, at] = placeOf(pool, ParityVolume::dataLeg(4, kRow, 1), kRow * kStripe);
      pokeFile(pvs[pv], at, c);
      return true;
    });
    std::copy(b.begin(), b.end(), out.expected.begin() + kRow * kRowBytes);
    std::copy(c.begin(), c.end(), out.expected.begin() + kRow * kRowBytes + kStripe);
    EXPECT_TRUE(dirtyOnDisk()) << "the killed writer's regions stay marked";
    if (wipe) wipeBitmaps();

    auto pool = openPool(pvs);  // resyncs what the bitmaps mark
    if (!pool) return out;
    auto scrub = scrubPool(*pool, false, nullptr);
    EXPECT_TRUE(scrub.ok());
    if (scrub.ok()) out.parityMismatches = scrub->parityMismatches;
    out.chunk2 = kRow * kRowBytes + 2 * kStripe;
    pool->failPhysicalVolume(placeOf(*pool, ParityVolume::dataLeg(4, kRow, 2), kRow * kStripe).first);
    auto device = openVolume(*pool, "r");
    out.read = readAt(*device, 0, kSize);
    // The commit recording the failure keeps the pool alive until it is done.
    EXPECT_TRUE(pool->commit().ok());
    return out;
  }
};

TEST_F(TornRaid5Test, TornRowIsResyncedAndSurvivesAnotherPvFailing) {
  TornOutcome out = tear(false);
  EXPECT_EQ(out.parityMismatches, 0u);
  ASSERT_EQ(out.read.size(), out.expected.size());
  EXPECT_TRUE(std::equal(out.read.begin() + out.chunk2, out.read.begin() + out.chunk2 + kStripe,
                         out.expected.begin() + out.chunk2))
      << "the reconstructed chunk next to the torn one is wrong";
  EXPECT_TRUE(out.read == out.expected);
  EXPECT_FALSE(dirtyOnDisk());
}

TEST_F(TornRaid5Test, WithoutTheBitmapTheSameCrashLeavesWrongParity) {
  // The hole the bitmap closes: nothing resyncs the row, and reconstructing
  // chunk 2 (flushed long before the crash) returns wrong data.
  TornOutcome out = tear(true);
  EXPECT_GT(out.parityMismatches, 0u);
  ASSERT_EQ(out.read.size(), out.expected.size());
  EXPECT_FALSE(std::equal(out.read.begin() + out.chunk2, out.read.begin() + out.chunk2 + kStripe,
                          out.expected.begin() + out.chunk2));
}

class TornMirrorTest : public WriteIntentTest, public ::testing::WithParamInterface<bool> {};

TEST_P(TornMirrorTest, CopiesAgreeAfterReopenOnlyWithTheBitmap) {
  bool wipe = GetParam();
  makeVolume(VolumeType::Mirror, pattern(8 * kMiB, 4));
  auto b = pattern(256 << 10, 5), d = pattern(64 << 10, 6);
  crashAfter([&](Pool& pool, BlockDevice& device, EventLoop& childLoop) {
    if (!writeSync(device, childLoop, 1 * kMiB, b.data(), b.size()).ok()) return false;
    // A later write in the same region that reached only the second copy.
    auto [pv, at] = placeOf(pool, 1, 2 * kMiB);
    pokeFile(pvs[pv], at, d);
    return true;
  });
  if (wipe) wipeBitmaps();
  auto pool = openPool(pvs);
  ASSERT_TRUE(pool);
  auto scrub = scrubPool(*pool, false, nullptr);
  ASSERT_TRUE(scrub.ok()) << scrub.error().message;
  if (wipe) {
    EXPECT_EQ(scrub->mirrorMismatches, 16u) << "64 KiB differ between the copies";
  } else {
    EXPECT_EQ(scrub->mirrorMismatches, 0u);
    auto copy0 = placeOf(*pool, 0, 2 * kMiB), copy1 = placeOf(*pool, 1, 2 * kMiB);
    EXPECT_TRUE(peekFile(pvs[copy0.first], copy0.second, d.size()) == peekFile(pvs[copy1.first], copy1.second, d.size()));
  }
}

INSTANTIATE_TEST_SUITE_P(Bitmap, TornMirrorTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "wiped" : "kept"; });

TEST_F(WriteIntentTest, DegradedAndDirtyRowsRefuseReconstructionUntilReplaced) {
  constexpr uint64_t kSize = 24 * kMiB, kRowBytes = 3 * kStripe;
  auto a = pattern(kSize, 7);
  makeVolume(VolumeType::Raid5, a);
  auto b = pattern(kRowBytes, 8);
  crashAfter([&](Pool&, BlockDevice& device, EventLoop& childLoop) {
    return writeSync(device, childLoop, 0, b.data(), b.size()).ok();  // row 0, in the first 4 MiB region
  });
  std::copy(b.begin(), b.end(), a.begin());
  // Row 0 keeps data chunk 1 on leg 1 (parity on leg 3); leg i lives on PV i.
  ASSERT_EQ(ParityVolume::dataLeg(4, 0, 1), 1u);
  ASSERT_EQ(::unlink(pvs[1].c_str()), 0);

  auto pool = openPool(pvs);
  ASSERT_TRUE(pool);
  const VolumeRecord& v = *pool->record().findVolume("r");
  EXPECT_GT(pool->writeIntent().atRiskBytes(v.id), 0u);
  EXPECT_NE(formatPoolStatus(*pool).find("AT RISK after an unclean shutdown while degraded"), std::string::npos)
      << formatPoolStatus(*pool);
  auto device = openVolume(*pool, "r");
  std::vector<uint8_t> buffer(kStripe);
  // Chunk 1 of row 0 needs reconstruction from rows whose parity is unverified.
  auto lost = readSync(*device, *loop, kStripe, buffer.data(), kStripe);
  EXPECT_FALSE(lost.ok()) << "an at-risk row was reconstructed";
  // Chunk 0 of row 0 is on a present PV; row 80 (leg offset 5 MiB) is in a clean region.
  EXPECT_TRUE(readAt(*device, 0, kStripe) == std::vector<uint8_t>(a.begin(), a.begin() + kStripe));
  uint64_t row80chunk1 = 80 * kRowBytes + kStripe;
  ASSERT_EQ(ParityVolume::dataLeg(4, 80, 1), 1u);
  EXPECT_TRUE(readAt(*device, row80chunk1, kStripe) ==
              std::vector<uint8_t>(a.begin() + row80chunk1, a.begin() + row80chunk1 + kStripe));
  device.reset();

  auto report = replacePhysicalVolume(*pool, "#1", makePv("new1", 40), false, nullptr);
  ASSERT_TRUE(report.ok()) << report.error().message;
  ASSERT_EQ(report->atRisk.size(), 1u);
  EXPECT_NE(report->atRisk[0].find("r: 4.00 MiB"), std::string::npos) << report->atRisk[0];
  EXPECT_EQ(pool->writeIntent().atRiskBytes(v.id), 0u);
  device = openVolume(*pool, "r");
  EXPECT_TRUE(readAt(*device, 0, kSize) == a) << "the row was fully written before the crash, so parity held";
  device.reset();
  pool.reset();
  pvs[1] = dir + "/new1";
  EXPECT_FALSE(dirtyOnDisk()) << "the rebuilt rows' marks are gone";
}

TEST_F(WriteIntentTest, DegradedAndDirtyMirrorReadsTheSurvivingCopy) {
  auto a = pattern(8 * kMiB, 9);
  makeVolume(VolumeType::Mirror, a);
  auto b = pattern(100000, 10);
  crashAfter([&](Pool&, BlockDevice& device, EventLoop& childLoop) {
    return writeSync(device, childLoop, 12345, b.data(), b.size()).ok();
  });
  std::copy(b.begin(), b.end(), a.begin() + 12345);
  ASSERT_EQ(::unlink(pvs[0].c_str()), 0);
  auto pool = openPool(pvs);
  ASSERT_TRUE(pool);
  auto device = openVolume(*pool, "r");
  EXPECT_TRUE(readAt(*device, 0, a.size()) == a);
}

TEST_F(WriteIntentTest, DamagedHeadersMeanResyncEverything) {
  auto a = pattern(8 * kMiB, 11);
  makeVolume(VolumeType::Mirror, a);
  Uuid uuid;
  {
    auto pool = openPool(pvs, true);
    ASSERT_TRUE(pool);
    uuid = pool->record().pvs[0].uuid;
  }
  // A second copy that differs where no bit is set: only a full resync finds it.
  pokeFile(pvs[1], kPvDataStart + 6 * kMiB, pattern(4096, 12));
  std::vector<std::vector<uint8_t>> hostile;
  auto good = encodeIntentHeader({uuid, 4 * kMiB, 2});
  auto badCrc = good;
  badCrc[40] ^= 1;
  hostile.push_back(badCrc);
  hostile.push_back(encodeIntentHeader({uuid, 3, 2}));                  // not a power of two
  hostile.push_back(encodeIntentHeader({uuid, 1ull << 50, 1}));         // absurdly large
  hostile.push_back(encodeIntentHeader({uuid, 64 << 10, 1ull << 40}));  // more bits than the area holds
  hostile.push_back(encodeIntentHeader({uuid, 4 * kMiB, 0}));           // too few regions for the PV
  hostile.push_back(encodeIntentHeader({Uuid{1}, 4 * kMiB, 2}));        // another PV's
  hostile.push_back(pattern(4096, 13));                                 // garbage
  for (size_t i = 0; i < hostile.size(); ++i) {
    SCOPED_TRACE(i);
    pokeFile(pvs[0], kPvIntentOffset, hostile[i]);
    {
      auto readOnly = openPool(pvs, true);
      ASSERT_TRUE(readOnly);
      EXPECT_TRUE(readOnly->writeIntent().anyDirty()) << "an untrusted bitmap counts as all dirty";
    }
    auto pool = openPool(pvs);
    ASSERT_TRUE(pool);
    auto scrub = scrubPool(*pool, false, nullptr);
    ASSERT_TRUE(scrub.ok());
    EXPECT_EQ(scrub->mirrorMismatches, 0u) << "the whole volume was resynced";
    auto device = openVolume(*pool, "r");
    EXPECT_TRUE(readAt(*device, 0, a.size()) == a);
    device.reset();
    pool.reset();
    auto header = peekFile(pvs[0], kPvIntentOffset, 4096);
    auto decoded = decodeIntentHeader(header.data(), header.size(), 36 * kMiB);
    EXPECT_TRUE(decoded.ok()) << "a fresh header replaced it";
    EXPECT_FALSE(dirtyOnDisk());
    pokeFile(pvs[1], kPvDataStart + 6 * kMiB, pattern(4096, 14 + static_cast<uint32_t>(i)));
  }
}

TEST(IntentHeaderTest, RoundTripsAndRejectsHostileValues) {
  Uuid uuid{};
  uuid[3] = 7;
  uint64_t data = 100ull << 30;
  auto bytes = encodeIntentHeader({uuid, intentRegionBytes(data, 4 << 20), (data + (4 << 20) - 1) / (4 << 20)});
  auto decoded = decodeIntentHeader(bytes.data(), bytes.size(), data);
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(decoded->pvUuid, uuid);
  EXPECT_EQ(decoded->regionBytes, 4u << 20);
  EXPECT_EQ(intentRegionBytes(data), 64u << 20) << "the default, like md's";
  EXPECT_FALSE(checkIntentRegionBytes(3 << 20).ok());
  EXPECT_FALSE(decodeIntentHeader(bytes.data(), 100, data).ok()) << "truncated";
  // A PV too big for 4 MiB regions gets larger ones, always fitting the area.
  EXPECT_EQ(intentRegionBytes(1ull << 50, 4 << 20), 256ull << 20);
  EXPECT_LE((1ull << 50) / intentRegionBytes(1ull << 50, 4 << 20), kIntentMaxRegions);
  // Every single-byte change with the checksum fixed up decodes or fails cleanly.
  for (size_t i = 0; i < 64; ++i)
    for (uint8_t v : {0x00, 0x01, 0x80, 0xff}) {
      auto mutated = bytes;
      mutated[i] = v;
      storeLe32(&mutated[12], 0);
      storeLe32(&mutated[12], crc32c(mutated.data(), 512));
      auto d = decodeIntentHeader(mutated.data(), mutated.size(), data);
      if (d.ok()) {
        EXPECT_GE(d->regionCount * d->regionBytes, data);
        EXPECT_LE(d->regionCount, kIntentMaxRegions);
      }
    }
}

TEST_F(WriteIntentTest, FreshPoolsUseTheDefaultRegionSize) {
  pvs = makePvs(1, 40);
  ASSERT_TRUE(Pool::create("tank", pvs, {.extentSize = kMiB}, *loop).ok());
  auto header = peekFile(pvs[0], kPvIntentOffset, 4096);
  auto decoded = decodeIntentHeader(header.data(), header.size(), 36 * kMiB);
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(decoded->regionBytes, kIntentDefaultRegionBytes);
  EXPECT_EQ(decoded->regionCount, 1u);
  EXPECT_FALSE(Pool::create("tank", makePvs(1, 40, "x"), {.force = true, .intentRegionBytes = 5 << 20}, *loop).ok());
}

TEST_F(WriteIntentTest, BitsAreSetOncePerRegionAndClearedAfterAFlush) {
  pvs = makePvs(2, 40);
  auto pool = Pool::create("tank", pvs, {.extentSize = kMiB, .intentRegionBytes = 4 * kMiB}, *loop);
  ASSERT_TRUE(pool.ok());
  VolumeCreateOptions o;
  o.type = VolumeType::Mirror;
  o.sizeBytes = 16 * kMiB;
  ASSERT_TRUE((*pool)->createVolume("r", o).ok());
  pool->reset();
  for (int idleMs : {0, 3600 * 1000}) {
    SCOPED_TRACE(idleMs);
    auto opened = Pool::open(pvs, {.intentIdleMs = idleMs}, *loop);
    ASSERT_TRUE(opened.ok());
    WriteIntent& intent = (*opened)->writeIntent();
    auto device = openVolume(**opened, "r");
    uint64_t before = intent.bitmapWrites();
    writeAt(*device, 0, pattern(4096, 1));
    EXPECT_EQ(intent.markedRegions(), 2u) << "region 0 of both copies";
    EXPECT_EQ(intent.bitmapWrites(), before + 2) << "one durable bitmap block write per PV";
    writeAt(*device, 1 * kMiB, pattern(4096, 2));  // the same region: no bitmap I/O
    EXPECT_EQ(intent.bitmapWrites(), before + 2);
    writeAt(*device, 9 * kMiB, pattern(4096, 3));  // region 2
    EXPECT_EQ(intent.markedRegions(), 4u);
    EXPECT_TRUE(dirtyOnDisk()) << "marked on disk before the data went out";
    flush(*device);
    intent.drain();
    EXPECT_EQ(intent.markedRegions(), idleMs == 0 ? 0u : 4u) << "cleared only once idle after a flush";
    device.reset();
    opened->reset();  // clean close
    EXPECT_FALSE(dirtyOnDisk());
  }
}

TEST_F(WriteIntentTest, DataWritesGoOutOnlyOnceTheirBitmapBlockIsOnDisk) {
  makeVolume(VolumeType::Mirror, pattern(8 * kMiB, 1));
  auto pool = openPool(pvs);
  ASSERT_TRUE(pool);
  auto device = openVolume(*pool, "r");
  auto data = pattern(4096, 2);
  bool done = false;
  int result = 1;
  device->writev(0, {iovec{data.data(), data.size()}}, [&](int r) {
    done = true;
    result = r;
  });
  // Step the loop; whenever a PV has the data write in flight, its bitmap
  // block marking region 0 must already be in the file.
  int observed = 0;
  while (!done) {
    for (uint32_t pv = 0; pv < 2; ++pv) {
      if (pool->pvImage(pv)->inFlight() == 0) continue;
      ++observed;
      auto bits = peekFile(pvs[pv], kPvIntentOffset + kIntentBlockSize, 1);
      EXPECT_EQ(bits[0] & 1, 1) << "PV " << pv << ": data write issued before its region was marked on disk";
    }
    loop->runOnce(-1);
  }
  EXPECT_EQ(result, 0);
  EXPECT_GT(observed, 0) << "never caught a data write in flight: the ordering was not checked";
  EXPECT_EQ(readAt(*device, 0, 4096), data);
}

TEST_F(WriteIntentTest, BitmapsWorkWithoutProc) {
  // A child process in its own mount namespace with an empty /proc: the
  // bitmap writes must not reopen the PVs through /proc/self/fd.
  makeVolume(VolumeType::Mirror, pattern(8 * kMiB, 1));
  auto data = pattern(4096, 3);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::unshare(CLONE_NEWNS) != 0) ::_exit(77);
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ::_exit(77);
    if (::mount("none", "/proc", "tmpfs", 0, nullptr) != 0) ::_exit(77);
    if (::access("/proc/self/fd", F_OK) == 0) ::_exit(10);
    auto childLoop = EventLoop::create();
    if (!childLoop) ::_exit(11);
    auto pool = Pool::open(pvs, {}, **childLoop);
    if (!pool) ::_exit(12);
    auto device = (*pool)->openVolume("r");
    if (!device) ::_exit(13);
    if (!writeSync(**device, **childLoop, 0, data.data(), data.size()).ok()) ::_exit(14);
    if ((*pool)->writeIntent().markedRegions() != 2) ::_exit(15);
    ::_exit(0);  // no clean close: the marks stay on disk
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) GTEST_SKIP() << "cannot hide /proc here (needs a private mount namespace: root)";
  ASSERT_EQ(WEXITSTATUS(status), 0) << "the child failed at step " << WEXITSTATUS(status);
  EXPECT_TRUE(dirtyOnDisk()) << "the child's marks reached the PVs";
  auto pool = openPool(pvs);  // resyncs the marked region
  ASSERT_TRUE(pool);
  auto device = openVolume(*pool, "r");
  EXPECT_EQ(readAt(*device, 0, 4096), data);
}

}  // namespace
}  // namespace strata::storage::volume
