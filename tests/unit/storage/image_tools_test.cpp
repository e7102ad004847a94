// The `strata image` operations: check against hand-made leaks and corruption,
// convert and commit against qemu-img compare, refcount table growth, and
// crash safety of flushed data; check of crafted images and huge sparse files
// in bounded time and memory.
#include "storage/image_tools.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "storage/disk_image.h"
#include "storage/image_create.h"
#include "storage/qcow2_format.h"
#include "storage/sync_io.h"
#include "storage_test_util.h"

namespace strata::storage {
namespace {

using testing::pattern;
using testing::readFile;
using testing::runCommand;
using testing::TempDir;
using testing::writeFile;

class ImageTools : public ::testing::Test {
 protected:
  void SetUp() override { loop = std::move(*EventLoop::create()); }
  std::string createQcow2(const std::string& name, uint64_t size, uint32_t clusterSize = 65536,
                          const std::string& backing = "", ImageFormat backingFormat = ImageFormat::Auto) {
    CreateOptions options;
    options.format = ImageFormat::Qcow2;
    options.size = size;
    options.clusterSize = clusterSize;
    options.backingFile = backing;
    options.backingFormat = backingFormat;
    std::string path = dir.file(name);
    auto created = createImage(path, options);
    EXPECT_TRUE(created.ok()) << (created.ok() ? "" : created.error().message);
    return path;
  }
  void write(const std::string& path, uint64_t offset, const std::vector<uint8_t>& data) {
    auto disk = openDiskImage(path, {}, *loop);
    ASSERT_TRUE(disk.ok()) << disk.error().message;
    ASSERT_TRUE(writeSync(**disk, *loop, offset, data.data(), data.size()).ok());
    ASSERT_TRUE(flushSync(**disk, *loop).ok());
  }
  TempDir dir;
  std::unique_ptr<EventLoop> loop;
};

TEST_F(ImageTools, ParseSizeUnits) {
  EXPECT_EQ(*parseSize("512"), 512u);
  EXPECT_EQ(*parseSize("64K"), 65536u);
  EXPECT_EQ(*parseSize("64M"), 64ull << 20);
  EXPECT_EQ(*parseSize("10G"), 10ull << 30);
  EXPECT_EQ(*parseSize("1T"), 1ull << 40);
  EXPECT_EQ(*parseSize("2MiB"), 2ull << 20);
  EXPECT_FALSE(parseSize("").ok());
  EXPECT_FALSE(parseSize("12Q").ok());
  EXPECT_FALSE(parseSize("-5").ok());
  EXPECT_FALSE(parseSize("99999999999P").ok());
}

TEST_F(ImageTools, InfoReportsQcow2Fields) {
  std::string base = dir.file("base.raw");
  writeFile(base, std::vector<uint8_t>(1 << 20, 1));
  std::string path = createQcow2("ov.qcow2", 1 << 20, 4096, "base.raw", ImageFormat::Raw);
  auto info = imageInfo(path);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->format, ImageFormat::Qcow2);
  EXPECT_EQ(info->virtualSize, 1u << 20);
  EXPECT_EQ(info->clusterSize, 4096u);
  EXPECT_EQ(info->backingFile, "base.raw");
  EXPECT_EQ(info->backingFormat, "raw");
  EXPECT_EQ(info->refcountBits, 16u);
  EXPECT_NE(formatInfoJson(*info).find("\"backing-filename\": \"base.raw\""), std::string::npos);
  auto raw = imageInfo(base);
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->format, ImageFormat::Raw);
  EXPECT_EQ(raw->virtualSize, 1u << 20);
}

TEST_F(ImageTools, CheckFindsLeaksAndCorruptionLikeQemuImg) {
  std::string path = createQcow2("c.qcow2", 16 << 20);
  write(path, 0, pattern(300000, 2));
  auto clean = checkImage(path);
  ASSERT_TRUE(clean.ok());
  EXPECT_EQ(checkExitCode(*clean), 0);
  EXPECT_EQ(clean->allocatedClusters, 5u);  // 300000 bytes span 5 clusters of 64K
  // A leak: refcount 1 on a cluster past every table (cluster 40 of the refcount block).
  auto bytes = readFile(path);
  bytes.resize(41 * 65536);
  qcow2::storeBe16(&bytes[0x20000 + 40 * 2], 1);
  writeFile(path, bytes);
  auto leaked = checkImage(path);
  ASSERT_TRUE(leaked.ok());
  EXPECT_EQ(leaked->leaks, 1u);
  EXPECT_EQ(leaked->corruptions, 0u);
  EXPECT_EQ(checkExitCode(*leaked), 3);
  EXPECT_EQ(runCommand("qemu-img check " + path).exitCode, 3);
  // A corruption: the refcount of a referenced data cluster dropped to 0.
  uint64_t l2 = qcow2::loadBe64(&bytes[0x30000]) & qcow2::kL1OffsetMask;
  uint64_t data = qcow2::loadBe64(&bytes[l2]) & qcow2::kL2OffsetMask;
  qcow2::storeBe16(&bytes[0x20000 + (data / 65536) * 2], 0);
  writeFile(path, bytes);
  auto corrupt = checkImage(path);
  ASSERT_TRUE(corrupt.ok());
  EXPECT_EQ(corrupt->corruptions, 1u);
  EXPECT_EQ(checkExitCode(*corrupt), 2);
  EXPECT_EQ(runCommand("qemu-img check " + path).exitCode, 2);
}

TEST_F(ImageTools, CheckAgreesWithQemuOnQemuWrittenImages) {
  std::string path = dir.file("q.qcow2");
  ASSERT_EQ(runCommand("qemu-img create -f qcow2 -o cluster_size=4096,refcount_bits=8 " + path + " 32M").exitCode, 0);
  ASSERT_EQ(runCommand("qemu-io -c 'write -P 1 0 5M' -c 'write -z 1M 1M' -c 'discard 3M 1M' " + path).exitCode, 0);
  auto report = checkImage(path);
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_EQ(checkExitCode(*report), 0);
  for (const auto& m : report->messages) ADD_FAILURE() << m;
}

TEST_F(ImageTools, ConvertRoundTripsAndSkipsZeroes) {
  std::string source = dir.file("source.raw");
  std::vector<uint8_t> bytes(32 << 20, 0);
  auto noise = pattern(3 << 20, 4);
  std::memcpy(bytes.data() + (5 << 20), noise.data(), noise.size());
  std::memset(bytes.data() + (20 << 20), 0x61, 1000);
  writeFile(source, bytes);
  ConvertOptions options;
  options.target.format = ImageFormat::Qcow2;
  options.target.clusterSize = 65536;
  uint64_t lastDone = 0, calls = 0;
  auto converted = convertImage(source, dir.file("out.qcow2"), options, *loop, [&](uint64_t done, uint64_t total) {
    EXPECT_GE(done, lastDone);
    EXPECT_EQ(total, bytes.size());
    lastDone = done;
    ++calls;
  });
  ASSERT_TRUE(converted.ok()) << converted.error().message;
  EXPECT_EQ(lastDone, bytes.size());
  EXPECT_GT(calls, 1u);
  EXPECT_EQ(runCommand("qemu-img compare " + source + " " + dir.file("out.qcow2")).exitCode, 0);
  EXPECT_EQ(runCommand("qemu-img check " + dir.file("out.qcow2")).exitCode, 0);
  // Only the non-zero data is allocated: 3 MiB of noise plus one 64K cluster.
  auto check = checkImage(dir.file("out.qcow2"));
  ASSERT_TRUE(check.ok());
  EXPECT_EQ(check->allocatedClusters, 48u + 1u);
  options.target.format = ImageFormat::Raw;
  ASSERT_TRUE(convertImage(dir.file("out.qcow2"), dir.file("back.raw"), options, *loop, nullptr).ok());
  EXPECT_TRUE(readFile(dir.file("back.raw")) == bytes);
  // The target must not exist yet.
  EXPECT_FALSE(convertImage(source, dir.file("back.raw"), options, *loop, nullptr).ok());
}

TEST_F(ImageTools, CommitFoldsOverlayIntoBacking) {
  std::string base = dir.file("base.raw");
  auto baseBytes = pattern(8 << 20, 6);
  writeFile(base, baseBytes);
  std::string overlay = createQcow2("ov.qcow2", 8 << 20, 65536, "base.raw", ImageFormat::Raw);
  auto data = pattern(100000, 7);
  write(overlay, 1234567, data);
  {
    auto disk = openDiskImage(overlay, {}, *loop);
    ASSERT_TRUE(disk.ok());
    ASSERT_TRUE(writeZeroesSync(**disk, *loop, 4 << 20, 1 << 20).ok());
    ASSERT_TRUE(flushSync(**disk, *loop).ok());
  }
  EXPECT_TRUE(readFile(base) == baseBytes);  // the template is untouched until commit
  auto committed = commitImage(overlay, *loop, nullptr);
  ASSERT_TRUE(committed.ok()) << committed.error().message;
  EXPECT_EQ(committed->backingPath, base);
  auto expected = baseBytes;
  std::memcpy(expected.data() + 1234567, data.data(), data.size());
  std::memset(expected.data() + (4 << 20), 0, 1 << 20);
  EXPECT_TRUE(readFile(base) == expected);
  EXPECT_EQ(runCommand("qemu-img compare " + overlay + " " + base).exitCode, 0);
  auto notClone = commitImage(base, *loop, nullptr);
  ASSERT_FALSE(notClone.ok());
  EXPECT_EQ(notClone.error().message, base + ": image has no backing file");
}

TEST_F(ImageTools, RefcountTableGrowsForSmallClusters) {
  // 512-byte clusters with 16-bit refcounts: one refcount block covers 128 KiB
  // and the initial one-cluster table 8 MiB, so 24 MiB of data needs a bigger table.
  std::string path = createQcow2("grow.qcow2", 32 << 20, 512);
  std::vector<uint8_t> expected(32 << 20, 0);
  {
    auto disk = openDiskImage(path, {}, *loop);
    ASSERT_TRUE(disk.ok());
    for (uint64_t offset = 0; offset < (24u << 20); offset += 1 << 20) {
      auto data = pattern(1 << 20, static_cast<uint32_t>(offset >> 20));
      ASSERT_TRUE(writeSync(**disk, *loop, offset, data.data(), data.size()).ok());
      std::memcpy(expected.data() + offset, data.data(), data.size());
    }
    ASSERT_TRUE(flushSync(**disk, *loop).ok());
  }
  auto info = runCommand("qemu-img check " + path);
  EXPECT_EQ(info.exitCode, 0) << info.output;
  writeFile(dir.file("expected.raw"), expected);
  EXPECT_EQ(runCommand("qemu-img compare " + path + " " + dir.file("expected.raw")).exitCode, 0);
  auto bytes = readFile(path);
  EXPECT_GT(qcow2::loadBe32(&bytes[56]), 1u);  // refcount_table_clusters grew
}

TEST_F(ImageTools, DirectIoQcow2WithCopyOnWrite) {
  std::string base = dir.file("base.raw");
  auto baseBytes = pattern(4 << 20, 10);
  writeFile(base, baseBytes);
  std::string path = createQcow2("direct.qcow2", 4 << 20, 65536, "base.raw", ImageFormat::Raw);
  DiskOptions options;
  options.direct = true;
  auto disk = openDiskImage(path, options, *loop);
  ASSERT_TRUE(disk.ok()) << disk.error().message;
  void* raw = nullptr;
  ASSERT_EQ(0, ::posix_memalign(&raw, 4096, 8192));
  std::unique_ptr<void, decltype(&free)> buffer(raw, &free);
  std::memset(raw, 0x7e, 8192);
  // 8 KiB in the middle of a cluster: the head and tail are copied from the backing file.
  ASSERT_TRUE(writeSync(**disk, *loop, 65536 + 16384, raw, 8192).ok());
  // O_DIRECT needs sector-aligned requests (as guests issue); these are 4K-aligned, not cluster-aligned.
  ASSERT_TRUE(writeZeroesSync(**disk, *loop, 200704, 303104).ok());
  ASSERT_TRUE(flushSync(**disk, *loop).ok());
  auto expected = baseBytes;
  std::memset(expected.data() + 65536 + 16384, 0x7e, 8192);
  std::memset(expected.data() + 200704, 0, 303104);
  disk->reset();
  writeFile(dir.file("expected.raw"), expected);
  EXPECT_EQ(runCommand("qemu-img compare " + path + " " + dir.file("expected.raw")).exitCode, 0);
  EXPECT_EQ(runCommand("qemu-img check " + path).exitCode, 0);
}

TEST_F(ImageTools, FlushedDataSurvivesKillMidWrite) {
  std::string path = createQcow2("crash.qcow2", 64 << 20, 65536);
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Child: write and flush the first 8 MiB, report, then keep writing unflushed until killed.
    auto loop2 = std::move(*EventLoop::create());
    auto disk = openDiskImage(path, {}, *loop2);
    if (!disk.ok()) ::_exit(1);
    for (uint64_t offset = 0; offset < (8u << 20); offset += 1 << 20) {
      auto data = pattern(1 << 20, static_cast<uint32_t>(offset >> 20));
      if (!writeSync(**disk, *loop2, offset, data.data(), data.size()).ok()) ::_exit(2);
    }
    if (!flushSync(**disk, *loop2).ok()) ::_exit(3);
    char byte = 1;
    if (::write(ready[1], &byte, 1) != 1) ::_exit(4);
    for (uint64_t i = 0;; ++i) {
      auto data = pattern(70000, static_cast<uint32_t>(100 + i));
      (void)writeSync(**disk, *loop2, (8u << 20) + (i * 4099) % (40u << 20), data.data(), data.size());
    }
  }
  ::close(ready[1]);
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  ::usleep(200000);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ::close(ready[0]);
  // The flushed data is intact and the image has at worst leaked clusters.
  auto check = runCommand("qemu-img check " + path);
  EXPECT_TRUE(check.exitCode == 0 || check.exitCode == 3) << check.output;
  auto disk = openDiskImage(path, {}, *loop);
  ASSERT_TRUE(disk.ok()) << disk.error().message;
  std::vector<uint8_t> got(1 << 20);
  for (uint64_t offset = 0; offset < (8u << 20); offset += 1 << 20) {
    ASSERT_TRUE(readSync(**disk, *loop, offset, got.data(), got.size()).ok());
    EXPECT_TRUE(got == pattern(1 << 20, static_cast<uint32_t>(offset >> 20))) << "MiB " << (offset >> 20);
  }
}

// Seconds checkImage takes on `path` (its report in `report`).
double timedCheck(const std::string& path, Result<CheckReport>& report) {
  auto start = std::chrono::steady_clock::now();
  report = checkImage(path);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST_F(ImageTools, CheckOfAHugeSparseFileIsBounded) {
  // A valid image with 512-byte clusters grown to 8 TiB of holes: one counter
  // per cluster the file could hold would be 2^34 of them.
  std::string path = dir.file("sparse.qcow2");
  ASSERT_EQ(runCommand("qemu-img create -f qcow2 -o cluster_size=512 " + path + " 16M").exitCode, 0);
  ASSERT_EQ(runCommand("qemu-io -c 'write -P 3 0 1M' " + path).exitCode, 0);
  ASSERT_EQ(::truncate(path.c_str(), 8ll << 40), 0);
  Result<CheckReport> report = Error{"not run"};
  double seconds = timedCheck(path, report);
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_EQ(checkExitCode(*report), 0);
  for (const auto& m : report->messages) ADD_FAILURE() << m;
  EXPECT_EQ(report->allocatedClusters, 2048u);
  EXPECT_LT(seconds, 20.0);
}

TEST_F(ImageTools, CheckOfAHugeCraftedRefcountTableIsBounded) {
  // 1-bit refcounts with 64 KiB clusters: a refcount table of 2^20 entries
  // all pointing at one block of ones claims 2^39 referenced clusters from a
  // 9 MiB file.
  std::string path = dir.file("crafted.qcow2");
  ASSERT_EQ(runCommand("qemu-img create -f qcow2 -o cluster_size=65536,refcount_bits=1 " + path + " 64M").exitCode, 0);
  auto bytes = readFile(path);
  const uint64_t cluster = 65536;
  bytes.resize((bytes.size() + cluster - 1) / cluster * cluster);
  const uint64_t block = bytes.size();
  bytes.resize(block + cluster, 0xff);
  const uint64_t table = bytes.size();
  const uint64_t entries = qcow2::kMaxRefcountTableBytes / 8;
  bytes.resize(table + entries * 8);
  for (uint64_t i = 0; i < entries; ++i) qcow2::storeBe64(&bytes[table + i * 8], block);
  qcow2::storeBe64(&bytes[48], table);
  qcow2::storeBe32(&bytes[56], static_cast<uint32_t>(qcow2::kMaxRefcountTableBytes / cluster));
  writeFile(path, bytes);

  Result<CheckReport> report = Error{"not run"};
  double seconds = timedCheck(path, report);
  ASSERT_TRUE(report.ok()) << report.error().message;
  // The block is used 2^20 times but counted once: corruption; every other cluster leaks.
  EXPECT_EQ(checkExitCode(*report), 2);
  EXPECT_GE(report->corruptions, 1u);
  EXPECT_GT(report->leaks, uint64_t{1} << 38);
  EXPECT_EQ(report->messages.size(), kMaxCheckMessages);
  EXPECT_EQ(report->messagesOmitted, report->corruptions + report->leaks - kMaxCheckMessages);
  EXPECT_LT(seconds, 20.0);
}

TEST_F(ImageTools, CheckOfSnapshotsClaimingTerabytesOfL1TablesIsBounded) {
  // 65536 snapshots whose 32 MiB L1 tables lie in the holes of an 8 TiB
  // sparse file: 2 TiB of tables claimed by a few MiB of data.
  std::string path = dir.file("snapshots.qcow2");
  ASSERT_EQ(runCommand("qemu-img create -f qcow2 -o cluster_size=512 " + path + " 16M").exitCode, 0);
  auto bytes = readFile(path);
  bytes.resize((bytes.size() + 511) / 512 * 512);
  const uint64_t snapshotTable = bytes.size();
  constexpr uint32_t kSnapshots = 65536;
  constexpr uint32_t kL1Entries = qcow2::kMaxL1Bytes / 8;
  bytes.resize(snapshotTable + uint64_t{kSnapshots} * 40, 0);
  for (uint64_t s = 0; s < kSnapshots; ++s) {
    qcow2::storeBe64(&bytes[snapshotTable + s * 40], (1ull << 40) + s * qcow2::kMaxL1Bytes);
    qcow2::storeBe32(&bytes[snapshotTable + s * 40 + 8], kL1Entries);
  }
  qcow2::storeBe32(&bytes[60], kSnapshots);
  qcow2::storeBe64(&bytes[64], snapshotTable);
  writeFile(path, bytes);
  ASSERT_EQ(::truncate(path.c_str(), 8ll << 40), 0);
  Result<CheckReport> report = Error{"not run"};
  double seconds = timedCheck(path, report);
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_EQ(checkExitCode(*report), 2);
  bool named = false;
  for (const auto& m : report->messages) named |= m.find("claim more entries than the file holds") != std::string::npos;
  EXPECT_TRUE(named);
  EXPECT_LT(seconds, 20.0);
}

}  // namespace
}  // namespace strata::storage
