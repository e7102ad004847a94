// The real thread model: the EventLoop runs on its own thread while this thread
// plays a vCPU, programming registers and rings concurrently.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "virtio/rng.h"
#include "virtio_test_driver.h"

namespace strata::virtio::testing {
namespace {

class LoopThread {
 public:
  explicit LoopThread(EventLoop& loop) : loop_(loop), thread_([this] { loop_.run(); }) {}
  ~LoopThread() {
    loop_.stop();
    thread_.join();
  }

 private:
  EventLoop& loop_;
  std::thread thread_;
};

bool spinUntil(const std::function<bool()>& pred) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

void startFromVcpu(TestDriver& d, uint64_t features, uint16_t size) {
  ASSERT_TRUE(d.negotiate(features | featureBit(kFeatureVersion1)));
  d.setupQueue(0, size);
  d.setReg(mmio::kStatus, d.reg(mmio::kStatus) | kStatusDriverOk);
}

TEST(VirtioThreaded, ManyRequestsAgainstLiveLoop) {
  for (uint64_t features : {uint64_t{0}, featureBit(kFeatureEventIdx)}) {
    TestDriver d;
    VirtioRng rng;
    d.attach(rng);
    LoopThread loopThread(d.loop());
    startFromVcpu(d, features, 16);
    uint16_t expected = 0;
    for (int batch = 0; batch < 200; ++batch) {
      int n = 1 + batch % 8;
      for (int i = 0; i < n; ++i) d.addChain(0, {{kDataArea + 0x100ull * i, static_cast<uint32_t>(8 + i), true}});
      d.kick(0);
      uint16_t first = expected;
      expected = static_cast<uint16_t>(expected + n);
      ASSERT_TRUE(spinUntil([&] { return d.usedIdx(0) == expected; })) << "batch " << batch;
      for (int i = 0; i < n; ++i) ASSERT_EQ(d.used(0, static_cast<uint16_t>(first + i)).len, 8u + i);
      d.setReg(mmio::kInterruptAck, d.reg(mmio::kInterruptStatus));
    }
    EXPECT_FALSE(d.needsReset());
  }
}

TEST(VirtioThreaded, ResetWhileBusyNeverCorruptsTheNextSession) {
  TestDriver d;
  VirtioRng rng;
  d.attach(rng);
  LoopThread loopThread(d.loop());
  for (int round = 0; round < 50; ++round) {
    startFromVcpu(d, 0, 16);
    for (int i = 0; i < 4; ++i) d.addChain(0, {{kDataArea, 16, true}});
    d.kick(0);
    d.setReg(mmio::kStatus, 0);  // races with the loop serving the kick
    ASSERT_EQ(d.reg(mmio::kStatus), 0u);
  }
  startFromVcpu(d, 0, 16);
  d.addChain(0, {{kDataArea, 16, true}});
  d.kick(0);
  ASSERT_TRUE(spinUntil([&] { return d.usedIdx(0) == 1; }));
  EXPECT_EQ(d.used(0, 0).len, 16u);
  EXPECT_FALSE(d.needsReset());
}

}  // namespace
}  // namespace strata::virtio::testing
