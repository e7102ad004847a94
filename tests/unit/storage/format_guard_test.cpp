// A raw image whose format was probed must stay raw: whoever writes it (a guest,
// an NBD client) must not be able to plant a qcow2 header naming a host file as
// its backing file for the next open to follow. Backing files open read-only.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>

#include "disk_image_test.h"
#include "storage/image_create.h"
#include "storage/raw_image.h"
#include "storage/sync_io.h"

namespace strata::storage {
namespace {

using testing::DiskImageTest;
using testing::pattern;
using testing::readFile;
using testing::writeFile;

class FormatGuardTest : public DiskImageTest {
 protected:
  void SetUp() override {
    DiskImageTest::SetUp();
    writeFile(disk, std::vector<uint8_t>(1 << 20, 0));
    writeFile(secret, pattern(1 << 20, 42));
    // The attack: the first cluster of a real qcow2 image whose backing file is `secret`.
    CreateOptions create;
    create.format = ImageFormat::Qcow2;
    create.size = 1 << 20;
    create.backingFile = secret;
    create.backingFormat = ImageFormat::Raw;
    ASSERT_TRUE(createImage(dir.file("header.qcow2"), create).ok());
    header = readFile(dir.file("header.qcow2"));
    header.resize(4096);
  }
  int write(DiskImage& image, uint64_t offset, std::vector<iovec> buffers) {
    return runUntilComplete(*loop, [&](IoCompletion done) { image.writev(offset, std::move(buffers), std::move(done)); });
  }
  int write(DiskImage& image, uint64_t offset, std::vector<uint8_t>& bytes) {
    return write(image, offset, {iovec{bytes.data(), bytes.size()}});
  }

  std::string disk = dir.file("disk.raw");
  std::string secret = dir.file("secret.raw");
  std::vector<uint8_t> header;
};

TEST_F(FormatGuardTest, ProbedRawRefusesAQcow2HeaderInItsFirstSector) {
  auto image = open(disk);
  ASSERT_TRUE(image);
  ASSERT_EQ(image->format(), ImageFormat::Raw);
  EXPECT_EQ(write(*image, 0, header), -EPERM);
  // Split across buffers the magic is still seen.
  EXPECT_EQ(write(*image, 0, {iovec{header.data(), 2}, iovec{header.data() + 2, 510}}), -EPERM);
  ASSERT_TRUE(flushSync(*image, *loop).ok());
  image.reset();
  EXPECT_EQ(readFile(disk), std::vector<uint8_t>(1 << 20, 0));
  auto probed = probeImageFormat(disk);
  ASSERT_TRUE(probed.ok());
  EXPECT_EQ(*probed, ImageFormat::Raw);
}

TEST_F(FormatGuardTest, ProbedRawRefusesWritesToPartOfTheProbedBytes) {
  auto image = open(disk);
  ASSERT_TRUE(image);
  std::vector<uint8_t> tail{0xfb, 0x00};  // would complete a magic someone wrote byte by byte
  EXPECT_EQ(write(*image, 3, tail), -EPERM);
  std::vector<uint8_t> first{'Q'};
  EXPECT_EQ(write(*image, 0, first), -EPERM);
  image.reset();
  EXPECT_EQ(readFile(disk), std::vector<uint8_t>(1 << 20, 0));
}

TEST_F(FormatGuardTest, ProbedRawAcceptsOrdinaryWritesToItsFirstSector) {
  auto image = open(disk);
  ASSERT_TRUE(image);
  auto sector = pattern(512, 7);
  sector[0] = 0xeb;  // what a boot sector or partition table starts with
  EXPECT_EQ(write(*image, 0, sector), 0);
  auto rest = pattern(4096, 8);
  EXPECT_EQ(write(*image, kFormatProbeBytes, rest), 0);  // past the probed bytes: anything goes
  EXPECT_TRUE(writeZeroesSync(*image, *loop, 0, 4096).ok());
  EXPECT_TRUE(writeSync(*image, *loop, 8192, header.data(), header.size()).ok());  // a header elsewhere
  ASSERT_TRUE(flushSync(*image, *loop).ok());
  image.reset();
  auto file = readFile(disk);
  EXPECT_EQ(std::vector<uint8_t>(file.begin(), file.begin() + 4096), std::vector<uint8_t>(4096, 0));
  EXPECT_EQ(0, std::memcmp(file.data() + 4096, rest.data() + 4096 - kFormatProbeBytes, kFormatProbeBytes));
  EXPECT_EQ(0, std::memcmp(file.data() + 8192, header.data(), header.size()));
}

TEST_F(FormatGuardTest, NamedRawFormatAllowsAnyFirstSector) {
  auto image = open(disk, DiskOptions{.format = ImageFormat::Raw});
  ASSERT_TRUE(image);
  EXPECT_EQ(write(*image, 0, header), 0);
  ASSERT_TRUE(flushSync(*image, *loop).ok());
  image.reset();
  auto file = readFile(disk);
  EXPECT_EQ(0, std::memcmp(file.data(), header.data(), header.size()));
  // Which is why a probed image must refuse it: the next probe follows it to the secret.
  auto reopened = open(disk);
  ASSERT_TRUE(reopened);
  EXPECT_EQ(reopened->format(), ImageFormat::Qcow2);
}

TEST_F(FormatGuardTest, WarningSaysWhatProbingFixed) {
  auto image = open(disk);
  ASSERT_TRUE(image);
  std::string warning = probedFormatWarning(*image, "--format ");
  EXPECT_NE(warning.find("probed as raw"), std::string::npos) << warning;
  EXPECT_NE(warning.find("refused"), std::string::npos) << warning;
  EXPECT_NE(warning.find("--format raw"), std::string::npos) << warning;
}

TEST_F(FormatGuardTest, BackingFileIsOpenedReadOnlyUnderAWritableOverlay) {
  std::string overlay = dir.file("overlay.qcow2");
  CreateOptions create;
  create.format = ImageFormat::Qcow2;
  create.size = 1 << 20;
  create.backingFile = secret;  // no backing format: the backing file is probed too
  ASSERT_TRUE(createImage(overlay, create).ok());
  auto image = open(overlay);
  ASSERT_TRUE(image);
  EXPECT_FALSE(image->readOnly());
  auto* backing = dynamic_cast<RawImage*>(image->backing());
  ASSERT_NE(backing, nullptr);
  EXPECT_TRUE(backing->readOnly());
  EXPECT_EQ(::fcntl(backing->fd(), F_GETFL) & O_ACCMODE, O_RDONLY);
  EXPECT_EQ(write(*image, 0, header), 0);  // lands in the overlay
  ASSERT_TRUE(flushSync(*image, *loop).ok());
  image.reset();
  EXPECT_EQ(readFile(secret), pattern(1 << 20, 42));
}

}  // namespace
}  // namespace strata::storage
