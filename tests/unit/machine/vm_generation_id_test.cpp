// VmGenerationId: the guest reads the 16-byte id at any width, cannot write
// it, a regenerate gives a new one, and save/load carries it across.
#include "machine/vm_generation_id.h"

#include <gtest/gtest.h>

namespace strata::machine {
namespace {

TEST(VmGenerationId, ReadsGiveTheIdLittleEndianAtAnyWidth) {
  VmGenerationId device;
  auto id = device.id();
  uint64_t low = 0;
  for (int byte = 7; byte >= 0; --byte) low = (low << 8) | id[byte];
  EXPECT_EQ(device.read(0, 8), low);
  EXPECT_EQ(device.read(9, 1), id[9]);
  EXPECT_EQ(device.read(12, 4), uint64_t{id[12]} | uint64_t{id[13]} << 8 | uint64_t{id[14]} << 16 | uint64_t{id[15]} << 24);
  EXPECT_EQ(device.read(14, 4), uint64_t{id[14]} | uint64_t{id[15]} << 8) << "bytes past the id read zero";
  device.write(0, 8, 0);
  EXPECT_EQ(device.id(), id) << "the guest cannot change it";
}

TEST(VmGenerationId, RegenerateGivesANewIdAndEachDeviceItsOwn) {
  VmGenerationId device, other;
  auto first = device.id();
  EXPECT_NE(first, other.id());
  device.regenerate();
  EXPECT_NE(device.id(), first);
}

TEST(VmGenerationId, SaveAndLoadKeepTheIdAndTruncatedStateIsRefused) {
  VmGenerationId saved, loaded;
  StateWriter out;
  saved.save(out);
  auto reader = StateReader::parse(out.finish());
  ASSERT_TRUE(reader);
  ASSERT_TRUE(loaded.load(*reader));
  EXPECT_EQ(loaded.id(), saved.id());

  StateWriter shortState;
  shortState.beginSection("vmgenid", 1);
  shortState.put<uint32_t>(3);
  shortState.endSection();
  auto shortReader = StateReader::parse(shortState.finish());
  ASSERT_TRUE(shortReader);
  auto before = loaded.id();
  EXPECT_FALSE(loaded.load(*shortReader));
  EXPECT_EQ(loaded.id(), before) << "a refused load changes nothing";
}

}  // namespace
}  // namespace strata::machine
