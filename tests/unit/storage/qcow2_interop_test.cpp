// Cross-checks against QEMU: images written by qemu-io are read byte-exact by
// strata; images written by strata pass `qemu-img check` and `qemu-img compare`.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "storage/disk_image.h"
#include "storage/image_create.h"
#include "storage/qcow2_image.h"
#include "storage/sync_io.h"
#include "base/unique_fd.h"
#include "disk_image_test.h"

namespace strata::storage {
namespace {

using testing::DiskImageTest;
using testing::pattern;
using testing::readFile;
using testing::runCommand;
using testing::writeFile;

constexpr uint64_t kDiskSize = 16ull << 20;

class Qcow2Interop : public DiskImageTest, public ::testing::WithParamInterface<uint32_t> {
 protected:
  std::vector<uint8_t> readAll(DiskImage& image) {
    std::vector<uint8_t> bytes(image.sizeBytes());
    auto read = readSync(image, *loop, 0, bytes.data(), bytes.size());
    EXPECT_TRUE(read.ok()) << (read.ok() ? "" : read.error().message);
    return bytes;
  }
  void qemuIo(const std::string& image, const std::string& commands) {
    auto result = runCommand("qemu-io -f qcow2 " + commands + " " + image);
    ASSERT_EQ(result.exitCode, 0) << result.output;
  }
  void expectQemuCheckClean(const std::string& image) {
    auto result = runCommand("qemu-img check " + image);
    EXPECT_EQ(result.exitCode, 0) << result.output;
  }
};

std::string clusterOption(uint32_t clusterSize) { return "-o cluster_size=" + std::to_string(clusterSize); }

// Names the first differing byte, so a failure says where to look.
::testing::AssertionResult sameBytes(const std::vector<uint8_t>& got, const std::vector<uint8_t>& expected) {
  if (got.size() != expected.size()) {
    return ::testing::AssertionFailure() << "size " << got.size() << " != " << expected.size();
  }
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != expected[i]) {
      return ::testing::AssertionFailure() << "first difference at byte " << i << ": got " << int(got[i])
                                           << ", expected " << int(expected[i]);
    }
  }
  return ::testing::AssertionSuccess();
}

void fill(std::vector<uint8_t>& bytes, uint64_t offset, uint64_t length, uint8_t value) {
  std::memset(bytes.data() + offset, value, length);
}

TEST_P(Qcow2Interop, ReadsWhatQemuIoWrote) {
  std::string image = dir.file("a.qcow2");
  ASSERT_EQ(runCommand("qemu-img create -f qcow2 " + clusterOption(GetParam()) + " " + image + " 16M").exitCode, 0);
  qemuIo(image, "-c 'write -P 0xab 0 64k' -c 'write -P 0xcd 1052672 10240' -c 'write -P 0x11 16711168 512'"
                " -c 'write -P 0x77 4000000 300000' -c 'write -z 4100000 5000'");
  std::vector<uint8_t> expected(kDiskSize, 0);
  fill(expected, 0, 65536, 0xab);
  fill(expected, 1052672, 10240, 0xcd);
  fill(expected, 16711168, 512, 0x11);
  fill(expected, 4000000, 300000, 0x77);
  fill(expected, 4100000, 5000, 0);
  auto disk = open(image);
  ASSERT_TRUE(disk);
  EXPECT_EQ(disk->format(), ImageFormat::Qcow2);
  EXPECT_EQ(disk->sizeBytes(), kDiskSize);
  EXPECT_TRUE(sameBytes(readAll(*disk), expected));
}

TEST_P(Qcow2Interop, ReadsOverlayOnRawAndQcow2Backing) {
  std::string base = dir.file("base.raw");
  auto baseBytes = pattern(kDiskSize, 5);
  writeFile(base, baseBytes);
  std::string mid = dir.file("mid.qcow2");
  std::string top = dir.file("top.qcow2");
  std::string opt = clusterOption(GetParam());
  ASSERT_EQ(runCommand("qemu-img create -f qcow2 " + opt + " -b base.raw -F raw " + mid).exitCode, 0);
  qemuIo(mid, "-c 'write -P 0x22 100000 200000'");
  ASSERT_EQ(runCommand("qemu-img create -f qcow2 " + opt + " -b mid.qcow2 -F qcow2 " + top).exitCode, 0);
  qemuIo(top, "-c 'write -P 0x33 250000 100000' -c 'write -z 8000000 70000'");
  std::vector<uint8_t> expected = baseBytes;
  fill(expected, 100000, 200000, 0x22);
  fill(expected, 250000, 100000, 0x33);
  fill(expected, 8000000, 70000, 0);
  auto disk = open(top);
  ASSERT_TRUE(disk);
  ASSERT_NE(disk->backing(), nullptr);
  ASSERT_NE(disk->backing()->backing(), nullptr);
  EXPECT_EQ(disk->backing()->backing()->format(), ImageFormat::Raw);
  EXPECT_TRUE(sameBytes(readAll(*disk), expected));
}

TEST_P(Qcow2Interop, WritesPassQemuCheckAndCompare) {
  std::string image = dir.file("w.qcow2");
  CreateOptions create;
  create.format = ImageFormat::Qcow2;
  create.size = kDiskSize;
  create.clusterSize = GetParam();
  ASSERT_TRUE(createImage(image, create).ok());
  expectQemuCheckClean(image);
  std::vector<uint8_t> expected(kDiskSize, 0);
  {
    auto disk = open(image);
    ASSERT_TRUE(disk);
    std::mt19937 random(GetParam());
    // Random writes of random sizes, many unaligned, some overlapping, all in flight together.
    std::vector<std::vector<uint8_t>> buffers;
    std::vector<uint64_t> offsets;
    for (int i = 0; i < 60; ++i) {
      uint64_t length = 1 + random() % 200000;
      uint64_t offset = random() % (kDiskSize - length);
      buffers.push_back(pattern(length, 1000 + i));
      offsets.push_back(offset);
    }
    // Apply in order, but with up to 8 in flight the outcome of overlaps is
    // ambiguous, so each batch only holds non-overlapping writes: issue in
    // batches and wait for each batch.
    size_t next = 0;
    while (next < buffers.size()) {
      std::vector<std::pair<uint64_t, uint64_t>> batch;
      int inFlight = 0;
      while (next < buffers.size() && batch.size() < 8) {
        uint64_t begin = offsets[next], end = begin + buffers[next].size();
        bool overlaps = false;
        for (auto [b, e] : batch) overlaps |= begin < e && b < end;
        if (overlaps) break;
        batch.emplace_back(begin, end);
        ++inFlight;
        disk->writev(begin, {iovec{buffers[next].data(), buffers[next].size()}}, [&](int result) {
          EXPECT_EQ(result, 0);
          --inFlight;
        });
        std::memcpy(expected.data() + begin, buffers[next].data(), buffers[next].size());
        ++next;
      }
      while (inFlight > 0) loop->runOnce(-1);
    }
    ASSERT_TRUE(flushSync(*disk, *loop).ok());
    EXPECT_TRUE(sameBytes(readAll(*disk), expected));
  }
  expectQemuCheckClean(image);
  expectQemuCompare(image, expected);
}

TEST_P(Qcow2Interop, ConcurrentWritesIntoOneNewClusterAllLand) {
  std::string image = dir.file("c.qcow2");
  ASSERT_EQ(runCommand("qemu-img create -f qcow2 " + clusterOption(GetParam()) + " " + image + " 16M").exitCode, 0);
  std::vector<uint8_t> expected(kDiskSize, 0);
  {
    auto disk = open(image);
    ASSERT_TRUE(disk);
    // 64 sector-sized writes into the same fresh cluster(s), all submitted at once.
    std::vector<std::vector<uint8_t>> buffers;
    int inFlight = 0;
    for (int i = 0; i < 64; ++i) buffers.push_back(pattern(512, 77 + i));
    for (int i = 0; i < 64; ++i) {
      uint64_t offset = 3 * 1024 * 1024 + static_cast<uint64_t>(i) * 512;
      ++inFlight;
      disk->writev(offset, {iovec{buffers[i].data(), 512}}, [&](int result) {
        EXPECT_EQ(result, 0);
        --inFlight;
      });
      std::memcpy(expected.data() + offset, buffers[i].data(), 512);
    }
    while (inFlight > 0) loop->runOnce(-1);
    ASSERT_TRUE(flushSync(*disk, *loop).ok());
    EXPECT_TRUE(sameBytes(readAll(*disk), expected));
  }
  expectQemuCheckClean(image);
  expectQemuCompare(image, expected);
}

TEST_P(Qcow2Interop, DiscardAndWriteZeroesKeepImageConsistent) {
  std::string base = dir.file("base.raw");
  auto baseBytes = pattern(kDiskSize, 9);
  writeFile(base, baseBytes);
  for (bool withBacking : {false, true}) {
    std::string image = dir.file(withBacking ? "z2.qcow2" : "z1.qcow2");
    std::string backing = withBacking ? " -b base.raw -F raw" : "";
    ASSERT_EQ(runCommand("qemu-img create -f qcow2 " + clusterOption(GetParam()) + backing + " " + image + " 16M")
                  .exitCode,
              0);
    std::vector<uint8_t> expected = withBacking ? baseBytes : std::vector<uint8_t>(kDiskSize, 0);
    {
      auto disk = open(image);
      ASSERT_TRUE(disk);
      auto data = pattern(3 << 20, 4);
      ASSERT_TRUE(writeSync(*disk, *loop, 1 << 20, data.data(), data.size()).ok());
      std::memcpy(expected.data() + (1 << 20), data.data(), data.size());
      ASSERT_TRUE(flushSync(*disk, *loop).ok());
      // Write-zeroes with unaligned ends; discard of whole 2 MiB (partial clusters untouched).
      ASSERT_TRUE(writeZeroesSync(*disk, *loop, (1 << 20) + 1000, 1500000).ok());
      fill(expected, (1 << 20) + 1000, 1500000, 0);
      ASSERT_TRUE(discardSync(*disk, *loop, 3 << 20, 1 << 20).ok());
      ASSERT_TRUE(flushSync(*disk, *loop).ok());
      auto got = readAll(*disk);
      // Discarded range: zeroes (the zero flag hides the backing file) or the old data.
      for (uint64_t i = 3 << 20; i < (4 << 20); ++i) {
        ASSERT_TRUE(got[i] == 0 || got[i] == expected[i]) << i;
      }
      std::memcpy(expected.data() + (3 << 20), got.data() + (3 << 20), 1 << 20);
      EXPECT_TRUE(sameBytes(got, expected));
      // Rewrite part of the discarded area: clusters get reused.
      ASSERT_TRUE(writeSync(*disk, *loop, (3 << 20) + 4096, data.data(), 100000).ok());
      std::memcpy(expected.data() + (3 << 20) + 4096, data.data(), 100000);
      ASSERT_TRUE(flushSync(*disk, *loop).ok());
      EXPECT_TRUE(sameBytes(readAll(*disk), expected));
    }
    expectQemuCheckClean(image);
    if (!withBacking) expectQemuCompare(image, expected);
    if (withBacking) {
      std::string raw = dir.file("expected2.raw");
      writeFile(raw, expected);
      auto result = runCommand("qemu-img compare -f qcow2 -F raw " + image + " " + raw);
      EXPECT_EQ(result.exitCode, 0) << result.output;
    }
  }
}

TEST_P(Qcow2Interop, LinkedCloneWritesLeaveTemplateUnchanged) {
  std::string base = dir.file("template.qcow2");
  ASSERT_EQ(runCommand("qemu-img create -f qcow2 " + clusterOption(GetParam()) + " " + base + " 16M").exitCode, 0);
  qemuIo(base, "-c 'write -P 0x5a 0 16M'");
  auto before = readFile(base);
  std::string clone = dir.file("clone.qcow2");
  CreateOptions create;
  create.format = ImageFormat::Qcow2;
  create.size = kDiskSize;
  create.clusterSize = GetParam();
  create.backingFile = "template.qcow2";
  create.backingFormat = ImageFormat::Qcow2;
  ASSERT_TRUE(createImage(clone, create).ok());
  std::vector<uint8_t> expected(kDiskSize, 0x5a);
  {
    auto disk = open(clone);
    ASSERT_TRUE(disk);
    auto data = pattern(70000, 12);
    ASSERT_TRUE(writeSync(*disk, *loop, 12345, data.data(), data.size()).ok());  // partial clusters: COW
    std::memcpy(expected.data() + 12345, data.data(), data.size());
    ASSERT_TRUE(flushSync(*disk, *loop).ok());
    EXPECT_TRUE(sameBytes(readAll(*disk), expected));
  }
  EXPECT_TRUE(readFile(base) == before);
  expectQemuCheckClean(clone);
  std::string raw = dir.file("expected.raw");
  writeFile(raw, expected);
  auto result = runCommand("qemu-img compare " + clone + " " + raw);
  EXPECT_EQ(result.exitCode, 0) << result.output;
  auto info = runCommand("qemu-img info " + clone);
  EXPECT_NE(info.output.find("backing file: template.qcow2"), std::string::npos) << info.output;
}

// A snapshot of a running VM: a writable image, written to, gets an overlay
// opened on a file descriptor over the open image itself. Reads see the
// image's data, writes land in the overlay, and the image file stays as it was.
TEST_P(Qcow2Interop, OverlayOverAnOpenImageTakesEveryWriteFromThen) {
  std::string base = dir.file("running.qcow2");
  ASSERT_EQ(runCommand("qemu-img create -f qcow2 " + clusterOption(GetParam()) + " " + base + " 16M").exitCode, 0);
  std::vector<uint8_t> expected(kDiskSize, 0);
  std::unique_ptr<DiskImage> image = open(base);
  ASSERT_TRUE(image);
  auto first = pattern(100000, 3);
  ASSERT_TRUE(writeSync(*image, *loop, 4096, first.data(), first.size()).ok());
  std::memcpy(expected.data() + 4096, first.data(), first.size());
  ASSERT_TRUE(flushSync(*image, *loop).ok());
  auto before = readFile(base);

  std::string overlayPath = dir.file("running.snap.qcow2");
  UniqueFd file(::open(overlayPath.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  ASSERT_TRUE(file.valid());
  CreateOptions create;
  create.format = ImageFormat::Qcow2;
  create.size = kDiskSize;
  create.clusterSize = GetParam();
  create.backingFile = "running.qcow2";
  create.backingFormat = ImageFormat::Qcow2;
  ASSERT_TRUE(writeNewImage(file.get(), overlayPath, create).ok());
  auto overlay = Qcow2Image::openOverlay(overlayPath, std::move(file), image, *loop);
  ASSERT_TRUE(overlay.ok()) << overlay.error().message;
  EXPECT_TRUE(image == nullptr) << "the overlay owns the image it covers";
  auto second = pattern(70000, 9);
  ASSERT_TRUE(writeSync(**overlay, *loop, 50000, second.data(), second.size()).ok());
  std::memcpy(expected.data() + 50000, second.data(), second.size());
  ASSERT_TRUE(flushSync(**overlay, *loop).ok());
  EXPECT_TRUE(sameBytes(readAll(**overlay), expected));
  overlay->reset();
  EXPECT_TRUE(readFile(base) == before) << "the image below is never written again";
  expectQemuCheckClean(overlayPath);
  expectQemuCompare(overlayPath, expected);
}

// The overlay must be as large as the image it covers, and must name a backing
// file; otherwise it is refused and the image stays with the caller.
TEST_P(Qcow2Interop, OverlayOfTheWrongSizeIsRefused) {
  std::string base = dir.file("small.qcow2");
  ASSERT_EQ(runCommand("qemu-img create -f qcow2 " + base + " 8M").exitCode, 0);
  std::unique_ptr<DiskImage> image = open(base);
  ASSERT_TRUE(image);
  std::string overlayPath = dir.file("small.snap.qcow2");
  UniqueFd file(::open(overlayPath.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  CreateOptions create;
  create.format = ImageFormat::Qcow2;
  create.size = kDiskSize;
  create.clusterSize = GetParam();
  create.backingFile = "small.qcow2";
  ASSERT_TRUE(writeNewImage(file.get(), overlayPath, create).ok());
  auto overlay = Qcow2Image::openOverlay(overlayPath, std::move(file), image, *loop);
  ASSERT_FALSE(overlay.ok());
  EXPECT_NE(overlay.error().message.find("over a backing image of 8388608"), std::string::npos) << overlay.error().message;
  EXPECT_TRUE(image != nullptr);
}

TEST_P(Qcow2Interop, ReadsCompressedClusters) {
  std::string raw = dir.file("source.raw");
  std::vector<uint8_t> bytes(kDiskSize, 0);
  auto noise = pattern(1 << 20, 3);
  std::memcpy(bytes.data() + (2 << 20), noise.data(), noise.size());
  for (uint64_t i = 6 << 20; i < (9 << 20); ++i) bytes[i] = static_cast<uint8_t>(i / 1000);  // compressible
  writeFile(raw, bytes);
  std::string image = dir.file("compressed.qcow2");
  auto converted = runCommand("qemu-img convert -c -f raw -O qcow2 " + clusterOption(GetParam()) + " " + raw + " " + image);
  ASSERT_EQ(converted.exitCode, 0) << converted.output;
  auto disk = open(image);
  ASSERT_TRUE(disk);
  EXPECT_TRUE(sameBytes(readAll(*disk), bytes));
  // Overwriting part of a compressed cluster copies it up to a normal cluster.
  auto data = pattern(3000, 8);
  ASSERT_TRUE(writeSync(*disk, *loop, (6 << 20) + 100, data.data(), data.size()).ok());
  std::memcpy(bytes.data() + (6 << 20) + 100, data.data(), data.size());
  ASSERT_TRUE(flushSync(*disk, *loop).ok());
  EXPECT_TRUE(sameBytes(readAll(*disk), bytes));
  disk.reset();
  expectQemuCheckClean(image);
  expectQemuCompare(image, bytes);
}

INSTANTIATE_TEST_SUITE_P(ClusterSizes, Qcow2Interop, ::testing::Values(512u, 4096u, 65536u, 2097152u),
                         [](const ::testing::TestParamInfo<uint32_t>& info) {
                           return "cluster" + std::to_string(info.param);
                         });

}  // namespace
}  // namespace strata::storage
