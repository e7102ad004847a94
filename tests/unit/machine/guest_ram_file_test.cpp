#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "machine/guest_ram.h"

namespace strata::machine {
namespace {

constexpr uint64_t kBase = 0x80000000, kSize = 64ull << 20;

class GuestRamFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("strata-ram-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "memory").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(GuestRamFileTest, SavedFileIsSparseAndMapsBackTheSameBytes) {
  auto ram = GuestRam::create(kBase, kSize);
  ASSERT_TRUE(ram.ok());
  std::memcpy((*ram)->hostBase() + 4096 * 3, "page three", 10);
  (*ram)->hostBase()[kSize - 1] = 0x77;  // the last byte of the last page
  ASSERT_TRUE((*ram)->saveTo(path_).ok());

  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kSize);
  EXPECT_LE(static_cast<uint64_t>(st.st_blocks) * 512, 1ull << 20) << "zero pages were written out";

  auto restored = GuestRam::mapFile(kBase, kSize, path_);
  ASSERT_TRUE(restored.ok()) << restored.error().message;
  EXPECT_EQ(std::memcmp((*restored)->hostBase(), (*ram)->hostBase(), kSize), 0);

  // Copy-on-write: the restored guest's writes never reach the snapshot.
  std::memcpy((*restored)->hostBase() + 4096 * 3, "PAGE", 4);
  auto again = GuestRam::mapFile(kBase, kSize, path_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(std::memcmp((*again)->hostBase() + 4096 * 3, "page three", 10), 0);
}

TEST_F(GuestRamFileTest, RefusesAMemoryFileOfAnotherSize) {
  auto ram = GuestRam::create(kBase, kSize);
  ASSERT_TRUE(ram.ok());
  ASSERT_TRUE((*ram)->saveTo(path_).ok());
  auto restored = GuestRam::mapFile(kBase, kSize * 2, path_);
  ASSERT_FALSE(restored.ok());
  EXPECT_NE(restored.error().message.find("memory file holds"), std::string::npos) << restored.error().message;
  std::filesystem::resize_file(path_, kSize / 2);  // a truncated file
  EXPECT_FALSE(GuestRam::mapFile(kBase, kSize, path_).ok());
  EXPECT_FALSE(GuestRam::mapFile(kBase, kSize, path_ + ".missing").ok());
}

}  // namespace
}  // namespace strata::machine
