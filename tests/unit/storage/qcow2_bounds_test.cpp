// What a qcow2 image holds in memory stays bounded whatever its caller does:
// requests waiting past Qcow2Image::kMaxWaitingRequests are refused with
// EAGAIN; dirty L2 tables are written back (in dependency order, as a flush
// does) once they outgrow half the L2 cache, by writes and by huge
// write-zeroes alike, also when the guest never flushes, leaving an image
// qemu-img accepts at any moment (a failed write-back fails the write waiting
// on it and is tried again); and an allocation scan that fails moves the
// free-cluster hint, so later writes do not rescan what it covered.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "base/unique_fd.h"
#include "disk_image_test.h"
#include "storage/qcow2_format.h"
#include "storage/qcow2_image.h"
#include "storage/qcow2_metadata.h"
#include "storage/sync_io.h"

namespace strata::storage {
namespace {

using testing::DiskImageTest;
using testing::killAfterReady;
using testing::pattern;
using testing::runCommand;

class Qcow2Bounds : public DiskImageTest {
 protected:
  // 4 KiB clusters: one L2 table maps 2 MiB, so a 256 MiB disk has 128 of
  // them; a 64 KiB L2 cache holds 16 tables (a write-back starts past 8 dirty).
  static constexpr uint64_t kCluster = 4096;
  static constexpr uint64_t kTableSpan = kCluster / 8 * kCluster;
  static constexpr uint64_t kDisk = 256ull << 20;
  static constexpr uint64_t kTables = kDisk / kTableSpan;
  static constexpr DiskOptions kSmallCache{.l2CacheBytes = 64 * 1024};

  std::string createImage(const std::string& name) {
    std::string image = dir.file(name);
    run("qemu-img create -f qcow2 -o cluster_size=4096 " + image + " 256M");
    return image;
  }
  static Qcow2Image& qcow2(DiskImage& disk) { return dynamic_cast<Qcow2Image&>(disk); }
  // The cache bound: L2 tables (clean ones evicted, dirty ones written back
  // first) plus the refcount block or two this disk needs.
  static void expectBounded(const Qcow2Image& image, const std::string& when) {
    const auto& meta = image.metadata();
    EXPECT_LE(meta.dirtyTables(), meta.l2CacheTables() + 2) << when;
    EXPECT_LE(meta.cachedTables(), meta.l2CacheTables() + 2) << when;
  }
  // One 4 KiB block in each L2 table's range, at a different place in each.
  static uint64_t blockOffset(uint64_t table) { return table * kTableSpan + (table * 7 % 512) * kCluster; }
  static std::vector<uint8_t> blockData(uint64_t table) { return pattern(kCluster, static_cast<uint32_t>(table + 1)); }
};

TEST_F(Qcow2Bounds, WaitingRequestsBeyondTheBoundAreRefusedWithEagain) {
  std::string image = createImage("queue.qcow2");
  auto disk = open(image);
  ASSERT_TRUE(disk);
  // A flush owns the image until the loop runs: every read behind it waits.
  int flushResult = 1;
  disk->flush([&](int result) { flushResult = result; });
  constexpr size_t kExtra = 10;
  std::vector<uint8_t> buffer(512);
  size_t succeeded = 0, refused = 0, other = 0;
  for (size_t i = 0; i < Qcow2Image::kMaxWaitingRequests + kExtra; ++i) {
    disk->readv(i * 512, {iovec{buffer.data(), buffer.size()}}, [&](int result) {
      (result == 0 ? succeeded : result == -EAGAIN ? refused : other)++;
    });
  }
  // Discard, write-zeroes and flush count against the same bound.
  int discardResult = 1, flushAgain = 1;
  disk->discard(0, kCluster, [&](int result) { discardResult = result; });
  disk->flush([&](int result) { flushAgain = result; });
  while (succeeded + refused + other < Qcow2Image::kMaxWaitingRequests + kExtra || flushResult == 1 ||
         discardResult == 1 || flushAgain == 1) {
    loop->runOnce(-1);
  }
  EXPECT_EQ(flushResult, 0);
  EXPECT_EQ(succeeded, Qcow2Image::kMaxWaitingRequests);
  EXPECT_EQ(refused, kExtra);
  EXPECT_EQ(other, 0u);
  EXPECT_EQ(discardResult, -EAGAIN);
  EXPECT_EQ(flushAgain, -EAGAIN);
  // Once the queue drained, requests are accepted again.
  ASSERT_TRUE(readSync(*disk, *loop, 0, buffer.data(), buffer.size()).ok());
}

TEST_F(Qcow2Bounds, DirtyTablesAreWrittenBackWithoutAFlush) {
  std::string image = createImage("writes.qcow2");
  std::vector<uint8_t> expected(kDisk, 0);
  {
    auto disk = open(image, kSmallCache);
    ASSERT_TRUE(disk);
    for (uint64_t table = 0; table < kTables; ++table) {
      auto data = blockData(table);
      ASSERT_TRUE(writeSync(*disk, *loop, blockOffset(table), data.data(), data.size()).ok());
      std::memcpy(expected.data() + blockOffset(table), data.data(), data.size());
      expectBounded(qcow2(*disk), "after writing table " + std::to_string(table));
    }
    // Every block reads back through tables evicted and loaded again.
    for (uint64_t table = 0; table < kTables; ++table) {
      std::vector<uint8_t> got(kCluster);
      ASSERT_TRUE(readSync(*disk, *loop, blockOffset(table), got.data(), got.size()).ok());
      ASSERT_EQ(got, blockData(table)) << "table " << table;
    }
    expectBounded(qcow2(*disk), "after reading back");
  }  // closed without a flush: the destructor writes the rest back
  auto result = runCommand("qemu-img check " + image);
  EXPECT_EQ(result.exitCode, 0) << result.output;
  expectQemuCompare(image, expected);
}

TEST_F(Qcow2Bounds, WriteZeroesOverManyTablesStaysBounded) {
  std::string image = createImage("zeroes.qcow2");
  {
    auto disk = open(image);
    ASSERT_TRUE(disk);
    for (uint64_t table = 0; table < kTables; ++table) {
      auto data = blockData(table);
      ASSERT_TRUE(writeSync(*disk, *loop, blockOffset(table), data.data(), data.size()).ok());
    }
    ASSERT_TRUE(flushSync(*disk, *loop).ok());
  }
  {
    // One request dirties every L2 table of the disk (and releases every data cluster).
    auto disk = open(image, kSmallCache);
    ASSERT_TRUE(disk);
    ASSERT_TRUE(writeZeroesSync(*disk, *loop, 0, kDisk).ok());
    expectBounded(qcow2(*disk), "after zeroing the disk");
    std::vector<uint8_t> got(kCluster);
    ASSERT_TRUE(readSync(*disk, *loop, blockOffset(kTables - 1), got.data(), got.size()).ok());
    EXPECT_EQ(got, std::vector<uint8_t>(kCluster, 0));
  }
  auto result = runCommand("qemu-img check " + image);
  EXPECT_EQ(result.exitCode, 0) << result.output;
  expectQemuCompare(image, std::vector<uint8_t>(kDisk, 0));
}

// The one descriptor this process has open on `path` (-1 unless exactly one).
int openDescriptorOf(const std::string& path) {
  const auto target = std::filesystem::canonical(path);
  int found = -1;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code error;
    auto link = std::filesystem::read_symlink(entry.path(), error);
    if (error || link != target) continue;
    if (found >= 0) return -1;
    found = std::stoi(entry.path().filename().string());
  }
  return found;
}

TEST_F(Qcow2Bounds, FailedBoundedWritebackFailsTheWaitingWriteAndIsRetried) {
  std::string image = createImage("failing.qcow2");
  std::vector<uint8_t> expected(kDisk, 0);
  {
    auto disk = open(image, kSmallCache);
    ASSERT_TRUE(disk);
    auto writeTable = [&](uint64_t table) {
      auto data = blockData(table);
      int result = writeSync(*disk, *loop, blockOffset(table), data.data(), data.size()).ok() ? 0 : -1;
      if (result == 0) std::memcpy(expected.data() + blockOffset(table), data.data(), data.size());
      return result;
    };
    // Nine dirty tables: past the bound, so the next write starts a write-back.
    for (uint64_t table = 0; table < 9; ++table) ASSERT_EQ(writeTable(table), 0);
    ASSERT_TRUE(qcow2(*disk).metadata().writebackDue());
    // The image's descriptor becomes a read-only one: every write to the file fails.
    const int fd = openDescriptorOf(image);
    ASSERT_GE(fd, 0);
    UniqueFd saved(::dup(fd));
    UniqueFd readOnly(::open(image.c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_GE(::dup2(readOnly.get(), fd), 0);
    // Each write waits for a write-back that fails, and fails with it (no hang, no loop).
    EXPECT_NE(writeTable(9), 0);
    EXPECT_NE(writeTable(9), 0);
    EXPECT_TRUE(qcow2(*disk).metadata().writebackDue());
    // Writable again: the next write-back succeeds, so does the write.
    ASSERT_GE(::dup2(saved.get(), fd), 0);
    EXPECT_EQ(writeTable(9), 0);
    EXPECT_FALSE(qcow2(*disk).metadata().writebackDue());
    for (uint64_t table = 10; table < 24; ++table) ASSERT_EQ(writeTable(table), 0);
    ASSERT_TRUE(flushSync(*disk, *loop).ok());
  }
  auto result = runCommand("qemu-img check " + image);
  EXPECT_EQ(result.exitCode, 0) << result.output;
  expectQemuCompare(image, expected);
}

TEST_F(Qcow2Bounds, KilledWithoutEverFlushingLeavesAConsistentImage) {
  // A child writes across the disk and never flushes; the bounded write-backs
  // put metadata on disk meanwhile, and wherever the kill lands qemu-img may
  // find leaks, never corruption.
  for (int attempt = 0; attempt < 4; ++attempt) {
    std::string image = createImage("killed" + std::to_string(attempt) + ".qcow2");
    int status = killAfterReady(
        [&](const std::function<void()>& ready) {
          auto childLoop = std::move(*EventLoop::create());
          auto disk = openDiskImage(image, kSmallCache, *childLoop);
          if (!disk.ok()) ::_exit(1);
          for (uint64_t i = 0;; ++i) {
            uint64_t table = i % kTables;
            auto data = blockData(table + i / kTables);
            if (!writeSync(**disk, *childLoop, blockOffset(table), data.data(), data.size()).ok()) ::_exit(2);
            // The parent starts its clock once the first write-backs must have run.
            if (i == 64) ready();
          }
        },
        20000 + attempt * 30000);
    ASSERT_NE(status, -1) << "the child failed before its first write-backs";
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child stopped by itself: " << status;
    auto result = runCommand("qemu-img check " + image);
    EXPECT_TRUE(result.exitCode == 0 || result.exitCode == 3) << "attempt " << attempt << "\n" << result.output;
    // Without a flush, only the bounded write-backs can have mapped data.
    auto map = runCommand("qemu-img map --output=json " + image);
    EXPECT_NE(map.output.find("\"data\": true"), std::string::npos) << map.output;
  }
}

TEST_F(Qcow2Bounds, FailedAllocationScanMovesTheFreeClusterHint) {
  std::string image = dir.file("badblock.qcow2");
  run("qemu-img create -f qcow2 -o cluster_size=512 " + image + " 1M");
  run("qemu-io -f qcow2 -c 'write -P 1 0 1M' " + image);
  UniqueFd fd(::open(image.c_str(), O_RDWR | O_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  struct stat st {};
  ASSERT_EQ(::fstat(fd.get(), &st), 0);
  const auto fileSize = static_cast<uint64_t>(st.st_size);
  std::vector<uint8_t> headerBytes(512);
  ASSERT_EQ(::pread(fd.get(), headerBytes.data(), headerBytes.size(), 0), 512);
  auto header = qcow2::parseHeader(headerBytes, fileSize, image);
  ASSERT_TRUE(header.ok()) << header.error().message;
  const uint64_t perBlock = header->refcountsPerBlock();  // 256
  constexpr uint64_t kBadBlock = 3;
  {
    // Precondition: every cluster the first three refcount blocks describe is in use.
    auto meta = qcow2::Metadata::load(fd.get(), *header, fileSize, image, false);
    ASSERT_TRUE(meta.ok());
    ASSERT_GT(fileSize / 512, (kBadBlock + 1) * perBlock);
    for (uint64_t c = 0; c < kBadBlock * perBlock; ++c) ASSERT_NE(*(*meta)->refcount(c), 0u) << "cluster " << c;
  }
  // The fourth refcount table entry gets a reserved bit: its block cannot be used.
  uint8_t entry[8];
  const off_t entryAt = static_cast<off_t>(header->refcountTableOffset + kBadBlock * 8);
  ASSERT_EQ(::pread(fd.get(), entry, 8, entryAt), 8);
  entry[7] |= 1;
  ASSERT_EQ(::pwrite(fd.get(), entry, 8, entryAt), 8);

  auto meta = qcow2::Metadata::load(fd.get(), *header, fileSize, image, true);
  ASSERT_TRUE(meta.ok());
  EXPECT_FALSE((*meta)->allocateClusters(1).ok());
  // The scan went through three blocks of used clusters: the next one starts after them.
  EXPECT_EQ((*meta)->freeClusterHint(), kBadBlock * perBlock);
  EXPECT_FALSE((*meta)->allocateClusters(1).ok());
  EXPECT_EQ((*meta)->freeClusterHint(), kBadBlock * perBlock);
}

}  // namespace
}  // namespace strata::storage
