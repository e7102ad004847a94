// Scatter-gather helpers over a chain split at uneven places: copies and slices
// that start inside, span and run past its segments.
#include <gtest/gtest.h>

#include <array>
#include <numeric>

#include "virtio/iovec_util.h"

namespace strata::virtio {
namespace {

// 10 bytes 0..9 split as 3 + 0 + 4 + 3 (an empty segment, as a driver may send).
class IovecUtil : public ::testing::Test {
 protected:
  IovecUtil() {
    std::iota(bytes.begin(), bytes.end(), uint8_t{0});
    chain = {{bytes.data(), 3}, {bytes.data() + 3, 0}, {bytes.data() + 3, 4}, {bytes.data() + 7, 3}};
  }
  std::array<uint8_t, 10> bytes{};
  std::vector<iovec> chain;
};

TEST_F(IovecUtil, TotalLength) {
  EXPECT_EQ(totalLength(chain), 10u);
  EXPECT_EQ(totalLength({}), 0u);
}

TEST_F(IovecUtil, CopyFromSpansSegments) {
  std::array<uint8_t, 6> out{};
  EXPECT_EQ(copyFromIovecs(chain, 2, out.data(), out.size()), 6u);
  EXPECT_EQ(out, (std::array<uint8_t, 6>{2, 3, 4, 5, 6, 7}));
}

TEST_F(IovecUtil, CopyFromIsClippedAtTheEnd) {
  std::array<uint8_t, 6> out{};
  EXPECT_EQ(copyFromIovecs(chain, 8, out.data(), out.size()), 2u);
  EXPECT_EQ(out, (std::array<uint8_t, 6>{8, 9, 0, 0, 0, 0}));
  EXPECT_EQ(copyFromIovecs(chain, 10, out.data(), out.size()), 0u);
  EXPECT_EQ(copyFromIovecs(chain, 3, out.data(), 0), 0u);
}

TEST_F(IovecUtil, CopyToSpansSegments) {
  const std::array<uint8_t, 5> in{0xa0, 0xa1, 0xa2, 0xa3, 0xa4};
  EXPECT_EQ(copyToIovecs(chain, 1, in.data(), in.size()), 5u);
  EXPECT_EQ(bytes, (std::array<uint8_t, 10>{0, 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 6, 7, 8, 9}));
}

TEST_F(IovecUtil, CopyToIsClippedAtTheEnd) {
  const std::array<uint8_t, 5> in{0xb0, 0xb1, 0xb2, 0xb3, 0xb4};
  EXPECT_EQ(copyToIovecs(chain, 7, in.data(), in.size()), 3u);
  EXPECT_EQ(bytes, (std::array<uint8_t, 10>{0, 1, 2, 3, 4, 5, 6, 0xb0, 0xb1, 0xb2}));
}

TEST_F(IovecUtil, SliceStartsAndEndsInsideSegments) {
  auto slice = sliceIovecs(chain, 1, 7);
  ASSERT_EQ(slice.size(), 3u);
  EXPECT_EQ(slice[0].iov_base, bytes.data() + 1);
  EXPECT_EQ(slice[0].iov_len, 2u);
  EXPECT_EQ(slice[1].iov_base, bytes.data() + 3);
  EXPECT_EQ(slice[1].iov_len, 4u);
  EXPECT_EQ(slice[2].iov_base, bytes.data() + 7);
  EXPECT_EQ(slice[2].iov_len, 1u);
}

TEST_F(IovecUtil, SliceIsClippedToWhatExists) {
  auto slice = sliceIovecs(chain, 9, 100);
  ASSERT_EQ(slice.size(), 1u);
  EXPECT_EQ(slice[0].iov_base, bytes.data() + 9);
  EXPECT_EQ(slice[0].iov_len, 1u);
  EXPECT_TRUE(sliceIovecs(chain, 10, 1).empty());
  EXPECT_TRUE(sliceIovecs(chain, 0, 0).empty());
}

}  // namespace
}  // namespace strata::virtio
