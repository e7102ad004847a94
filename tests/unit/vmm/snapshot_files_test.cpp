// What a snapshot writes beside its state file: the zstd-compressed memory
// file (read back byte for byte, its damage refused with one line naming the
// file) and the names of the disk overlays it puts on running images.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "machine/guest_ram.h"
#include "vmm/compressed_memory.h"
#include "vmm/live_disk.h"

namespace strata::vmm {
namespace {

constexpr uint64_t kBase = 0x80000000;
constexpr uint64_t kSize = 8ull << 20;

class CompressedMemory : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() / ("strata-memory-" + std::to_string(::getpid()) + ".zst")).string();
    auto ram = machine::GuestRam::create(kBase, kSize);
    ASSERT_TRUE(ram.ok());
    ram_ = std::move(*ram);
    // Text that compresses, random bytes that do not, runs longer than a record, and zero pages between.
    uint8_t* host = ram_->hostBase();
    for (uint64_t i = 0; i < 3 * 4096; ++i) host[i] = static_cast<uint8_t>("snapshot "[i % 9]);
    uint32_t seed = 7;
    for (uint64_t i = (1 << 20) + 123; i < (3 << 20) + 77; ++i) host[i] = static_cast<uint8_t>((seed = seed * 1103515245 + 12345) >> 16);
    host[kSize - 1] = 0x5a;
  }
  void TearDown() override { std::filesystem::remove(path_); }

  std::string path_;
  std::unique_ptr<machine::GuestRam> ram_;
};

TEST_F(CompressedMemory, ReadsBackEveryByteIntoNewRam) {
  ASSERT_TRUE(saveCompressedMemory(*ram_, path_).ok());
  EXPECT_LT(std::filesystem::file_size(path_), 3u << 20) << "zero pages are not stored, text shrinks";
  auto loaded = loadCompressedMemory(kBase, kSize, machine::RamBacking::SharedMemfd, path_);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(std::memcmp((*loaded)->hostBase(), ram_->hostBase(), kSize), 0);
}

TEST_F(CompressedMemory, DamageIsRefusedWithOneLine) {
  ASSERT_TRUE(saveCompressedMemory(*ram_, path_).ok());
  const auto bytes = std::filesystem::file_size(path_);
  auto refusal = [&](uint64_t size) {
    auto loaded = loadCompressedMemory(kBase, size, machine::RamBacking::SharedMemfd, path_);
    EXPECT_FALSE(loaded.ok());
    std::string message = loaded.ok() ? "" : loaded.error().message;
    EXPECT_EQ(message.rfind(path_ + ": ", 0), 0u) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    return message;
  };
  EXPECT_NE(refusal(2 * kSize).find("the VM has"), std::string::npos);
  {  // a flipped byte inside the compressed data: zstd's checksum or framing catches it
    std::fstream file(path_, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(static_cast<std::streamoff>(bytes / 2));
    char byte = 0;
    file.get(byte);
    file.seekp(static_cast<std::streamoff>(bytes / 2));
    file.put(static_cast<char>(byte ^ 0x21));
  }
  EXPECT_NE(refusal(kSize).find("damaged compressed memory file"), std::string::npos);
  std::filesystem::resize_file(path_, bytes - 20);
  EXPECT_NE(refusal(kSize).find("damaged compressed memory file"), std::string::npos);
  std::filesystem::resize_file(path_, 10);
  EXPECT_NE(refusal(kSize).find("too short"), std::string::npos);
}

TEST(DiskOverlay, IsNamedAfterTheImageAndTheSnapshot) {
  EXPECT_EQ(overlayPathFor("/images/vm1.qcow2", "monday"), "/images/vm1.monday.qcow2");
  EXPECT_EQ(overlayPathFor("/images/vm1.monday.qcow2", "tuesday"), "/images/vm1.monday.tuesday.qcow2");
  EXPECT_EQ(overlayPathFor("disk.img", "s"), "disk.s.qcow2");
  EXPECT_EQ(overlayPathFor("/a.b/disk", "s"), "/a.b/disk.s.qcow2");
  EXPECT_EQ(overlayPathFor("/images/.hidden", "s"), "/images/.hidden.s.qcow2");
}

}  // namespace
}  // namespace strata::vmm
