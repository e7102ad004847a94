// Hostile and broken qcow2 images: every one must give a clear error (or an
// I/O error for the affected request), never a crash or a hang.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "storage/disk_image.h"
#include "storage/image_create.h"
#include "storage/image_tools.h"
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

class Qcow2Malformed : public ::testing::Test {
 protected:
  void SetUp() override {
    loop = std::move(*EventLoop::create());
    image = dir.file("bad.qcow2");
    CreateOptions options;
    options.format = ImageFormat::Qcow2;
    options.size = 16 << 20;
    ASSERT_TRUE(createImage(image, options).ok());
  }
  void patch64(uint64_t offset, uint64_t value) {
    auto bytes = readFile(image);
    ASSERT_LE(offset + 8, bytes.size());
    qcow2::storeBe64(&bytes[offset], value);
    writeFile(image, bytes);
  }
  void patch32(uint64_t offset, uint32_t value) {
    auto bytes = readFile(image);
    ASSERT_LE(offset + 4, bytes.size());
    qcow2::storeBe32(&bytes[offset], value);
    writeFile(image, bytes);
  }
  std::string openError(bool readOnly = false) {
    DiskOptions options;
    options.readOnly = readOnly;
    auto opened = openDiskImage(image, options, *loop);
    return opened.ok() ? "" : opened.error().message;
  }
  void writeSomeData() {
    auto disk = openDiskImage(image, {}, *loop);
    ASSERT_TRUE(disk.ok()) << disk.error().message;
    auto data = pattern(200000, 1);
    ASSERT_TRUE(writeSync(**disk, *loop, 100000, data.data(), data.size()).ok());
    ASSERT_TRUE(flushSync(**disk, *loop).ok());
  }

  TempDir dir;
  std::unique_ptr<EventLoop> loop;
  std::string image;
};

TEST_F(Qcow2Malformed, TruncatedHeader) {
  auto bytes = readFile(image);
  bytes.resize(50);
  writeFile(image, bytes);
  EXPECT_EQ(openError(), image + ": truncated qcow2 header");
}

TEST_F(Qcow2Malformed, Version2IsRefusedByName) {
  std::string v2 = dir.file("x.qcow2");
  ASSERT_EQ(runCommand("qemu-img create -f qcow2 -o compat=0.10 " + v2 + " 1M").exitCode, 0);
  auto opened = openDiskImage(v2, {}, *loop);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().message, v2 + ": unsupported qcow2 version 2");
}

TEST_F(Qcow2Malformed, ClusterBitsOutOfRange) {
  patch32(20, 8);
  EXPECT_NE(openError().find("unsupported cluster size 2^8"), std::string::npos) << openError();
  patch32(20, 22);
  EXPECT_NE(openError().find("unsupported cluster size 2^22"), std::string::npos);
  patch32(20, 0xffffffff);
  EXPECT_NE(openError().find("unsupported cluster size"), std::string::npos);
}

TEST_F(Qcow2Malformed, HugeL1Size) {
  patch32(36, 0x7fffffff);
  EXPECT_NE(openError().find("L1 table too large"), std::string::npos) << openError();
}

TEST_F(Qcow2Malformed, L1TooSmallForVirtualSize) {
  patch64(24, 1ull << 40);  // 1 TiB needs 2048 L1 entries at 64K clusters; the image has 1
  EXPECT_NE(openError().find("L1 table too small"), std::string::npos) << openError();
}

TEST_F(Qcow2Malformed, TableOffsetsPastEofOrUnaligned) {
  patch64(40, 1ull << 40);
  EXPECT_NE(openError().find("L1 table at 0x10000000000 lies past the end"), std::string::npos) << openError();
  patch64(40, 0x30001);
  EXPECT_NE(openError().find("L1 table offset 0x30001 is invalid"), std::string::npos) << openError();
  patch64(40, 0x30000);
  patch64(48, 0x10001);
  EXPECT_NE(openError().find("refcount table offset 0x10001 is invalid"), std::string::npos) << openError();
  patch64(48, 1ull << 50);
  EXPECT_NE(openError().find("refcount table at"), std::string::npos) << openError();
  patch64(48, 0x10000);
  patch32(56, 1000000);
  EXPECT_NE(openError().find("invalid refcount table size"), std::string::npos) << openError();
}

TEST_F(Qcow2Malformed, UnknownIncompatibleFeatureBit) {
  patch64(72, 1ull << 5);
  EXPECT_EQ(openError(), image + ": unsupported qcow2 feature(s): unknown feature bit 5");
  patch64(72, 1ull << 4);
  EXPECT_EQ(openError(), image + ": unsupported qcow2 feature(s): extended L2 entries");
}

TEST_F(Qcow2Malformed, CorruptBitAllowsOnlyReadOnly) {
  patch64(72, qcow2::kIncompatCorrupt);
  EXPECT_NE(openError().find("marked corrupt"), std::string::npos);
  EXPECT_EQ(openError(true), "");
}

TEST_F(Qcow2Malformed, BadRefcountOrderAndHeaderLength) {
  patch32(96, 7);
  EXPECT_NE(openError().find("invalid refcount order 7"), std::string::npos);
  patch32(96, 4);
  patch32(100, 1 << 20);
  EXPECT_NE(openError().find("invalid header length"), std::string::npos);
  patch32(100, 101);
  EXPECT_NE(openError().find("invalid header length"), std::string::npos);
}

TEST_F(Qcow2Malformed, OverlongExtensionAndBackingName) {
  // An extension claiming 1 GiB right after the header.
  patch32(112, qcow2::kExtBackingFormat);
  patch32(116, 1u << 30);
  EXPECT_NE(openError().find("runs past the header area"), std::string::npos) << openError();
  patch32(112, 0);
  patch32(116, 0);
  patch64(8, 200);
  patch32(16, 5000);
  EXPECT_NE(openError().find("invalid backing file name length 5000"), std::string::npos) << openError();
  patch32(16, 100);
  patch64(8, 1ull << 40);
  EXPECT_NE(openError().find("lies outside the header cluster"), std::string::npos) << openError();
}

TEST_F(Qcow2Malformed, BackingChainLoopIsDetected) {
  CreateOptions options;
  options.format = ImageFormat::Qcow2;
  options.size = 1 << 20;
  options.backingFormat = ImageFormat::Qcow2;
  options.backingFile = "b.qcow2";
  ASSERT_TRUE(createImage(dir.file("a.qcow2"), options).ok());
  options.backingFile = "a.qcow2";
  ASSERT_TRUE(createImage(dir.file("b.qcow2"), options).ok());
  auto opened = openDiskImage(dir.file("a.qcow2"), {}, *loop);
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.error().message.find("backing chain loop"), std::string::npos) << opened.error().message;
  // A self-reference too.
  options.backingFile = "self.qcow2";
  ASSERT_TRUE(createImage(dir.file("self.qcow2"), options).ok());
  opened = openDiskImage(dir.file("self.qcow2"), {}, *loop);
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.error().message.find("backing chain loop"), std::string::npos);
}

TEST_F(Qcow2Malformed, MissingBackingFileNamesIt) {
  CreateOptions options;
  options.format = ImageFormat::Qcow2;
  options.size = 1 << 20;
  options.backingFile = "gone.raw";
  options.backingFormat = ImageFormat::Raw;
  ASSERT_TRUE(createImage(dir.file("orphan.qcow2"), options).ok());
  auto opened = openDiskImage(dir.file("orphan.qcow2"), {}, *loop);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().message, dir.file("orphan.qcow2") + ": backing file: " + dir.file("gone.raw") +
                                        ": No such file or directory");
}

TEST_F(Qcow2Malformed, BadL1AndL2EntriesFailTheRequestOnly) {
  writeSomeData();
  // L1 entry 0 -> an offset past the end of the file.
  patch64(0x30000, (1ull << 40) | qcow2::kEntryCopied);
  auto disk = openDiskImage(image, {}, *loop);
  ASSERT_TRUE(disk.ok()) << disk.error().message;
  std::vector<uint8_t> buffer(4096);
  EXPECT_FALSE(readSync(**disk, *loop, 100000, buffer.data(), buffer.size()).ok());
  EXPECT_FALSE(writeSync(**disk, *loop, 100000, buffer.data(), buffer.size()).ok());
}

TEST_F(Qcow2Malformed, UnalignedL2EntryFailsTheRequest) {
  writeSomeData();
  auto bytes = readFile(image);
  uint64_t l2 = qcow2::loadBe64(&bytes[0x30000]) & qcow2::kL1OffsetMask;
  ASSERT_NE(l2, 0u);
  qcow2::storeBe64(&bytes[l2 + 8], 0x50200 | qcow2::kEntryCopied);  // guest cluster 1 -> unaligned
  writeFile(image, bytes);
  auto disk = openDiskImage(image, {}, *loop);
  ASSERT_TRUE(disk.ok());
  std::vector<uint8_t> buffer(4096);
  EXPECT_FALSE(readSync(**disk, *loop, 65536, buffer.data(), buffer.size()).ok());
  EXPECT_TRUE(readSync(**disk, *loop, 0, buffer.data(), buffer.size()).ok());  // other clusters still work
}

TEST_F(Qcow2Malformed, RandomHeaderAndTableCorruptionNeverCrashes) {
  writeSomeData();
  const auto pristine = readFile(image);
  std::mt19937 random(42);
  int opened = 0;
  for (int round = 0; round < 300; ++round) {
    auto bytes = pristine;
    int flips = 1 + static_cast<int>(random() % 4);
    for (int i = 0; i < flips; ++i) {
      // Aim at the header, the refcount table, the refcount block, the L1 table and the first L2 table.
      static const uint64_t regions[] = {0, 0x10000, 0x20000, 0x30000, 0x40000};
      uint64_t base = regions[random() % 5];
      uint64_t span = base == 0 ? 256 : 64;
      uint64_t at = base + random() % span;
      if (at < bytes.size()) bytes[at] ^= static_cast<uint8_t>(1u << (random() % 8));
    }
    writeFile(image, bytes);
    auto disk = openDiskImage(image, {}, *loop);
    if (!disk.ok()) continue;
    ++opened;
    std::vector<uint8_t> buffer(300000);
    (void)readSync(**disk, *loop, 0, buffer.data(), buffer.size());
    (void)writeSync(**disk, *loop, 50000, buffer.data(), 100000);
    (void)flushSync(**disk, *loop);
    auto check = checkImage(image);
    (void)check;
  }
  EXPECT_GT(opened, 0);  // the mutations do not all hit fatal header fields
}

}  // namespace
}  // namespace strata::storage
