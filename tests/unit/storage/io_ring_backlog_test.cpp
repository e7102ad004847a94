// IoRing's backlog (operations waiting for room in the kernel) is bounded:
// past the limit an operation is refused with -EAGAIN from the loop, and
// everything accepted still completes in order.
#include "storage/io_ring.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

namespace strata::storage {
namespace {

TEST(IoRingBacklog, RefusesPastTheLimitAndCompletesTheRest) {
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop.ok());
  // Two operations fit in the kernel, three may wait behind them.
  auto ring = IoRing::create(**loop, 2);
  ASSERT_TRUE(ring.ok()) << ring.error().message;
  (*ring)->setBacklogLimit(3);
  int pipeFds[2];
  ASSERT_EQ(::pipe(pipeFds), 0);
  // Whatever the outcome, give every read a byte before the ring goes away:
  // its destructor waits for the reads still in the kernel.
  struct FeedAndClose {
    int* fds;
    ~FeedAndClose() {
      [[maybe_unused]] auto n = ::write(fds[1], "zzzzzzzz", 8);
      ::close(fds[1]);
      ::close(fds[0]);
    }
  } feedAndClose{pipeFds};

  // Reads from an empty pipe stay in the kernel until data arrives.
  constexpr int kReads = 8;
  char bytes[kReads] = {};
  iovec iov[kReads];
  std::vector<int> results(kReads, 1);
  std::vector<int> order;
  for (int i = 0; i < kReads; ++i) {
    iov[i] = {&bytes[i], 1};
    (*ring)->readv(pipeFds[0], &iov[i], 1, 0, [&, i](int result) {
      results[i] = result;
      order.push_back(i);
    });
  }
  EXPECT_EQ((*ring)->inFlight(), 5u);
  for (int i = 0; i < 10 && order.size() < 3; ++i) (*loop)->runOnce(100);
  ASSERT_EQ(order, (std::vector<int>{5, 6, 7}));
  for (int i = 5; i < kReads; ++i) EXPECT_EQ(results[i], -EAGAIN);

  ASSERT_EQ(::write(pipeFds[1], "abcde", 5), 5);
  for (int i = 0; i < 50 && order.size() < kReads; ++i) (*loop)->runOnce(100);
  ASSERT_EQ(order.size(), size_t{kReads});
  for (int i = 0; i < 5; ++i) EXPECT_EQ(results[i], 1) << "read " << i;
  std::string got(bytes, 5);
  std::sort(got.begin(), got.end());  // two reads waited in the kernel at once: either may get 'a'
  EXPECT_EQ(got, "abcde");
  EXPECT_EQ((*ring)->inFlight(), 0u);
}

}  // namespace
}  // namespace strata::storage
