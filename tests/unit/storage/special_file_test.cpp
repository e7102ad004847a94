// Image paths are untrusted (a qcow2's backing-file name especially): a FIFO or
// a character device must be refused at once, never block the opener.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "base/event_loop.h"
#include "storage/disk_image.h"
#include "storage/image_create.h"

namespace strata::storage {
namespace {

class SpecialFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("strata-special-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    fifo_ = (dir_ / "fifo").string();
    ASSERT_EQ(::mkfifo(fifo_.c_str(), 0600), 0);
    loop_ = std::move(*EventLoop::create());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  std::string fifo_;
  std::unique_ptr<EventLoop> loop_;
};

TEST_F(SpecialFileTest, FifoIsRefusedWithoutBlocking) {
  auto image = openDiskImage(fifo_, {}, *loop_);
  ASSERT_FALSE(image);
  EXPECT_EQ(image.error().message, fifo_ + ": not a regular file or block device");
}

TEST_F(SpecialFileTest, CharacterDeviceIsRefused) {
  auto image = openDiskImage("/dev/null", {}, *loop_);
  ASSERT_FALSE(image);
  EXPECT_EQ(image.error().message, "/dev/null: not a regular file or block device");
}

TEST_F(SpecialFileTest, Qcow2WhoseBackingFileIsAFifoFailsToOpen) {
  std::string overlay = (dir_ / "overlay.qcow2").string();
  CreateOptions options;
  options.format = ImageFormat::Qcow2;
  options.size = 1 << 20;
  options.backingFile = fifo_;
  options.backingFormat = ImageFormat::Raw;
  ASSERT_TRUE(createImage(overlay, options));
  auto image = openDiskImage(overlay, {}, *loop_);
  ASSERT_FALSE(image);
  EXPECT_NE(image.error().message.find("not a regular file or block device"), std::string::npos)
      << image.error().message;
}

}  // namespace
}  // namespace strata::storage
