// The fixture the disk image tests share: an event loop, a temporary
// directory, opening images through openDiskImage, and the qemu-img /
// qemu-io cross-checks they run on the results.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "storage/disk_image.h"
#include "storage_test_util.h"

namespace strata::storage::testing {

class DiskImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto created = EventLoop::create();
    ASSERT_TRUE(created.ok());
    loop = std::move(*created);
  }
  // nullptr (and a failed expectation) when the image does not open.
  std::unique_ptr<DiskImage> open(const std::string& path, const DiskOptions& options = {}) {
    auto image = openDiskImage(path, options, *loop);
    EXPECT_TRUE(image.ok()) << (image.ok() ? "" : image.error().message);
    return image.ok() ? std::move(*image) : nullptr;
  }
  // Runs a shell command (qemu-img, qemu-io) that must succeed.
  void run(const std::string& command) {
    auto result = runCommand(command);
    ASSERT_EQ(result.exitCode, 0) << command << "\n" << result.output;
  }
  // qemu-img compare of a qcow2 image against the expected guest-visible bytes.
  void expectQemuCompare(const std::string& image, const std::vector<uint8_t>& expected) {
    std::string raw = dir.file("expected.raw");
    writeFile(raw, expected);
    auto result = runCommand("qemu-img compare -f qcow2 -F raw " + image + " " + raw);
    EXPECT_EQ(result.exitCode, 0) << result.output;
  }

  TempDir dir;
  std::unique_ptr<EventLoop> loop;
};

}  // namespace strata::storage::testing
