#include "storage/raw_image.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>

#include "storage/disk_image.h"
#include "storage/sync_io.h"
#include "disk_image_test.h"

namespace strata::storage {
namespace {

using testing::DiskImageTest;
using testing::pattern;
using testing::readFile;
using testing::writeFile;

class RawImageTest : public DiskImageTest {};

TEST_F(RawImageTest, ReadsFileContentsAndReportsSize) {
  auto bytes = pattern(1 << 20, 1);
  writeFile(dir.file("a.img"), bytes);
  auto image = open(dir.file("a.img"));
  ASSERT_TRUE(image);
  EXPECT_EQ(image->sizeBytes(), 1u << 20);
  EXPECT_EQ(image->format(), ImageFormat::Raw);
  EXPECT_FALSE(image->readOnly());
  std::vector<uint8_t> got(8192);
  ASSERT_TRUE(readSync(*image, *loop, 4096 * 3 + 17, got.data(), got.size()).ok());
  EXPECT_EQ(0, std::memcmp(got.data(), bytes.data() + 4096 * 3 + 17, got.size()));
}

TEST_F(RawImageTest, VectoredWriteLandsInOrderAndSurvivesFlush) {
  writeFile(dir.file("a.img"), std::vector<uint8_t>(65536, 0));
  auto image = open(dir.file("a.img"));
  ASSERT_TRUE(image);
  auto first = pattern(1000, 2);
  auto second = pattern(3000, 3);
  int status = runUntilComplete(*loop, [&](IoCompletion done) {
    image->writev(5000, {iovec{first.data(), first.size()}, iovec{second.data(), second.size()}}, std::move(done));
  });
  EXPECT_EQ(status, 0);
  ASSERT_TRUE(flushSync(*image, *loop).ok());
  auto file = readFile(dir.file("a.img"));
  ASSERT_EQ(file.size(), 65536u);
  EXPECT_EQ(0, std::memcmp(file.data() + 5000, first.data(), 1000));
  EXPECT_EQ(0, std::memcmp(file.data() + 6000, second.data(), 3000));
  EXPECT_EQ(file[4999], 0);
  EXPECT_EQ(file[9000], 0);
}

TEST_F(RawImageTest, ManyConcurrentRequestsAllComplete) {
  writeFile(dir.file("a.img"), std::vector<uint8_t>(1 << 20, 0));
  auto image = open(dir.file("a.img"));
  ASSERT_TRUE(image);
  // More requests than the ring holds, so the backlog path is exercised too.
  std::vector<std::vector<uint8_t>> blocks;
  for (int i = 0; i < 256; ++i) blocks.push_back(pattern(4096, 100 + i));
  int completed = 0;
  for (int i = 0; i < 256; ++i) {
    image->writev(static_cast<uint64_t>(i) * 4096, {iovec{blocks[i].data(), 4096}}, [&](int result) {
      EXPECT_EQ(result, 0);
      ++completed;
    });
  }
  while (completed < 256) loop->runOnce(-1);
  auto file = readFile(dir.file("a.img"));
  for (int i = 0; i < 256; ++i) ASSERT_EQ(0, std::memcmp(file.data() + i * 4096, blocks[i].data(), 4096)) << i;
}

TEST_F(RawImageTest, ReadPastEndOfShrunkFileReturnsZeroes) {
  writeFile(dir.file("a.img"), std::vector<uint8_t>(8192, 0x5a));
  auto image = open(dir.file("a.img"));
  ASSERT_TRUE(image);
  ASSERT_EQ(0, ::truncate(dir.file("a.img").c_str(), 6000));  // shrunk behind the device's back
  std::vector<uint8_t> got(4096, 0xff);
  ASSERT_TRUE(readSync(*image, *loop, 4096, got.data(), got.size()).ok());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], i < 6000 - 4096 ? 0x5a : 0) << i;
}

TEST_F(RawImageTest, RequestsPastTheEndAreRejected) {
  writeFile(dir.file("a.img"), std::vector<uint8_t>(4096, 1));
  auto image = open(dir.file("a.img"));
  ASSERT_TRUE(image);
  std::vector<uint8_t> buffer(512);
  EXPECT_FALSE(readSync(*image, *loop, 4096 - 256, buffer.data(), buffer.size()).ok());
  EXPECT_FALSE(writeSync(*image, *loop, 4096, buffer.data(), buffer.size()).ok());
  EXPECT_FALSE(discardSync(*image, *loop, UINT64_MAX - 10, 100).ok());
  EXPECT_EQ(readFile(dir.file("a.img")).size(), 4096u);
}

TEST_F(RawImageTest, DiscardAndWriteZeroesReadBackAsZero) {
  auto bytes = pattern(1 << 20, 7);
  writeFile(dir.file("a.img"), bytes);
  auto image = open(dir.file("a.img"));
  ASSERT_TRUE(image);
  ASSERT_TRUE(discardSync(*image, *loop, 65536, 131072).ok());
  ASSERT_TRUE(writeZeroesSync(*image, *loop, 300000, 12345).ok());
  ASSERT_TRUE(flushSync(*image, *loop).ok());
  auto file = readFile(dir.file("a.img"));
  ASSERT_EQ(file.size(), bytes.size());
  for (size_t i = 0; i < file.size(); ++i) {
    bool zeroed = (i >= 65536 && i < 65536 + 131072) || (i >= 300000 && i < 300000 + 12345);
    ASSERT_EQ(file[i], zeroed ? 0 : bytes[i]) << "at " << i;
  }
  // The punched range is a hole now, and reported as zero by block status.
  auto status = image->blockStatus(65536, 131072);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->kind, ExtentKind::Zero);
  EXPECT_EQ(status->length, 131072u);
}

TEST_F(RawImageTest, ReadOnlyOpenRefusesWrites) {
  writeFile(dir.file("a.img"), std::vector<uint8_t>(4096, 9));
  DiskOptions options;
  options.readOnly = true;
  auto image = open(dir.file("a.img"), options);
  ASSERT_TRUE(image);
  EXPECT_TRUE(image->readOnly());
  std::vector<uint8_t> buffer(512, 1);
  int status = runUntilComplete(*loop, [&](IoCompletion done) {
    image->writev(0, {iovec{buffer.data(), buffer.size()}}, std::move(done));
  });
  EXPECT_EQ(status, -EROFS);
  status = runUntilComplete(*loop, [&](IoCompletion done) { image->discard(0, 512, std::move(done)); });
  EXPECT_EQ(status, -EROFS);
  EXPECT_TRUE(flushSync(*image, *loop).ok());
  EXPECT_EQ(readFile(dir.file("a.img")), std::vector<uint8_t>(4096, 9));
}

TEST_F(RawImageTest, DirectIoWorksWithAlignedBuffers) {
  writeFile(dir.file("a.img"), std::vector<uint8_t>(65536, 0));
  DiskOptions options;
  options.direct = true;
  auto image = open(dir.file("a.img"), options);
  ASSERT_TRUE(image);
  void* raw = nullptr;
  ASSERT_EQ(0, posix_memalign(&raw, 4096, 8192));
  std::unique_ptr<void, decltype(&free)> buffer(raw, &free);
  std::memset(raw, 0x3c, 8192);
  ASSERT_TRUE(writeSync(*image, *loop, 4096, raw, 8192).ok());
  std::memset(raw, 0, 8192);
  ASSERT_TRUE(readSync(*image, *loop, 4096, raw, 8192).ok());
  EXPECT_EQ(static_cast<uint8_t*>(raw)[8191], 0x3c);
}

TEST_F(RawImageTest, CompletionIsNeverDeliveredInsideTheSubmittingCall) {
  writeFile(dir.file("a.img"), std::vector<uint8_t>(4096, 0));
  auto image = open(dir.file("a.img"));
  ASSERT_TRUE(image);
  bool done = false;
  std::vector<uint8_t> buffer(512);
  image->readv(1 << 20, {iovec{buffer.data(), buffer.size()}}, [&](int result) {
    EXPECT_EQ(result, -EINVAL);
    done = true;
  });
  EXPECT_FALSE(done);
  while (!done) loop->runOnce(-1);
}

TEST_F(RawImageTest, MissingFileGivesClearError) {
  auto image = openDiskImage(dir.file("disk.img"), {}, *loop);
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.error().message, dir.file("disk.img") + ": No such file or directory");
}

TEST_F(RawImageTest, ProbeDetectsQcow2MagicAndRaw) {
  writeFile(dir.file("raw.img"), std::vector<uint8_t>(512, 0));
  std::vector<uint8_t> header(512, 0);
  std::memcpy(header.data(), "QFI\xfb", 4);
  writeFile(dir.file("q.img"), header);
  writeFile(dir.file("empty.img"), {});
  EXPECT_EQ(*probeImageFormat(dir.file("raw.img")), ImageFormat::Raw);
  EXPECT_EQ(*probeImageFormat(dir.file("q.img")), ImageFormat::Qcow2);
  EXPECT_EQ(*probeImageFormat(dir.file("empty.img")), ImageFormat::Raw);
}

}  // namespace
}  // namespace strata::storage
