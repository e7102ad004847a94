// qcow2 metadata write-back (qcow2::Writeback) and the other asynchronous
// metadata paths, against qemu-img: a flush leaves an image `qemu-img check`
// accepts, also when the process is killed in the middle of one; a metadata
// write that fails (beyond RLIMIT_FSIZE) fails the flush, leaves the file
// consistent and is written by the next flush; the refcount table grows
// several times before one flush, or is written only when the image closes;
// compressed clusters from `qemu-img convert -c` read concurrently, buffered
// and with O_DIRECT; a corrupt compressed cluster fails only its own read.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "storage/disk_image.h"
#include "storage/qcow2_format.h"
#include "storage/qcow2_image.h"
#include "storage/sync_io.h"
#include "disk_image_test.h"

namespace strata::storage {
namespace {

using testing::DiskImageTest;
using testing::killAfterReady;
using testing::pattern;
using testing::readFile;
using testing::runCommand;
using testing::writeFile;
using testing::CommandResult;

class Qcow2Writeback : public DiskImageTest {
 protected:
  // qemu-img check's exit code: 0 clean, 2 corruption, 3 leaked clusters only.
  CommandResult check(const std::string& image) { return runCommand("qemu-img check " + image); }
  // qemu-img check finds nothing wrong and QEMU reads exactly `expected`.
  void expectCleanAndEqual(const std::string& image, const std::vector<uint8_t>& expected) {
    auto result = check(image);
    EXPECT_EQ(result.exitCode, 0) << result.output;
    expectQemuCompare(image, expected);
  }
  // Writes data at offset and records it in expected (the guest-visible bytes).
  void writeRecorded(DiskImage& disk, uint64_t offset, const std::vector<uint8_t>& data,
                     std::vector<uint8_t>& expected) {
    ASSERT_TRUE(writeSync(disk, *loop, offset, data.data(), data.size()).ok());
    std::memcpy(expected.data() + offset, data.data(), data.size());
  }
  using Request = std::function<void(IoCompletion)>;
  // Requests for runConcurrently: one write or read of a buffer that outlives them.
  static Request writeAt(DiskImage& disk, uint64_t offset, uint8_t* data, size_t size) {
    return [&disk, offset, data, size](IoCompletion done) {
      disk.writev(offset, {iovec{data, size}}, std::move(done));
    };
  }
  static Request readAt(DiskImage& disk, uint64_t offset, uint8_t* data, size_t size) {
    return [&disk, offset, data, size](IoCompletion done) {
      disk.readv(offset, {iovec{data, size}}, std::move(done));
    };
  }
  // Submits every request at once, so they are in flight together.
  int runConcurrently(const std::vector<Request>& requests) {
    size_t left = requests.size();
    int firstError = 0;
    for (const auto& request : requests) {
      request([&](int result) {
        if (result < 0 && firstError == 0) firstError = result;
        --left;
      });
    }
    while (left > 0) loop->runOnce(-1);
    return firstError;
  }
};

uint64_t fileSize(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

// Caps the size any file of this process may grow to (RLIMIT_FSIZE) for its
// lifetime: writes past the cap fail with EFBIG instead of raising SIGXFSZ.
class FileSizeCap {
 public:
  explicit FileSizeCap(uint64_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    previousHandler_ = ::signal(SIGXFSZ, SIG_IGN);
    rlimit capped = saved_;
    capped.rlim_cur = bytes;
    ok_ = ::setrlimit(RLIMIT_FSIZE, &capped) == 0;
  }
  ~FileSizeCap() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    ::signal(SIGXFSZ, previousHandler_);
  }
  bool ok() const { return ok_; }

 private:
  rlimit saved_{};
  sighandler_t previousHandler_;
  bool ok_ = false;
};

TEST_F(Qcow2Writeback, ConcurrentAllocatingWritesFlushToACleanImage) {
  // 512-byte clusters: one L2 table maps 32 KiB, so 256 writes in flight at
  // once, one per 32 KiB slot, dirty 256 new L2 tables, many refcount blocks
  // and the L1 table for one flush.
  std::string image = dir.file("many.qcow2");
  run("qemu-img create -f qcow2 -o cluster_size=512 " + image + " 8M");
  std::vector<uint8_t> expected(8 << 20, 0);
  auto disk = open(image);
  ASSERT_TRUE(disk);
  std::vector<size_t> slots(256);
  for (size_t i = 0; i < slots.size(); ++i) slots[i] = i;
  std::mt19937 random(5);
  std::shuffle(slots.begin(), slots.end(), random);
  std::vector<uint64_t> offsets;
  std::vector<std::vector<uint8_t>> payloads;
  for (size_t slot : slots) {
    offsets.push_back(slot * 32768 + (random() % 16) * 512);
    payloads.push_back(pattern(16384, 100 + static_cast<uint32_t>(slot)));
    std::memcpy(&expected[offsets.back()], payloads.back().data(), 16384);
  }
  std::vector<Request> writes;
  for (size_t i = 0; i < slots.size(); ++i) {
    writes.push_back(writeAt(*disk, offsets[i], payloads[i].data(), payloads[i].size()));
  }
  ASSERT_EQ(runConcurrently(writes), 0);
  ASSERT_TRUE(flushSync(*disk, *loop).ok());
  // While the image is still open: everything the flush wrote is consistent.
  expectCleanAndEqual(image, expected);
  disk.reset();
  auto result = check(image);
  EXPECT_EQ(result.exitCode, 0) << result.output;
}

TEST_F(Qcow2Writeback, KilledDuringFlushesLeavesOnlyLeaks) {
  // A child writes and flushes in a loop; killed at any moment, the file may
  // hold part of one flush's phases, never a pointer to something unwritten.
  for (int attempt = 0; attempt < 6; ++attempt) {
    std::string image = dir.file("killed" + std::to_string(attempt) + ".qcow2");
    run("qemu-img create -f qcow2 -o cluster_size=512 " + image + " 16M");
    int status = killAfterReady(
        [&](const std::function<void()>& ready) {
          auto childLoop = std::move(*EventLoop::create());
          auto disk = openDiskImage(image, {}, *childLoop);
          if (!disk.ok()) ::_exit(1);
          // Generation 0 is flushed before the parent starts its clock.
          auto first = pattern(1 << 20, 7);
          if (!writeSync(**disk, *childLoop, 0, first.data(), first.size()).ok()) ::_exit(2);
          if (!flushSync(**disk, *childLoop).ok()) ::_exit(3);
          ready();
          for (uint32_t i = 0;; ++i) {
            auto data = pattern(96 * 1024, 1000 + i);
            uint64_t offset = (1 << 20) + (uint64_t{i} * 70001 * 512) % (14 << 20);
            (void)writeSync(**disk, *childLoop, offset, data.data(), data.size());
            if (i % 4 == 3) (void)discardSync(**disk, *childLoop, offset, 64 * 1024);
            (void)flushSync(**disk, *childLoop);
          }
        },
        30000 + attempt * 37000);
    ASSERT_NE(status, -1) << "the child failed before its first flush";
    auto result = check(image);
    EXPECT_TRUE(result.exitCode == 0 || result.exitCode == 3) << "attempt " << attempt << "\n" << result.output;
    auto disk = open(image, {.readOnly = true});
    ASSERT_TRUE(disk);
    std::vector<uint8_t> got(1 << 20);
    ASSERT_TRUE(readSync(*disk, *loop, 0, got.data(), got.size()).ok());
    EXPECT_TRUE(got == pattern(1 << 20, 7)) << "attempt " << attempt;
  }
}

TEST_F(Qcow2Writeback, FailedMetadataWriteFailsTheFlushAndIsRetried) {
  std::string image = dir.file("capped.qcow2");
  run("qemu-img create -f qcow2 -o cluster_size=65536 " + image + " 64M");
  std::vector<uint8_t> expected(64 << 20, 0);
  auto disk = open(image);
  ASSERT_TRUE(disk);
  // The data cluster is allocated first, the L2 table it needs right after it:
  // once the data is written the table is the only thing past the end of the file.
  auto data = pattern(65536, 21);
  ASSERT_NO_FATAL_FAILURE(writeRecorded(*disk, 0, data, expected));
  const uint64_t sizeWithData = fileSize(image);
  {
    FileSizeCap cap(sizeWithData);
    ASSERT_TRUE(cap.ok());
    auto flushed = flushSync(*disk, *loop);
    ASSERT_FALSE(flushed.ok()) << "the L2 table write past the size limit must fail the flush";
  }
  // What is on disk now: the refcounts for data and table, no L1 entry yet.
  auto result = check(image);
  EXPECT_EQ(result.exitCode, 3) << "leaked clusters only, nothing referenced unwritten\n" << result.output;
  EXPECT_EQ(fileSize(image), sizeWithData);
  // The table stayed dirty: the next flush writes it.
  ASSERT_TRUE(flushSync(*disk, *loop).ok());
  expectCleanAndEqual(image, expected);
  // The image stays usable after the failure.
  auto more = pattern(4096, 22);
  ASSERT_NO_FATAL_FAILURE(writeRecorded(*disk, 32 << 20, more, expected));
  ASSERT_TRUE(flushSync(*disk, *loop).ok());
  disk.reset();
  expectCleanAndEqual(image, expected);
}

TEST_F(Qcow2Writeback, FailedWriteDuringRefcountTableGrowthKeepsTheOldTableValid) {
  // 512-byte clusters, 16-bit refcounts: the one-cluster refcount table covers
  // 8 MiB of file, so 9 MiB of data makes it grow (in memory) before the flush.
  std::string image = dir.file("growcap.qcow2");
  run("qemu-img create -f qcow2 -o cluster_size=512 " + image + " 16M");
  std::vector<uint8_t> expected(16 << 20, 0);
  auto disk = open(image);
  ASSERT_TRUE(disk);
  for (uint64_t offset = 0; offset < (9u << 20); offset += 1 << 20) {
    auto data = pattern(1 << 20, static_cast<uint32_t>(offset >> 20));
    ASSERT_NO_FATAL_FAILURE(writeRecorded(*disk, offset, data, expected));
  }
  // One more cluster in an untouched L2 range: its table goes past the end of the file.
  auto last = pattern(512, 99);
  ASSERT_NO_FATAL_FAILURE(writeRecorded(*disk, 15 << 20, last, expected));
  auto before = readFile(image);
  ASSERT_GE(before.size(), 60u);
  {
    FileSizeCap cap(fileSize(image));
    ASSERT_TRUE(cap.ok());
    ASSERT_FALSE(flushSync(*disk, *loop).ok());
  }
  auto result = check(image);
  EXPECT_TRUE(result.exitCode == 0 || result.exitCode == 3) << result.output;
  ASSERT_TRUE(flushSync(*disk, *loop).ok());
  auto after = readFile(image);
  EXPECT_GT(qcow2::loadBe32(&after[56]), qcow2::loadBe32(&before[56])) << "refcount_table_clusters grew";
  EXPECT_NE(qcow2::loadBe64(&after[48]), qcow2::loadBe64(&before[48])) << "the table moved";
  // One more flush writes the refcount drop of the old table's cluster.
  ASSERT_TRUE(flushSync(*disk, *loop).ok());
  expectCleanAndEqual(image, expected);
}

TEST_F(Qcow2Writeback, RefcountTableGrowsSeveralTimesBeforeOneFlush) {
  // 64-bit refcounts on 512-byte clusters: a refcount block covers 32 KiB and
  // the first table 2 MiB, so 12 MiB of data outgrows it three times.
  std::string image = dir.file("grow3.qcow2");
  run("qemu-img create -f qcow2 -o cluster_size=512,refcount_bits=64 " + image + " 16M");
  std::vector<uint8_t> expected(16 << 20, 0);
  auto disk = open(image);
  ASSERT_TRUE(disk);
  std::vector<std::vector<uint8_t>> payloads;
  std::vector<Request> writes;
  for (uint64_t i = 0; i < 12; ++i) payloads.push_back(pattern(1 << 20, 300 + static_cast<uint32_t>(i)));
  for (uint64_t i = 0; i < 12; ++i) {
    writes.push_back(writeAt(*disk, i << 20, payloads[i].data(), payloads[i].size()));
    std::memcpy(expected.data() + (i << 20), payloads[i].data(), payloads[i].size());
  }
  ASSERT_EQ(runConcurrently(writes), 0);
  ASSERT_TRUE(flushSync(*disk, *loop).ok());
  auto result = check(image);
  // The old tables are released after the flush that made the new one durable:
  // until the next flush writes those refcount drops, they are leaks.
  EXPECT_TRUE(result.exitCode == 0 || result.exitCode == 3) << result.output;
  ASSERT_TRUE(flushSync(*disk, *loop).ok());
  result = check(image);
  EXPECT_EQ(result.exitCode, 0) << result.output;
  auto bytes = readFile(image);
  EXPECT_GE(qcow2::loadBe32(&bytes[56]), 4u) << "refcount_table_clusters";
  expectQemuCompare(image, expected);
}

TEST_F(Qcow2Writeback, GrownRefcountTableIsWrittenWhenTheImageCloses) {
  // No flush at all: the destructor's write-back puts the same phases on disk.
  std::string image = dir.file("growclose.qcow2");
  run("qemu-img create -f qcow2 -o cluster_size=512,refcount_bits=64 " + image + " 8M");
  std::vector<uint8_t> expected(8 << 20, 0);
  {
    auto disk = open(image);
    ASSERT_TRUE(disk);
    for (uint64_t offset = 0; offset < (6u << 20); offset += 1 << 20) {
      auto data = pattern(1 << 20, 400 + static_cast<uint32_t>(offset >> 20));
      ASSERT_NO_FATAL_FAILURE(writeRecorded(*disk, offset, data, expected));
    }
  }
  auto result = check(image);
  EXPECT_EQ(result.exitCode, 0) << result.output;
  auto bytes = readFile(image);
  EXPECT_GT(qcow2::loadBe32(&bytes[56]), 1u) << "refcount_table_clusters";
  expectQemuCompare(image, expected);
}

class Qcow2CompressedReads : public Qcow2Writeback, public ::testing::WithParamInterface<bool> {};

TEST_P(Qcow2CompressedReads, ConcurrentReadsAndCopyOnWriteMatchTheSource) {
  const bool direct = GetParam();
  constexpr uint64_t kSize = 4 << 20;
  std::vector<uint8_t> source(kSize, 0);
  for (uint64_t i = 0; i < kSize; ++i) source[i] = static_cast<uint8_t>((i / 700) * 13 + (i % 7));  // compressible
  auto noise = pattern(256 << 10, 5);  // incompressible: stored as normal clusters
  std::memcpy(source.data() + (1 << 20), noise.data(), noise.size());
  std::memset(source.data() + (3 << 20), 0, 256 << 10);
  writeFile(dir.file("source.raw"), source);
  std::string image = dir.file("compressed.qcow2");
  run("qemu-img convert -c -f raw -O qcow2 -o cluster_size=65536 " + dir.file("source.raw") + " " + image);
  DiskOptions options;
  options.direct = direct;
  auto disk = open(image, options);
  ASSERT_TRUE(disk);

  // Many reads in flight at once: 4 KiB-aligned slices across cluster boundaries, random order.
  constexpr size_t kRead = 12288;
  const size_t count = kSize / kRead;
  AlignedBuffer target(count * kRead);
  std::vector<size_t> order(count);
  for (size_t i = 0; i < count; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937(3));
  std::vector<Request> reads;
  for (size_t i : order) reads.push_back(readAt(*disk, i * kRead, target.data() + i * kRead, kRead));
  ASSERT_EQ(runConcurrently(reads), 0);
  EXPECT_EQ(std::memcmp(target.data(), source.data(), count * kRead), 0);

  // Partial writes into compressed clusters copy the rest of each cluster up, concurrently.
  AlignedBuffer payload(8192);
  std::memset(payload.data(), 0x6b, payload.size());
  std::vector<Request> writes;
  for (uint64_t cluster : {0u, 2u, 5u, 40u, 41u}) {
    uint64_t offset = cluster * 65536 + 16384;
    writes.push_back(writeAt(*disk, offset, payload.data(), payload.size()));
    std::memset(source.data() + offset, 0x6b, payload.size());
  }
  ASSERT_EQ(runConcurrently(writes), 0);
  ASSERT_TRUE(flushSync(*disk, *loop).ok());
  AlignedBuffer all(kSize);
  ASSERT_TRUE(readSync(*disk, *loop, 0, all.data(), kSize).ok());
  EXPECT_EQ(std::memcmp(all.data(), source.data(), kSize), 0);
  disk.reset();
  expectCleanAndEqual(image, source);
}

INSTANTIATE_TEST_SUITE_P(BufferedAndDirect, Qcow2CompressedReads, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) { return info.param ? "direct" : "buffered"; });

TEST_F(Qcow2Writeback, CorruptCompressedClusterFailsOnlyItsRead) {
  constexpr uint64_t kSize = 1 << 20;
  std::vector<uint8_t> source(kSize);
  for (uint64_t i = 0; i < kSize; ++i) source[i] = static_cast<uint8_t>(i / 300);
  writeFile(dir.file("source.raw"), source);
  std::string image = dir.file("corrupt.qcow2");
  run("qemu-img convert -c -f raw -O qcow2 -o cluster_size=65536 " + dir.file("source.raw") + " " + image);
  // Find guest cluster 0's compressed data (L1[0] -> L2[0]) and overwrite its start.
  auto bytes = readFile(image);
  uint64_t l1 = qcow2::loadBe64(&bytes[40]);
  uint64_t l2 = qcow2::loadBe64(&bytes[l1]) & qcow2::kL1OffsetMask;
  uint64_t entry = qcow2::loadBe64(&bytes[l2]);
  ASSERT_NE(entry & (1ull << 62), 0u) << "cluster 0 is compressed";
  const uint64_t host = entry & ((1ull << (62 - (16 - 8))) - 1);  // cluster_bits 16
  ASSERT_LT(host + 16, bytes.size());
  std::memset(&bytes[host], 0xff, 16);
  writeFile(image, bytes);

  auto disk = open(image, {.readOnly = true});
  ASSERT_TRUE(disk);
  std::vector<uint8_t> got(65536);
  EXPECT_FALSE(readSync(*disk, *loop, 0, got.data(), got.size()).ok());
  ASSERT_TRUE(readSync(*disk, *loop, 65536, got.data(), got.size()).ok());
  EXPECT_EQ(std::memcmp(got.data(), source.data() + 65536, got.size()), 0);
}

}  // namespace
}  // namespace strata::storage
