// GuestRam::discard: whole pages inside the range go back to the host and read
// zero afterwards, partial pages keep their data, and ranges outside RAM are
// refused, for both the memfd backing and the KSM-mergeable anonymous one.
#include "machine/guest_ram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

namespace strata::machine {
namespace {

constexpr uint64_t kBase = 0x80000000;
constexpr uint64_t kSize = 1 << 20;
constexpr uint64_t kPage = GuestRam::kPageSize;

bool allBytes(const uint8_t* p, uint64_t n, uint8_t value) {
  return std::all_of(p, p + n, [value](uint8_t b) { return b == value; });
}

class GuestRamDiscardTest : public ::testing::TestWithParam<RamBacking> {};

TEST_P(GuestRamDiscardTest, WholePagesReadZeroPartialPagesKeepTheirData) {
  auto ram = GuestRam::create(kBase, kSize, GetParam());
  ASSERT_TRUE(ram.ok()) << ram.error().message;
  std::memset((*ram)->hostBase(), 0x5A, kSize);
  // [page 1 + 100, page 4 + 100): only pages 2 and 3 are whole.
  ASSERT_TRUE((*ram)->discard(kBase + kPage + 100, 3 * kPage).ok());
  const uint8_t* host = (*ram)->hostBase();
  EXPECT_TRUE(allBytes(host + kPage, kPage, 0x5A));
  EXPECT_TRUE(allBytes(host + 2 * kPage, 2 * kPage, 0));
  EXPECT_TRUE(allBytes(host + 4 * kPage, kPage, 0x5A));
  // Discarded pages are usable again.
  (*ram)->hostBase()[2 * kPage] = 7;
  EXPECT_EQ(host[2 * kPage], 7);
  ASSERT_TRUE((*ram)->discardHost(host + 8 * kPage, kPage).ok());
  EXPECT_TRUE(allBytes(host + 8 * kPage, kPage, 0));
}

TEST_P(GuestRamDiscardTest, RangesOutsideRamAreRefused) {
  auto ram = GuestRam::create(kBase, kSize, GetParam());
  ASSERT_TRUE(ram.ok());
  std::memset((*ram)->hostBase(), 0x5A, kSize);
  EXPECT_FALSE((*ram)->discard(kBase - kPage, 2 * kPage).ok());
  EXPECT_FALSE((*ram)->discard(kBase + kSize - kPage, 2 * kPage).ok());
  EXPECT_FALSE((*ram)->discard(kBase + kPage, ~uint64_t{0}).ok());
  EXPECT_FALSE((*ram)->discardHost((*ram)->hostBase() - kPage, kPage).ok());
  EXPECT_TRUE(allBytes((*ram)->hostBase(), kSize, 0x5A));
}

INSTANTIATE_TEST_SUITE_P(Backings, GuestRamDiscardTest,
                         ::testing::Values(RamBacking::SharedMemfd, RamBacking::MergeableAnonymous));

}  // namespace
}  // namespace strata::machine
