#include <gtest/gtest.h>

#include <algorithm>

#include "virtio/rng.h"
#include "virtio_test_driver.h"

namespace strata::virtio::testing {
namespace {

TEST(VirtioRng, FillsEveryWritableBuffer) {
  TestDriver d;
  VirtioRng rng;
  d.attach(rng);
  d.start(0, {16});
  std::vector<uint8_t> pattern(256, 0xAA);
  d.fill(kDataArea, pattern.data(), pattern.size());
  uint16_t head = d.addChain(0, {{kDataArea, 100, true}, {kDataArea + 128, 28, true}});
  d.kick(0);
  ASSERT_TRUE(d.waitUsed(0, 1));
  EXPECT_EQ(d.used(0, 0).id, head);
  EXPECT_EQ(d.used(0, 0).len, 128u);
  // 100 and 28 random bytes will not all equal the old pattern (chance 2^-800 and 2^-224).
  const uint8_t* p = d.host(kDataArea, 256);
  EXPECT_FALSE(std::all_of(p, p + 100, [](uint8_t b) { return b == 0xAA; }));
  EXPECT_FALSE(std::all_of(p + 128, p + 156, [](uint8_t b) { return b == 0xAA; }));
  // Bytes outside the buffers are untouched.
  EXPECT_TRUE(std::all_of(p + 100, p + 128, [](uint8_t b) { return b == 0xAA; }));
  EXPECT_TRUE(std::all_of(p + 156, p + 256, [](uint8_t b) { return b == 0xAA; }));
}

TEST(VirtioRng, ReadOnlyBufferGetsZeroBytes) {
  TestDriver d;
  VirtioRng rng;
  d.attach(rng);
  d.start(0, {16});
  d.addChain(0, {{kDataArea, 32, false}});
  d.kick(0);
  ASSERT_TRUE(d.waitUsed(0, 1));
  EXPECT_EQ(d.used(0, 0).len, 0u);
}

TEST(VirtioRng, ServesIndirectChains) {
  TestDriver d;
  VirtioRng rng;
  d.attach(rng);
  d.start(featureBit(kFeatureIndirectDesc), {16});
  uint64_t table = kDataArea + 0x1000;
  d.writeDescriptorAt(table, kDataArea, 8, kDescFlagWrite | kDescFlagNext, 1);
  d.writeDescriptorAt(table + 16, kDataArea + 64, 24, kDescFlagWrite, 0);
  d.writeDescriptor(0, 5, table, 32, kDescFlagIndirect, 0);
  d.makeAvailable(0, 5);
  d.kick(0);
  ASSERT_TRUE(d.waitUsed(0, 1));
  EXPECT_EQ(d.used(0, 0).id, 5u);
  EXPECT_EQ(d.used(0, 0).len, 32u);
}

TEST(VirtioRng, ManyRequestsWrapTheRing) {
  TestDriver d;
  VirtioRng rng;
  d.attach(rng);
  d.start(0, {4});
  for (int i = 1; i <= 10; ++i) {
    d.addChain(0, {{kDataArea, 8, true}});
    d.kick(0);
    ASSERT_TRUE(d.waitUsed(0, static_cast<uint16_t>(i)));
  }
  EXPECT_EQ(d.used(0, 9).len, 8u);
}

}  // namespace
}  // namespace strata::virtio::testing
